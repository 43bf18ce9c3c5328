//! Metering against real PostgreSQL: a retried flush counts once, the usage outbox commits
//! with the business write and is harvested exactly once, a tenant cannot bill another, and
//! storage is sampled in each mode to the byte.

use std::sync::Arc;

use bulkhead_directory::{Directory, UsageRow};
use bulkhead_metering::{outbox, storage, Counts, Flusher, Meters};
use bulkhead_model::{Mode, TenantId};
use bulkhead_pgkit::shared_cluster;
use chrono::{Duration, Utc};

#[path = "../../provisioner/tests/support/fixture.rs"]
mod fixture;

async fn control(label: &str) -> Directory {
    fixture::control(label).await.0
}

async fn rollups(dir: &Directory, t: &TenantId) -> Vec<UsageRow> {
    dir.usage_rollups(
        Some(t),
        Utc::now() - Duration::days(1),
        Utc::now() + Duration::days(1),
    )
    .await
    .expect("rollups")
}

fn total(rows: &[UsageRow], metric: &str) -> i64 {
    rows.iter()
        .filter(|r| r.metric == metric)
        .map(|r| r.quantity)
        .sum()
}

#[tokio::test]
async fn a_flush_retried_after_a_crash_is_counted_once() {
    let dir = control("meter_flush").await;
    let meters = Arc::new(Meters::default());
    let t = TenantId::random();
    meters.tenant(t).add(&Counts {
        transactions: 3,
        statements: 7,
        rows_returned: 11,
        bytes_in: 100,
        bytes_out: 200,
        backend_time_us: 5,
    });
    let mut flusher = Flusher::new(meters.clone());
    let batch = flusher.next_batch().expect("a batch");
    assert_eq!(batch.rows.len(), 6, "one count per metric");
    // The COMMIT went through but its reply was lost (or the gateway died after it): the
    // same batch is written again.
    assert_eq!(batch.record(&dir).await.expect("first"), 6);
    assert_eq!(batch.record(&dir).await.expect("retry"), 0);
    // The same retried concurrently (two gateways' flushes cannot share a key, but a retry
    // can race a slow first attempt): once.
    let twice = flusher.next_batch();
    assert!(twice.is_none(), "nothing new was counted");
    meters.tenant(t).add(&Counts {
        transactions: 1,
        ..Default::default()
    });
    let racing = flusher.next_batch().expect("a batch");
    let (a, b) = tokio::join!(racing.record(&dir), racing.record(&dir));
    assert_eq!(a.expect("one") + b.expect("other"), 1);
    let r = rollups(&dir, &t).await;
    assert_eq!(total(&r, "transactions"), 4);
    assert_eq!(total(&r, "statements"), 7);
    assert_eq!(total(&r, "rows_returned"), 11);

    // A failed flush keeps its batch; counts made meanwhile wait for the next one.
    let (broken, name) = fixture::control("meter_flush_broken").await;
    let pg = shared_cluster().expect("cluster");
    let admin = pg.connect(&name).await.expect("admin");
    admin
        .batch_execute("ALTER TABLE metering.gateway_batches RENAME TO gateway_batches_away")
        .await
        .expect("break");
    meters.tenant(t).add(&Counts {
        statements: 1,
        ..Default::default()
    });
    assert!(flusher.flush(&broken).await.is_err());
    assert!(flusher.has_pending());
    meters.tenant(t).add(&Counts {
        statements: 10,
        ..Default::default()
    });
    admin
        .batch_execute("ALTER TABLE metering.gateway_batches_away RENAME TO gateway_batches")
        .await
        .expect("mend");
    assert_eq!(flusher.flush(&broken).await.expect("retried"), 1);
    assert_eq!(total(&rollups(&broken, &t).await, "statements"), 1);
    assert_eq!(flusher.flush(&broken).await.expect("next"), 1);
    assert_eq!(total(&rollups(&broken, &t).await, "statements"), 11);
}

struct Env {
    dir: Directory,
    service: String,
}

async fn env(label: &str) -> Env {
    let service = format!("me_{label}");
    Env {
        dir: fixture::billing(label, &service).await,
        service,
    }
}

async fn tenant(env: &Env, slug: &str, mode: Mode) -> TenantId {
    fixture::place_tenant(&env.dir, &env.service, slug, mode, None, None).await
}

/// A superuser client on the tenant's database and the statements that put a transaction in
/// the tenant's context (what the gateway's opening does).
async fn as_tenant(env: &Env, t: &TenantId) -> (tokio_postgres::Client, String) {
    let p = env
        .dir
        .placement(&env.service.parse().expect("s"), t)
        .await
        .expect("p")
        .expect("placement");
    let client = shared_cluster()
        .expect("cluster")
        .connect(&p.database)
        .await
        .expect("connect");
    let path = p.schema.clone().unwrap_or_else(|| "public".into());
    let ctx = format!(
        "SET LOCAL ROLE \"{}\"; SET LOCAL search_path = \"{path}\", ref; SET LOCAL bulkhead.tenant_id = '{t}';",
        p.role
    );
    (client, ctx)
}

#[tokio::test]
async fn the_outbox_commits_with_the_write_and_is_harvested_once_in_every_mode() {
    let env = env("meter_outbox").await;
    let tenants = [
        tenant(&env, "ob-shared", Mode::Shared).await,
        tenant(&env, "ob-schema", Mode::Schema).await,
        tenant(&env, "ob-db", Mode::Database).await,
    ];
    for t in &tenants {
        let (c, ctx) = as_tenant(&env, t).await;
        // Committed with its business write.
        c.batch_execute(&format!(
            "BEGIN; {ctx} INSERT INTO customers (id, name) VALUES (1, 'a');
             SELECT bulkhead.usage('emails_sent', 3, 'order-1'); COMMIT;"
        ))
        .await
        .expect("committed");
        // Rolled back with it.
        c.batch_execute(&format!(
            "BEGIN; {ctx} INSERT INTO customers (id, name) VALUES (2, 'b');
             SELECT bulkhead.usage('emails_sent', 100, 'order-2'); ROLLBACK;"
        ))
        .await
        .expect("rolled back");
        // The same key again: dropped.
        c.batch_execute(&format!(
            "BEGIN; {ctx} SELECT bulkhead.usage('emails_sent', 3, 'order-1');
             SELECT bulkhead.usage('sms_sent', 2, 'sms-1'); COMMIT;"
        ))
        .await
        .expect("again");
        // Billing another tenant directly is refused by row-level security.
        let other = tenants.iter().find(|o| *o != t).expect("other");
        let e = c
            .batch_execute(&format!(
                "BEGIN; {ctx} INSERT INTO bulkhead.usage_outbox (tenant_id, metric, quantity, idempotency_key)
                 VALUES ('{other}', 'emails_sent', 1000, 'spoof')"
            ))
            .await
            .expect_err("spoofed");
        assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{e:?}"
        );
        c.batch_execute("ROLLBACK").await.expect("rollback");
        // Nor can a tenant read or empty the outbox.
        for sql in [
            "SELECT count(*) FROM bulkhead.usage_outbox",
            "DELETE FROM bulkhead.usage_outbox",
        ] {
            let e = c
                .batch_execute(&format!("BEGIN; {ctx} {sql}"))
                .await
                .expect_err(sql);
            assert_eq!(
                e.code(),
                Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
            );
            c.batch_execute("ROLLBACK").await.expect("rollback");
        }
    }
    let h = outbox::harvest(&env.dir).await.expect("harvest");
    assert_eq!((h.rows, h.counted, h.refused), (6, 6, 0), "{h:?}");
    for t in &tenants {
        let r = rollups(&env.dir, t).await;
        assert_eq!(total(&r, "emails_sent"), 3, "{t}");
        assert_eq!(total(&r, "sms_sent"), 2, "{t}");
    }
    // Harvested rows are gone; a crash between counting and deleting puts them back: the
    // keys keep them from counting twice.
    let again = outbox::harvest(&env.dir).await.expect("again");
    assert_eq!(again.rows, 0);
    let (c, ctx) = as_tenant(&env, &tenants[0]).await;
    c.batch_execute(&format!(
        "BEGIN; {ctx} SELECT bulkhead.usage('emails_sent', 3, 'order-1'); COMMIT;"
    ))
    .await
    .expect("replayed");
    let replay = outbox::harvest(&env.dir).await.expect("replay");
    assert_eq!((replay.rows, replay.counted), (1, 0));
    assert_eq!(
        total(&rollups(&env.dir, &tenants[0]).await, "emails_sent"),
        3
    );

    // A row planted under a tenant that does not live in that database is never counted.
    let pg = shared_cluster().expect("cluster");
    let p = env
        .dir
        .placement(&env.service.parse().expect("s"), &tenants[2])
        .await
        .expect("p")
        .expect("placement");
    let admin = pg.connect(&p.database).await.expect("admin");
    admin
        .batch_execute(&format!(
            "INSERT INTO bulkhead.usage_outbox (tenant_id, metric, quantity, idempotency_key) VALUES ('{}', 'emails_sent', 50, 'planted')",
            tenants[0]
        ))
        .await
        .expect("plant");
    let planted = outbox::harvest(&env.dir).await.expect("planted");
    assert_eq!((planted.rows, planted.refused), (0, 1));
    assert_eq!(
        total(&rollups(&env.dir, &tenants[0]).await, "emails_sent"),
        3
    );
}

#[tokio::test]
async fn storage_is_sampled_per_mode() {
    let env = env("meter_storage").await;
    let shared_a = tenant(&env, "st-shared-a", Mode::Shared).await;
    let shared_b = tenant(&env, "st-shared-b", Mode::Shared).await;
    let schema = tenant(&env, "st-schema", Mode::Schema).await;
    let db = tenant(&env, "st-db", Mode::Database).await;
    for (t, n) in [(shared_a, 300), (shared_b, 100), (schema, 500), (db, 500)] {
        let (c, ctx) = as_tenant(&env, &t).await;
        c.batch_execute(&format!(
            "BEGIN; {ctx} INSERT INTO customers (id, name) SELECT g, repeat('x', 200) FROM generate_series(1, {n}) g; COMMIT;"
        ))
        .await
        .expect("seed");
    }
    let samples = storage::sample(&env.dir).await.expect("sample");
    let bytes = |t: TenantId| {
        samples
            .iter()
            .find(|s| s.tenant_id == t)
            .map(|s| s.bytes)
            .unwrap_or_else(|| panic!("no sample of {t}"))
    };
    let pg = shared_cluster().expect("cluster");
    let place = |t: TenantId| {
        let dir = env.dir.clone();
        let service = env.service.clone();
        async move {
            dir.placement(&service.parse().expect("s"), &t)
                .await
                .expect("p")
                .expect("placement")
        }
    };
    // Shared: each table's size split by row share (300:100 of customers; the other tables
    // hold no rows).
    let pool = pg
        .connect(&place(shared_a).await.database)
        .await
        .expect("pool");
    let customers: i64 = pool
        .query_one("SELECT pg_total_relation_size('public.customers')", &[])
        .await
        .expect("size")
        .get(0);
    assert_eq!(bytes(shared_a), (customers as f64 * 0.75).round() as i64);
    assert_eq!(bytes(shared_b), (customers as f64 * 0.25).round() as i64);
    // Schema: its relations' sizes.
    let s = place(schema).await.schema.expect("schema");
    let expected: i64 = pool
        .query_one(
            "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')",
            &[&s],
        )
        .await
        .expect("schema size")
        .get(0);
    assert!(expected > 500 * 200, "the schema holds the rows");
    assert_eq!(bytes(schema), expected);
    // Database: its size.
    let d = place(db).await.database;
    let size: i64 = pool
        .query_one("SELECT pg_database_size($1)", &[&d])
        .await
        .expect("db size")
        .get(0);
    assert_eq!(bytes(db), size);
    // Recorded as the hour's storage_bytes; a later sample in the hour replaces it.
    let r = rollups(&env.dir, &schema).await;
    assert_eq!(total(&r, "storage_bytes"), expected);
    storage::sample(&env.dir).await.expect("again");
    assert_eq!(
        total(&rollups(&env.dir, &schema).await, "storage_bytes"),
        expected
    );
}

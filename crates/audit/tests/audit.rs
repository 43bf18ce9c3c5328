//! The audit log against a real PostgreSQL: every kind of tampering is detected and located,
//! the log refuses changes from runtime roles and from its owner, and the batched writer
//! loses nothing on a clean flush.

use bulkhead_audit::{action, AuditLog, Event, FindingKind};
use bulkhead_directory::Directory;
use bulkhead_keys::MasterKey;
use bulkhead_model::TenantId;
use bulkhead_pgkit::shared_cluster;
use serde_json::json;

async fn fresh(label: &str) -> (AuditLog, tokio_postgres::Client, String) {
    let cluster = shared_cluster().expect("cluster");
    let db = cluster.create_database(label).await.expect("db");
    let dir = Directory::connect(&db.dsn).await.expect("connect");
    dir.migrate().await.expect("migrate");
    let (client, conn) = tokio_postgres::connect(&db.dsn, tokio_postgres::NoTls)
        .await
        .expect("superuser connection");
    tokio::spawn(conn);
    (
        AuditLog::new(dir, MasterKey::from_bytes([5; 32])),
        client,
        db.dsn.clone(),
    )
}

async fn ten_events(log: &AuditLog, t: TenantId) {
    for i in 1..=10 {
        log.record(
            Event::new(action::KEY_ISSUED, "api")
                .tenant(t)
                .details(json!({ "key": format!("k{i}"), "nested": { "b": i, "a": [1, 2] } })),
        )
        .await
        .expect("record");
    }
}

/// Runs `sql` as a superuser with triggers off: what an attacker with database access does.
async fn tamper(db: &tokio_postgres::Client, sql: &str) {
    db.batch_execute(&format!(
        "SET session_replication_role = replica; {sql}; RESET session_replication_role;"
    ))
    .await
    .unwrap_or_else(|e| panic!("tampering with `{sql}`: {e}"));
}

#[tokio::test]
async fn each_kind_of_tampering_is_detected_and_located() {
    let (log, db, _) = fresh("audit_tamper").await;
    let [clean, edited, deleted, inserted, reordered, cut, forged] =
        std::array::from_fn(|_| TenantId::random());
    for t in [clean, edited, deleted, inserted, reordered, cut, forged] {
        ten_events(&log, t).await;
    }
    log.record(Event::new(action::LOGIN_FAILED, "gateway").details(json!({"user": "x"})))
        .await
        .expect("global");
    let reports = log.verify(None).await.expect("verify");
    assert_eq!(reports.len(), 8, "seven tenant chains and the global one");
    assert!(reports.iter().all(|r| r.intact()), "{reports:#?}");

    tamper(&db, &format!("UPDATE audit.events SET details = jsonb_set(details, '{{key}}', '\"evil\"') WHERE chain = '{edited}' AND n = 3")).await;
    tamper(
        &db,
        &format!("DELETE FROM audit.events WHERE chain = '{deleted}' AND n IN (5, 6)"),
    )
    .await;
    tamper(&db, &format!(
        "INSERT INTO audit.events (event_id, chain, n, tenant_id, actor, action, details, at, prev_hash, hash, mac)
         SELECT gen_random_uuid(), chain, 11, tenant_id, 'api', 'tenant.erased', '{{}}', now(), hash, hash, mac
           FROM audit.events WHERE chain = '{inserted}' AND n = 10"
    )).await;
    // Swap the contents of entries 7 and 8 (their rows keep their ids: storage order).
    tamper(&db, &format!(
        "CREATE TEMP TABLE swapped AS SELECT * FROM audit.events WHERE chain = '{reordered}' AND n IN (7, 8);
         UPDATE audit.events SET event_id = gen_random_uuid(), n = n + 1000000
          WHERE chain = '{reordered}' AND n IN (7, 8);
         UPDATE audit.events e SET event_id = x.event_id, n = x.n, actor = x.actor, action = x.action,
                details = x.details, at = x.at, prev_hash = x.prev_hash, hash = x.hash, mac = x.mac
           FROM (SELECT a.id AS target, b.* FROM swapped a, swapped b WHERE a.id <> b.id) x
          WHERE e.id = x.target"
    )).await;
    tamper(
        &db,
        &format!("DELETE FROM audit.events WHERE chain = '{cut}' AND n = 10"),
    )
    .await;
    // Content changed and the hash recomputed without the key: the MAC gives it away.
    tamper(&db, &format!(
        "UPDATE audit.events SET actor = 'someone', hash = sha256(hash) WHERE chain = '{forged}' AND n = 4"
    )).await;

    let reports = log.verify(None).await.expect("verify");
    let of = |t: TenantId| {
        reports
            .iter()
            .find(|r| r.chain == t.to_string())
            .unwrap_or_else(|| panic!("no report for {t}"))
            .findings
            .iter()
            .map(|f| (f.kind, f.n))
            .collect::<Vec<_>>()
    };
    assert_eq!(of(clean), vec![]);
    assert_eq!(of(edited), vec![(FindingKind::Altered, Some(3))]);
    assert_eq!(of(deleted), vec![(FindingKind::Removed, Some(5))]);
    let removed = reports
        .iter()
        .find(|r| r.chain == deleted.to_string())
        .and_then(|r| r.findings.first().cloned())
        .expect("finding");
    assert_eq!(removed.through, Some(6));
    assert!(
        removed.message.contains("entries 5 to 6"),
        "{}",
        removed.message
    );
    assert_eq!(of(inserted), vec![(FindingKind::Inserted, Some(11))]);
    assert_eq!(of(reordered), vec![(FindingKind::Reordered, Some(7))]);
    assert_eq!(of(cut), vec![(FindingKind::Removed, Some(10))]);
    assert_eq!(of(forged), vec![(FindingKind::Altered, Some(4))]);
    let global = reports
        .iter()
        .find(|r| r.chain == "global")
        .expect("global");
    assert!(global.intact());

    // One tenant's verification reads only its chain.
    let one = log.verify(Some(&edited)).await.expect("verify one");
    assert_eq!(one.len(), 1);
    assert!(one[0].findings[0].id.is_some());
}

#[tokio::test]
async fn a_rolled_back_head_and_a_wrong_key_are_detected() {
    let (log, db, dsn) = fresh("audit_head").await;
    let t = TenantId::random();
    ten_events(&log, t).await;
    let other = AuditLog::new(
        Directory::connect(&dsn).await.expect("connect"),
        MasterKey::from_bytes([6; 32]),
    );
    let wrong = other.verify(Some(&t)).await.expect("verify");
    assert!(!wrong[0].intact(), "another master key verifies nothing");
    // Rewinding the head to an earlier state (as if the last entries never happened) needs
    // a head MAC; a copied-over head of another chain does not verify.
    tamper(
        &db,
        &format!("UPDATE audit.heads SET n = 7 WHERE chain = '{t}'"),
    )
    .await;
    let r = log.verify(Some(&t)).await.expect("verify");
    assert!(
        r[0].findings
            .iter()
            .any(|f| f.kind == FindingKind::Altered && f.n.is_none()),
        "{r:#?}"
    );
}

#[tokio::test]
async fn runtime_roles_cannot_touch_the_log_and_its_owner_cannot_change_it() {
    let (log, db, _) = fresh("audit_append_only").await;
    let t = TenantId::random();
    ten_events(&log, t).await;
    let role = format!("bh_t_{}_deadbeef", t.simple());
    db.batch_execute(&format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role} NOLOGIN; END IF; END $$"
    ))
    .await
    .expect("role");
    for sql in [
        "SELECT count(*) FROM audit.events",
        "UPDATE audit.events SET actor = 'x'",
        "DELETE FROM audit.events",
        "INSERT INTO audit.events (event_id, chain, n, actor, action, details, at, prev_hash, hash, mac) VALUES (gen_random_uuid(), 'x', 1, 'a', 'b', '{}', now(), '', '', '')",
        "TRUNCATE audit.events",
        "UPDATE audit.heads SET n = 0",
    ] {
        let e = db
            .batch_execute(&format!("BEGIN; SET LOCAL ROLE {role}; {sql}; COMMIT"))
            .await
            .expect_err(sql);
        let _ = db.batch_execute("ROLLBACK").await;
        assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {e:?}"
        );
    }
    for sql in [
        "UPDATE audit.events SET actor = 'x'",
        "DELETE FROM audit.events",
        "TRUNCATE audit.events",
    ] {
        let e = db.batch_execute(sql).await.expect_err(sql);
        let db_error = e.as_db_error().expect("a server error");
        assert!(
            db_error.message().contains("append-only"),
            "{sql}: {}",
            db_error.message()
        );
    }
    let r = log.verify(Some(&t)).await.expect("verify");
    assert!(r[0].intact());
    assert_eq!(r[0].entries, 10);
}

#[tokio::test]
async fn an_append_retried_after_it_committed_records_nothing_twice() {
    let (log, _db, _) = fresh("audit_retry").await;
    let t = TenantId::random();
    let events: Vec<Event> = (0..3)
        .map(|i| {
            Event::new(action::REFUSED, "gateway")
                .tenant(t)
                .details(json!({ "i": i }))
        })
        .collect();
    log.record_all(events.clone()).await.expect("first");
    // The COMMIT went through but its reply was lost: the writer sends the batch again,
    // with one new event behind it.
    let mut again = events.clone();
    again.push(Event::new(action::LIMIT_HIT, "gateway").tenant(t));
    log.record_again(again).await.expect("retry");
    let r = log.verify(Some(&t)).await.expect("verify");
    assert_eq!(r[0].entries, 4);
    assert_eq!(r[0].head, Some(4));
    assert!(r[0].intact(), "{r:#?}");
}

#[tokio::test]
async fn events_past_a_full_queue_are_counted_and_that_count_is_recorded() {
    let (log, _db, _) = fresh("audit_overflow").await;
    let t = TenantId::random();
    let writer = log.writer_with_queue(10);
    // One thread, no await: the writer cannot take anything until the flush.
    for i in 0..1_000 {
        writer.record(
            Event::new(action::LOGIN_FAILED, "gateway")
                .tenant(t)
                .details(json!({ "i": i })),
        );
    }
    writer.flush().await;
    assert_eq!(
        log.list(Some(&t), None, 10_000).await.expect("list").len(),
        10
    );
    let dropped: Vec<_> = log
        .list(None, None, 10_000)
        .await
        .expect("list")
        .into_iter()
        .filter(|e| e.action == action::DROPPED)
        .collect();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0].details["events"], 990);
    assert!(log
        .verify(None)
        .await
        .expect("verify")
        .iter()
        .all(|r| r.intact()));
}

#[tokio::test]
async fn the_writer_batches_off_path_and_a_flush_loses_nothing() {
    let (log, _db, _) = fresh("audit_writer").await;
    let tenants: Vec<TenantId> = (0..4).map(|_| TenantId::random()).collect();
    let writer = log.writer();
    for i in 0..2_000 {
        writer.record(
            Event::new(action::REFUSED, "gateway")
                .tenant(tenants[i % 4])
                .details(json!({ "rule": "set_config", "i": i })),
        );
    }
    // A second process appending to the same chains at the same time.
    let other = log.clone();
    let t0 = tenants[0];
    let concurrent = tokio::spawn(async move {
        for _ in 0..50 {
            other
                .record(Event::new(action::KEY_ISSUED, "api").tenant(t0))
                .await
                .expect("record");
        }
    });
    writer.flush().await;
    concurrent.await.expect("join");
    let reports = log.verify(None).await.expect("verify");
    let total: usize = reports.iter().map(|r| r.entries).sum();
    assert_eq!(total, 2_050);
    assert!(reports.iter().all(|r| r.intact()), "{reports:#?}");
    let listed = log
        .list(Some(&tenants[1]), None, 10_000)
        .await
        .expect("list");
    assert_eq!(listed.len(), 500);
    assert!(listed.iter().all(|e| e.tenant_id == Some(tenants[1])));
}

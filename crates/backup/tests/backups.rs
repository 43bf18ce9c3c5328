//! Backups, restores, clones and erasures against real PostgreSQL: round trips in each mode
//! and across modes with row-by-row equality, another tenant untouched, every kind of damage
//! detected with nothing changed, keys, versions, certificates.

use bulkhead_backup::{BackupError, MasterKey};
use bulkhead_directory::{Directory, TenantRef};
use bulkhead_model::{Mode, TenantId};
use bulkhead_pgkit::shared_cluster;
use bulkhead_provisioner::naming::Naming;
use bulkhead_provisioner::TenantPlace;

#[path = "../../provisioner/tests/support/fixture.rs"]
mod fixture;

struct Env {
    dir: Directory,
    service: String,
    master: MasterKey,
}

async fn env(label: &str) -> Env {
    let service = format!("bk_{label}");
    Env {
        dir: fixture::billing(label, &service).await,
        service,
        master: MasterKey::from_bytes([42; 32]),
    }
}

async fn tenant(env: &Env, slug: &str, mode: Mode) -> TenantId {
    fixture::place_tenant(&env.dir, &env.service, slug, mode, None, None).await
}

/// A client on the tenant's database and the schema its tables are in.
async fn place(env: &Env, t: &TenantId) -> (tokio_postgres::Client, String) {
    let p = env
        .dir
        .placement(&env.service.parse().expect("s"), t)
        .await
        .expect("p")
        .expect("placement");
    let svc = env.dir.service(&p.service).await.expect("svc");
    let naming = Naming::of(&env.dir).await.expect("naming");
    let place = TenantPlace::new(&naming, &svc, *t, p.mode);
    let client = shared_cluster()
        .expect("cluster")
        .connect(&place.database)
        .await
        .expect("connect");
    (client, place.schema.unwrap_or_else(|| "public".into()))
}

async fn seed(env: &Env, t: &TenantId, n: i64) {
    let (c, s) = place(env, t).await;
    c.batch_execute(&format!(
        "SET session_replication_role = replica;
         INSERT INTO \"{s}\".customers (tenant_id, id, name, country) SELECT '{t}', g, 'name ' || g || ' it''s', 'fr' FROM generate_series(1, {n}) g;
         INSERT INTO \"{s}\".orders (tenant_id, id, customer_id, amount) SELECT '{t}', g, g, g * 1.5 FROM generate_series(1, {n}) g;
         INSERT INTO \"{s}\".events (tenant_id, kind) SELECT '{t}', 'k' || g FROM generate_series(1, {n}) g;"
    ))
    .await
    .expect("seed");
}

/// Every row of the tenant (tenant id left out, so clones compare), sorted.
async fn rows(env: &Env, t: &TenantId) -> Vec<String> {
    let (c, s) = place(env, t).await;
    let mut out = Vec::new();
    for (table, cols) in [
        ("customers", "id, name, country"),
        ("orders", "id, customer_id, amount, created_at"),
        ("events", "id, kind, at"),
        ("invoices", "id, order_id, issued_on"),
        ("order_items", "order_id, line, sku, quantity"),
    ] {
        for r in c
            .query(
                &format!("SELECT '{table}' || ROW({cols})::text FROM \"{s}\".{table} WHERE tenant_id = $1 ORDER BY 1"),
                &[&t.as_uuid()],
            )
            .await
            .expect("rows")
        {
            out.push(r.get(0));
        }
    }
    out
}

async fn take(env: &Env, t: &TenantId) -> Vec<u8> {
    bulkhead_backup::backup(
        &env.dir,
        &env.master,
        &TenantRef::Id(*t),
        None,
        Vec::new(),
        &(),
    )
    .await
    .expect("backup")
    .1
}

async fn restore(
    env: &Env,
    t: &TenantId,
    archive: &[u8],
) -> Result<bulkhead_backup::Restored, BackupError> {
    let tenant = env.dir.tenant(&TenantRef::Id(*t)).await.expect("tenant");
    bulkhead_backup::restore(&env.dir, &env.master, &tenant, archive, false, &()).await
}

async fn scribble(env: &Env, t: &TenantId) {
    let (c, s) = place(env, t).await;
    c.batch_execute(&format!(
        "SET session_replication_role = replica; DELETE FROM \"{s}\".customers WHERE tenant_id = '{t}' AND id % 3 = 0;
         UPDATE \"{s}\".orders SET amount = 0 WHERE tenant_id = '{t}'; INSERT INTO \"{s}\".customers (tenant_id, id, name) VALUES ('{t}', 99999, 'new');"
    ))
    .await
    .expect("scribble");
}

#[tokio::test]
async fn round_trips_in_each_mode_and_across_modes_leave_other_tenants_alone() {
    let env = env("round_trip").await;
    let other = tenant(&env, "other", Mode::Shared).await;
    seed(&env, &other, 50).await;
    let other_before = rows(&env, &other).await;
    for (i, mode) in [Mode::Shared, Mode::Schema, Mode::Database]
        .into_iter()
        .enumerate()
    {
        let t = tenant(&env, &format!("t{i}"), mode).await;
        seed(&env, &t, 200).await;
        let before = rows(&env, &t).await;
        let archive = take(&env, &t).await;
        scribble(&env, &t).await;
        assert_ne!(rows(&env, &t).await, before);
        let r = restore(&env, &t, &archive).await.expect("restore");
        assert_eq!(rows(&env, &t).await, before, "round trip in {mode}");
        assert!(r
            .tables
            .iter()
            .any(|(n, rows)| n == "customers" && *rows == 200));
        assert_eq!(
            rows(&env, &other).await,
            other_before,
            "the other tenant after restoring {mode}"
        );
        // The identity sequence continues past the restored rows.
        let (c, s) = place(&env, &t).await;
        let id: i64 = c
            .query_one(&format!("INSERT INTO \"{s}\".events (tenant_id, kind) VALUES ('{t}', 'after') RETURNING id"), &[])
            .await
            .expect("insert")
            .get(0);
        assert!(id > 200, "sequence continues ({id})");
    }
    // A backup taken in schema mode restores into the same tenant after a move to database.
    let t = tenant(&env, "mover", Mode::Schema).await;
    seed(&env, &t, 100).await;
    let before = rows(&env, &t).await;
    let archive = take(&env, &t).await;
    bulkhead_mover::start(
        &env.dir,
        &bulkhead_mover::MoveRequest {
            tenant: TenantRef::Id(t),
            service: None,
            to: Mode::Database,
            cluster: None,
        },
        &Default::default(),
        &(),
    )
    .await
    .expect("move");
    scribble(&env, &t).await;
    let r = restore(&env, &t, &archive)
        .await
        .expect("restore across modes");
    assert_eq!(r.mode, Mode::Database);
    assert_eq!(
        rows(&env, &t).await,
        before,
        "schema backup restored into database mode"
    );
    assert_eq!(rows(&env, &other).await, other_before);
}

#[tokio::test]
async fn damage_anywhere_is_detected_and_changes_nothing() {
    let env = env("damage").await;
    let t = tenant(&env, "acme", Mode::Schema).await;
    seed(&env, &t, 3000).await;
    let archive = take(&env, &t).await;
    scribble(&env, &t).await;
    let now = rows(&env, &t).await;
    let n = archive.len();
    for at in [0, 5, 9, 20, 60, 200, n / 3, n / 2, n - 40, n - 1] {
        let mut bad = archive.clone();
        bad[at] ^= 0x10;
        let e = restore(&env, &t, &bad)
            .await
            .expect_err("a flipped byte is refused");
        assert!(
            matches!(e, BackupError::Corrupt(_) | BackupError::Refused(_)),
            "byte {at} of {n}: {e}"
        );
        assert_eq!(rows(&env, &t).await, now, "nothing changed (byte {at})");
    }
    for cut in [3, 30, n / 2, n - 1] {
        let e = restore(&env, &t, &archive[..cut])
            .await
            .expect_err("a cut-off archive is refused");
        assert!(matches!(e, BackupError::Corrupt(_)), "cut at {cut}: {e}");
        assert_eq!(rows(&env, &t).await, now);
    }
    let mut longer = archive.clone();
    longer.push(0);
    assert!(matches!(
        restore(&env, &t, &longer).await,
        Err(BackupError::Corrupt(_))
    ));
    // Another master key opens nothing.
    let tenant_rec = env.dir.tenant(&TenantRef::Id(t)).await.expect("tenant");
    let e = bulkhead_backup::restore(
        &env.dir,
        &MasterKey::from_bytes([7; 32]),
        &tenant_rec,
        &archive[..],
        false,
        &(),
    )
    .await
    .expect_err("wrong key");
    assert!(matches!(e, BackupError::Key(_)), "{e}");
    assert!(e.to_string().contains("master key"), "{e}");
    assert_eq!(rows(&env, &t).await, now);
    // The intact archive still restores.
    restore(&env, &t, &archive).await.expect("intact");
}

#[tokio::test]
async fn other_tenants_archives_newer_versions_and_clones() {
    let env = env("fit").await;
    let a = tenant(&env, "a", Mode::Shared).await;
    let b = tenant(&env, "b", Mode::Shared).await;
    seed(&env, &a, 100).await;
    let archive = take(&env, &a).await;
    let e = restore(&env, &b, &archive)
        .await
        .expect_err("another tenant's archive");
    assert!(e.to_string().contains("--as-new"), "{e}");
    // A clone into a new tenant, in another mode: the same rows, its own tenant id.
    let r = bulkhead_backup::clone_tenant(
        &env.dir,
        &env.master,
        &TenantRef::Id(a),
        &"a-staging".parse().expect("slug"),
        Some(Mode::Schema),
        &(),
    )
    .await
    .expect("clone");
    assert_eq!(r.mode, Mode::Schema);
    assert_ne!(r.tenant_id, a);
    assert_eq!(
        rows(&env, &r.tenant_id).await,
        rows(&env, &a).await,
        "the clone's rows"
    );
    // A backup newer than the place is refused.
    let c = tenant(&env, "c", Mode::Schema).await;
    seed(&env, &c, 10).await;
    let archive = take(&env, &c).await;
    let (client, schema) = place(&env, &c).await;
    client
        .execute(
            "DELETE FROM bulkhead.applied_migrations WHERE target = $1 AND version = 2",
            &[&schema],
        )
        .await
        .expect("pretend the place is behind");
    let e = restore(&env, &c, &archive).await.expect_err("newer");
    assert!(e.to_string().contains("migrate the service first"), "{e}");
}

#[tokio::test]
async fn erasure_destroys_the_key_and_signs_a_certificate() {
    let env = env("erase").await;
    let t = tenant(&env, "gone", Mode::Database).await;
    let other = tenant(&env, "stays", Mode::Shared).await;
    seed(&env, &t, 40).await;
    seed(&env, &other, 40).await;
    let other_before = rows(&env, &other).await;
    let archive = take(&env, &t).await;
    let cert = bulkhead_backup::erase(&env.dir, &env.master, &TenantRef::Id(t))
        .await
        .expect("erase");
    assert!(
        cert.certificate.contains("\"customers\""),
        "{}",
        cert.certificate
    );
    assert!(cert.certificate.contains("40"), "{}", cert.certificate);
    let tenant_rec = env.dir.tenant(&TenantRef::Id(t)).await.expect("tenant");
    assert_eq!(tenant_rec.state, bulkhead_model::TenantState::Suspended);
    assert!(
        env.dir.placements_of(&t).await.expect("p").is_empty(),
        "its data is gone"
    );
    assert_eq!(rows(&env, &other).await, other_before);
    // Every backup is unreadable now.
    let e = bulkhead_backup::restore_as_new(
        &env.dir,
        &env.master,
        &archive,
        &"revived".parse().expect("s"),
        None,
        &(),
    )
    .await
    .expect_err("no key");
    assert!(e.to_string().contains("destroyed"), "{e}");
    assert!(
        env.dir
            .tenant(&TenantRef::Slug("revived".parse().expect("s")))
            .await
            .is_err(),
        "nothing was created"
    );
    // The certificate verifies; an altered one does not.
    let (c, valid) = bulkhead_backup::certificate(&env.dir, &env.master, "gone")
        .await
        .expect("certificate");
    assert!(valid);
    let altered = bulkhead_directory::StoredCertificate {
        certificate: c.certificate.replace("40", "4"),
        ..c.clone()
    };
    env.dir.record_erasure(&altered).await.expect("tamper");
    let (_, valid) = bulkhead_backup::certificate(&env.dir, &env.master, "gone")
        .await
        .expect("certificate");
    assert!(!valid, "an altered certificate does not verify");
    let (_, valid) =
        bulkhead_backup::certificate(&env.dir, &MasterKey::from_bytes([9; 32]), &t.to_string())
            .await
            .expect("certificate");
    assert!(!valid, "nor under another master key");
}

#[tokio::test]
async fn an_older_backup_restores_after_a_migration() {
    let env = env("older").await;
    let mut tenants = Vec::new();
    for (i, mode) in [Mode::Shared, Mode::Schema, Mode::Database]
        .into_iter()
        .enumerate()
    {
        let t = tenant(&env, &format!("t{i}"), mode).await;
        seed(&env, &t, 30).await;
        let before = rows(&env, &t).await;
        let archive = take(&env, &t).await;
        tenants.push((t, mode, before, archive));
    }
    let svc = env.service.parse().expect("s");
    env.dir
        .register_migrations(
            &svc,
            &[bulkhead_directory::MigrationFile {
                version: 3,
                name: "customer_shouts".into(),
                sql: "ALTER TABLE customers ADD COLUMN shout text; UPDATE customers SET shout = upper(name);".into(),
            }],
        )
        .await
        .expect("register");
    let summary =
        bulkhead_provisioner::migrate::migrate_service(&env.dir, &svc, &Default::default(), &())
            .await
            .expect("migrate");
    assert_eq!(summary.failed(), 0);
    for (t, mode, before, archive) in &tenants {
        scribble(&env, t).await;
        let r = restore(&env, t, archive)
            .await
            .expect("an older backup restores");
        assert_eq!(r.version, 2);
        assert_eq!(&rows(&env, t).await, before, "rows as backed up ({mode})");
        let (c, sch) = place(&env, t).await;
        let shouts: Vec<Option<String>> = c
            .query(
                &format!("SELECT shout FROM \"{sch}\".customers WHERE tenant_id = $1 ORDER BY id LIMIT 2"),
                &[&t.as_uuid()],
            )
            .await
            .expect("shouts")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            shouts,
            vec![
                Some("NAME 1 IT'S".to_string()),
                Some("NAME 2 IT'S".to_string())
            ],
            "the newer migration ran over the restored rows ({mode})"
        );
    }
}

#[tokio::test]
async fn a_backup_never_carries_rows_under_another_tenants_id() {
    let env = env("planted").await;
    let a = tenant(&env, "attacker", Mode::Schema).await;
    let b = tenant(&env, "victim", Mode::Shared).await;
    let (c, s) = place(&env, &a).await;
    c.batch_execute(&format!(
        "INSERT INTO \"{s}\".customers (tenant_id, id, name) VALUES ('{b}', 1, 'planted')"
    ))
    .await
    .expect("plant");
    let e = bulkhead_backup::backup(
        &env.dir,
        &env.master,
        &TenantRef::Id(a),
        None,
        Vec::new(),
        &(),
    )
    .await
    .expect_err("refused");
    assert!(e.to_string().contains("tenant_id is not its own"), "{e}");
}

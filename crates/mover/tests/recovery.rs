//! A mover stopped at each phase and run again, rollbacks before and after the switch, a
//! hold that holds one tenant only, pre-checks that refuse before anything is copied,
//! migrations during a move, and a move to another cluster.

use std::time::Duration;

use bulkhead_directory::{MigrationFile, MovePhase, NewCluster, TenantRef};
use bulkhead_model::{ClusterName, Mode, TenantId};
use bulkhead_mover::{MoveError, MoveOptions, MoveRequest};
use bulkhead_provisioner::migrate::{migrate_service, MigrateOptions};

mod support;
use support::*;

fn request(tenant: TenantId, to: Mode, cluster: Option<&str>) -> MoveRequest {
    MoveRequest {
        tenant: TenantRef::Id(tenant),
        service: None,
        to,
        cluster: cluster.map(|c| c.parse::<ClusterName>().expect("cluster")),
    }
}

fn halting(phase: MovePhase) -> MoveOptions {
    MoveOptions {
        halt_after: Some(phase),
        ..Default::default()
    }
}

/// What the gateway shows equals what the writer was told committed.
async fn assert_acked(env: &Env, key: &str, acked: &Acked) {
    let (customers, events) = snapshot(env, key).await;
    assert_eq!(customers, acked.customers, "acknowledged customers");
    for e in &acked.events {
        assert!(events.binary_search(e).is_ok(), "acknowledged event {e}");
    }
}

async fn placement(env: &Env, tenant: &TenantId) -> bulkhead_directory::Placement {
    env.dir
        .placement(&env.service.parse().expect("s"), tenant)
        .await
        .expect("placement")
        .expect("exists")
}

async fn exists(sql: &str, db: &str) -> bool {
    let pg = bulkhead_pgkit::shared_cluster().expect("cluster");
    let c = pg.connect(db).await.expect("connect");
    c.query_one(sql, &[]).await.expect("query").get(0)
}

#[tokio::test]
async fn a_mover_stopped_after_each_phase_resumes_to_the_same_result() {
    let env = env("resume").await;
    for (i, phase) in [
        MovePhase::Planned,
        MovePhase::Provisioned,
        MovePhase::Copying,
        MovePhase::Copied,
        MovePhase::Cutover,
    ]
    .into_iter()
    .enumerate()
    {
        let to = if i % 2 == 0 {
            Mode::Schema
        } else {
            Mode::Database
        };
        let (id, key) = tenant(&env, &format!("t{i}"), Mode::Shared).await;
        let writer = Writer::start(&env, &key, 1).await;
        wait_commits(&writer, 20).await;
        let stopped = bulkhead_mover::start(&env.dir, &request(id, to, None), &halting(phase), &())
            .await
            .expect_err("halts");
        assert!(matches!(stopped, MoveError::Halted(_)), "{stopped}");
        let recorded = env
            .dir
            .moves_of(&env.service.parse().expect("s"), &id)
            .await
            .expect("moves");
        if phase == MovePhase::Copying {
            assert_eq!(
                recorded[0].tables_copied.len(),
                1,
                "stopped between tables: the resumed copy starts at the second"
            );
        }
        let m = bulkhead_mover::start(
            &env.dir,
            &request(id, to, None),
            &MoveOptions::default(),
            &(),
        )
        .await
        .unwrap_or_else(|e| panic!("resuming after {phase}: {e}"));
        assert_eq!(m.phase, MovePhase::Switched);
        wait_commits(&writer, 10).await;
        let acked = writer.stop().await;
        assert_acked(&env, &key, &acked).await;
        assert_eq!(placement(&env, &id).await.mode, to);
        eprintln!(
            "stopped after {phase}: resumed, {} commits, pause {:?} ms",
            acked.commits, m.pause_ms
        );
    }
}

#[tokio::test]
async fn rollback_after_the_switch_moves_back_with_every_write() {
    let env = env("rollback_after").await;
    let (id, key) = tenant(&env, "acme", Mode::Shared).await;
    let writer = Writer::start(&env, &key, 1).await;
    wait_commits(&writer, 20).await;
    let m = bulkhead_mover::start(
        &env.dir,
        &request(id, Mode::Database, None),
        &MoveOptions::default(),
        &(),
    )
    .await
    .expect("move");
    assert_eq!(placement(&env, &id).await.mode, Mode::Database);
    // Writes made at the new place must come back too.
    wait_commits(&writer, 30).await;
    let back = bulkhead_mover::rollback(
        &env.dir,
        &TenantRef::Id(id),
        None,
        &MoveOptions::default(),
        &(),
    )
    .await
    .expect("rollback");
    assert_eq!(
        back.phase,
        MovePhase::Finalized,
        "a rollback removes the place it left"
    );
    assert_eq!(back.rollback_of, Some(m.id));
    wait_commits(&writer, 10).await;
    let acked = writer.stop().await;
    assert_acked(&env, &key, &acked).await;
    assert_eq!(placement(&env, &id).await.mode, Mode::Shared);
    let original = env.dir.get_move(m.id).await.expect("move");
    assert_eq!(original.phase, MovePhase::RolledBack);
    let db = bulkhead_provisioner::TenantPlace::new(
        &bulkhead_provisioner::naming::Naming::of(&env.dir)
            .await
            .expect("naming"),
        &env.dir
            .service(&env.service.parse().expect("s"))
            .await
            .expect("svc"),
        id,
        Mode::Database,
    )
    .database;
    assert!(
        !exists(
            &format!("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{db}')"),
            "postgres"
        )
        .await,
        "the database the tenant left is gone"
    );
}

#[tokio::test]
async fn rollback_before_the_switch_leaves_the_tenant_where_it_was() {
    let env = env("rollback_before").await;
    let (id, key) = tenant(&env, "acme", Mode::Shared).await;
    let writer = Writer::start(&env, &key, 1).await;
    wait_commits(&writer, 20).await;
    bulkhead_mover::start(
        &env.dir,
        &request(id, Mode::Schema, None),
        &halting(MovePhase::Copied),
        &(),
    )
    .await
    .expect_err("halts");
    let aborted = bulkhead_mover::rollback(
        &env.dir,
        &TenantRef::Id(id),
        None,
        &MoveOptions::default(),
        &(),
    )
    .await
    .expect("rollback");
    assert_eq!(aborted.phase, MovePhase::Aborted);
    wait_commits(&writer, 10).await;
    let acked = writer.stop().await;
    assert_acked(&env, &key, &acked).await;
    let p = placement(&env, &id).await;
    assert_eq!((p.mode, p.epoch), (Mode::Shared, 1), "never switched");
    let pool = format!("bh_{}", env.service);
    assert!(
        !exists(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = '{}')",
                schema_of(&env, &id).await
            ),
            &pool
        )
        .await,
        "the target schema is removed"
    );
    assert!(
        !exists(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{}')",
                aborted.slot_name
            ),
            &pool
        )
        .await,
        "the slot is dropped"
    );
}

#[tokio::test]
async fn a_hold_holds_that_tenant_only() {
    let env = env("hold_one").await;
    let (a, a_key) = tenant(&env, "a", Mode::Shared).await;
    let (_, b_key) = tenant(&env, "b", Mode::Shared).await;
    let ca = connect(&env, &a_key).await.expect("a");
    let cb = connect(&env, &b_key).await.expect("b");
    let svc = env.service.parse().expect("s");
    env.dir.hold_placement(&svc, &a, true).await.expect("hold");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let held = tokio::spawn(async move {
        ca.query_one("SELECT count(*) FROM customers", &[])
            .await
            .map(|r| r.get::<_, i64>(0))
    });
    // B is served while A waits.
    for _ in 0..20 {
        cb.query_one("SELECT count(*) FROM customers", &[])
            .await
            .expect("b is not held");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished(), "a's transaction waits while a is held");
    env.dir
        .hold_placement(&svc, &a, false)
        .await
        .expect("release");
    let n = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("released")
        .expect("task")
        .expect("a's transaction runs once released");
    assert_eq!(n, 0);
}

#[tokio::test]
async fn moves_that_could_not_finish_are_refused_before_anything_is_copied() {
    let env = env("prechecks").await;
    // A cluster without logical replication is refused when it is added, with the fix (the
    // move's pre-check reads the same setting again, for a cluster changed since).
    let replica =
        bulkhead_pgkit::ThrowawayCluster::start_with_settings(&[("wal_level", "replica")])
            .expect("cluster");
    let e = bulkhead_provisioner::add_cluster(
        &env.dir,
        &NewCluster {
            name: "physical".parse().expect("n"),
            region: "local".parse().expect("r"),
            admin_dsn: replica.dsn("postgres"),
            capacity: None,
        },
    )
    .await
    .expect_err("refused");
    assert!(
        e.to_string()
            .contains("ALTER SYSTEM SET wal_level = logical"),
        "{e}"
    );
    // A table without a primary key.
    let (id, _) = tenant(&env, "nokey", Mode::Shared).await;
    let pg = bulkhead_pgkit::shared_cluster().expect("cluster");
    let pool = pg
        .connect(&format!("bh_{}", env.service))
        .await
        .expect("pool");
    pool.batch_execute("CREATE TABLE public.notes (tenant_id uuid NOT NULL, body text)")
        .await
        .expect("table");
    let e = bulkhead_mover::start(
        &env.dir,
        &request(id, Mode::Database, None),
        &MoveOptions::default(),
        &(),
    )
    .await
    .expect_err("refused");
    assert!(e.to_string().contains("notes has no primary key"), "{e}");
    pool.batch_execute("DROP TABLE public.notes")
        .await
        .expect("drop");
    // Another region.
    bulkhead_provisioner::add_cluster(
        &env.dir,
        &NewCluster {
            name: "faraway".parse().expect("n"),
            region: "elsewhere".parse().expect("r"),
            admin_dsn: pg.dsn("postgres"),
            capacity: None,
        },
    )
    .await
    .expect("cluster");
    let (pinned, _) =
        tenant_placed(&env, "pinned", Mode::Shared, Some("main"), Some("local")).await;
    let e = bulkhead_mover::start(
        &env.dir,
        &request(pinned, Mode::Database, Some("faraway")),
        &MoveOptions::default(),
        &(),
    )
    .await
    .expect_err("refused");
    assert!(e.to_string().contains("pinned to region local"), "{e}");
    // Nothing was recorded or built for any of them.
    for t in [id, pinned] {
        let moves = env
            .dir
            .moves_of(&env.service.parse().expect("s"), &t)
            .await
            .expect("moves");
        assert!(moves.is_empty(), "no move recorded");
        assert_eq!(placement(&env, &t).await.mode, Mode::Shared);
    }
}

fn v3_add_note() -> MigrationFile {
    MigrationFile {
        version: 3,
        name: "customer_notes".into(),
        sql: "ALTER TABLE customers ADD COLUMN note text;".into(),
    }
}

#[tokio::test]
async fn a_migration_during_a_move_reaches_source_and_target() {
    let env = env("migrate_during").await;
    let svc = env.service.parse().expect("s");
    // A migration that ran while the mover was stopped is applied to the target on resume.
    let (id, key) = tenant(&env, "stopped", Mode::Shared).await;
    let writer = Writer::start(&env, &key, 1).await;
    wait_commits(&writer, 10).await;
    bulkhead_mover::start(
        &env.dir,
        &request(id, Mode::Schema, None),
        &halting(MovePhase::Copied),
        &(),
    )
    .await
    .expect_err("halts");
    env.dir
        .register_migrations(&svc, &[v3_add_note()])
        .await
        .expect("register");
    let summary = migrate_service(&env.dir, &svc, &MigrateOptions::default(), &())
        .await
        .expect("migrate");
    assert_eq!(summary.failed(), 0, "{summary:#?}");
    bulkhead_mover::start(
        &env.dir,
        &request(id, Mode::Schema, None),
        &MoveOptions::default(),
        &(),
    )
    .await
    .expect("resumed");
    let acked = writer.stop().await;
    assert_acked(&env, &key, &acked).await;
    let c = connect(&env, &key).await.expect("connect");
    c.execute(
        "UPDATE customers SET note = 'has the column' WHERE id = 1",
        &[],
    )
    .await
    .expect("the target has the migrated column");
    assert_eq!(placement(&env, &id).await.schema_version, 3);

    // A migration started while a mover runs waits for the switch, then reaches the new place.
    let (id, key) = tenant(&env, "running", Mode::Shared).await;
    let writer = Writer::start(&env, &key, 1).await;
    wait_commits(&writer, 10).await;
    let (dir, svc2) = (env.dir.clone(), svc.clone());
    let mover = tokio::spawn(async move {
        bulkhead_mover::start(
            &dir,
            &request(id, Mode::Database, None),
            &MoveOptions::default(),
            &(),
        )
        .await
    });
    // Give the mover its lock first.
    tokio::time::sleep(Duration::from_millis(30)).await;
    env.dir
        .register_migrations(
            &svc,
            &[
                v3_add_note(),
                MigrationFile {
                    version: 4,
                    name: "order_notes".into(),
                    sql: "ALTER TABLE orders ADD COLUMN note text;".into(),
                },
            ],
        )
        .await
        .expect("register");
    let summary = migrate_service(&env.dir, &svc2, &MigrateOptions::default(), &())
        .await
        .expect("migrate");
    assert_eq!(summary.failed(), 0, "{summary:#?}");
    let m = mover.await.expect("task").expect("move");
    assert_eq!(m.phase, MovePhase::Switched);
    let acked = writer.stop().await;
    assert_acked(&env, &key, &acked).await;
    let p = placement(&env, &id).await;
    assert_eq!(
        (p.mode, p.schema_version),
        (Mode::Database, 4),
        "the new place is migrated"
    );
    let c = connect(&env, &key).await.expect("connect");
    c.query("SELECT note FROM orders", &[])
        .await
        .expect("the target has the new column");
}

#[tokio::test]
async fn a_database_tenant_moves_to_another_cluster() {
    let env = env("other_cluster").await;
    let second = bulkhead_pgkit::ThrowawayCluster::start().expect("second cluster");
    bulkhead_provisioner::add_cluster(
        &env.dir,
        &NewCluster {
            name: "c2".parse().expect("n"),
            region: "local".parse().expect("r"),
            admin_dsn: second.dsn("postgres"),
            capacity: None,
        },
    )
    .await
    .expect("cluster");
    let (id, key) = tenant(&env, "acme", Mode::Database).await;
    let writer = Writer::start(&env, &key, 1).await;
    wait_commits(&writer, 20).await;
    let m = bulkhead_mover::start(
        &env.dir,
        &request(id, Mode::Database, Some("c2")),
        &MoveOptions::default(),
        &(),
    )
    .await
    .expect("move");
    assert_eq!(m.phase, MovePhase::Switched);
    wait_commits(&writer, 20).await;
    let acked = writer.stop().await;
    assert_acked(&env, &key, &acked).await;
    let p = placement(&env, &id).await;
    assert_eq!(
        (p.mode, p.cluster.as_str(), p.tenant_id),
        (Mode::Database, "c2", id)
    );
    bulkhead_mover::finalize(&env.dir, &TenantRef::Id(id), None)
        .await
        .expect("finalize");
    assert!(
        !exists(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{}')",
                p.database
            ),
            "postgres"
        )
        .await,
        "the source database on main is gone"
    );
    assert_acked(&env, &key, &acked).await;
}

#[tokio::test]
async fn a_move_without_parity_aborts_and_the_tenant_stays_with_all_its_rows() {
    let env = env("no_parity").await;
    let (id, key) = tenant(&env, "acme", Mode::Shared).await;
    let writer = Writer::start(&env, &key, 1).await;
    wait_commits(&writer, 20).await;
    bulkhead_mover::start(
        &env.dir,
        &request(id, Mode::Schema, None),
        &halting(MovePhase::Copied),
        &(),
    )
    .await
    .expect_err("halts");
    // Something outside Bulkhead loses a row at the target.
    let pool = format!("bh_{}", env.service);
    let pg = bulkhead_pgkit::shared_cluster().expect("cluster");
    let c = pg.connect(&pool).await.expect("pool");
    c.batch_execute(&format!(
        "SET session_replication_role = replica; DELETE FROM {}.customers WHERE id = 3",
        schema_of(&env, &id).await
    ))
    .await
    .expect("sabotage");
    let e = bulkhead_mover::start(
        &env.dir,
        &request(id, Mode::Schema, None),
        &MoveOptions::default(),
        &(),
    )
    .await
    .expect_err("no parity");
    assert!(matches!(e, MoveError::Parity(_)), "{e}");
    assert!(e.to_string().contains("customers"), "names the table: {e}");
    wait_commits(&writer, 10).await;
    let acked = writer.stop().await;
    assert_acked(&env, &key, &acked).await;
    let p = placement(&env, &id).await;
    assert_eq!(
        (p.mode, p.epoch),
        (Mode::Shared, 1),
        "the tenant stayed where it was"
    );
    let m = &env
        .dir
        .moves_of(&env.service.parse().expect("s"), &id)
        .await
        .expect("moves")[0];
    assert_eq!(m.phase, MovePhase::Aborted);
    assert!(
        !exists(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = '{}')",
                schema_of(&env, &id).await
            ),
            &pool
        )
        .await,
        "the target is removed"
    );
    // And the tenant can move again afterwards.
    let writer = Writer::start(&env, &key, 10_000).await;
    bulkhead_mover::start(
        &env.dir,
        &request(id, Mode::Schema, None),
        &MoveOptions::default(),
        &(),
    )
    .await
    .expect("moves once the target is sound");
    let again = writer.stop().await;
    let (customers, _) = snapshot(&env, &key).await;
    for (k, v) in acked.customers.iter().chain(again.customers.iter()) {
        assert_eq!(customers.get(k), Some(v), "customer {k}");
    }
}

#[tokio::test]
async fn a_full_target_cluster_is_refused() {
    let env = env("full_target").await;
    let tiny = bulkhead_pgkit::ThrowawayCluster::start().expect("cluster");
    bulkhead_provisioner::add_cluster(
        &env.dir,
        &NewCluster {
            name: "tiny".parse().expect("n"),
            region: "local".parse().expect("r"),
            admin_dsn: tiny.dsn("postgres"),
            capacity: Some(1),
        },
    )
    .await
    .expect("cluster");
    // The one placement tiny takes.
    tenant_placed(&env, "filler", Mode::Shared, Some("tiny"), None).await;
    let (id, _) = tenant(&env, "acme", Mode::Shared).await;
    let e = bulkhead_mover::start(
        &env.dir,
        &request(id, Mode::Database, Some("tiny")),
        &MoveOptions::default(),
        &(),
    )
    .await
    .expect_err("refused");
    assert!(e.to_string().contains("cluster tiny is full"), "{e}");
    assert!(env
        .dir
        .moves_of(&env.service.parse().expect("s"), &id)
        .await
        .expect("moves")
        .is_empty());
}

/// A schema tenant may write any tenant_id in its own tables; moved into shared tables such
/// a row would belong to the tenant it names. The move refuses before copying, and a row
/// planted while the move runs stops it; the named tenant never sees it.
#[tokio::test]
async fn rows_planted_under_another_tenants_id_never_reach_shared_tables() {
    let env = env("planted").await;
    let (a, a_key) = tenant(&env, "attacker", Mode::Schema).await;
    let (b, b_key) = tenant(&env, "victim", Mode::Shared).await;
    let ca = connect(&env, &a_key).await.expect("a");
    ca.execute(
        &format!("INSERT INTO customers (tenant_id, id, name) VALUES ('{b}', 7, 'planted')"),
        &[],
    )
    .await
    .expect("a tenant may write any tenant_id in its own schema");
    let e = bulkhead_mover::start(
        &env.dir,
        &request(a, Mode::Shared, None),
        &MoveOptions::default(),
        &(),
    )
    .await
    .expect_err("refused");
    assert!(e.to_string().contains("tenant_id is not its own"), "{e}");
    assert!(env
        .dir
        .moves_of(&env.service.parse().expect("s"), &a)
        .await
        .expect("m")
        .is_empty());

    ca.execute("DELETE FROM customers WHERE id = 7", &[])
        .await
        .expect("clean");
    bulkhead_mover::start(
        &env.dir,
        &request(a, Mode::Shared, None),
        &halting(MovePhase::Copied),
        &(),
    )
    .await
    .expect_err("halts");
    ca.execute(
        &format!("INSERT INTO customers (tenant_id, id, name) VALUES ('{b}', 8, 'planted later')"),
        &[],
    )
    .await
    .expect("planted during the move");
    let e = bulkhead_mover::start(
        &env.dir,
        &request(a, Mode::Shared, None),
        &MoveOptions::default(),
        &(),
    )
    .await
    .expect_err("stops");
    assert!(e.to_string().contains("not the moving tenant's"), "{e}");
    let cb = connect(&env, &b_key).await.expect("b");
    let seen: i64 = cb
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .expect("b reads")
        .get(0);
    assert_eq!(seen, 0, "the victim sees no planted row");
    let aborted = bulkhead_mover::rollback(
        &env.dir,
        &TenantRef::Id(a),
        None,
        &MoveOptions::default(),
        &(),
    )
    .await
    .expect("rollback");
    assert_eq!(aborted.phase, MovePhase::Aborted);
    assert_eq!(placement(&env, &a).await.mode, Mode::Schema);
    let _ = b;
}

/// The schema a tenant of the test service has (or would have) in schema mode.
async fn schema_of(env: &Env, id: &TenantId) -> String {
    bulkhead_provisioner::naming::Naming::of(&env.dir)
        .await
        .expect("naming")
        .tenant_schema(id, &env.service.parse().expect("service"))
}

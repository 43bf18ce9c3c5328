//! Migration fan-out: one failing tenant is isolated and reported while the others migrate;
//! a re-run resumes; a changed applied migration is refused; templates stay current; canary
//! and dry-run; region pins; a failed provisioning is cleaned up and can be retried.

mod support;

use std::sync::Mutex;

use bulkhead_directory::{DirectoryError, MigrationFile, ServiceDatabaseKind};
use bulkhead_model::{Mode, PlacementState};
use bulkhead_provisioner::migrate::{
    migrate_service, migration_status, MigrateOptions, Outcome, Progress, TargetOutcome,
};
use bulkhead_provisioner::{create_tenant, ProvisionError};
use support::*;

fn v3_add_note() -> MigrationFile {
    MigrationFile {
        version: 3,
        name: "order_notes".into(),
        sql: "ALTER TABLE orders ADD COLUMN note text;".into(),
    }
}

#[derive(Default)]
struct Recorder(Mutex<(usize, Vec<String>)>);

impl Progress for Recorder {
    fn started(&self, total: usize) {
        if let Ok(mut r) = self.0.lock() {
            r.0 = total;
        }
    }
    fn finished(&self, outcome: &TargetOutcome) {
        if let Ok(mut r) = self.0.lock() {
            r.1.push(outcome.label.clone());
        }
    }
}

#[tokio::test]
async fn a_failing_tenant_is_reported_while_the_others_migrate_and_a_rerun_resumes() {
    let dir = directory("fanout_fail").await;
    service(&dir, "shop_fan", Mode::Schema, vec![]).await;
    let mut placements = Vec::new();
    for slug in ["t1", "t2", "t3", "t4"] {
        placements.push(tenant(&dir, slug, "shop_fan", Mode::Schema).await.1);
    }
    let (_, db_tenant) = tenant(&dir, "t5", "shop_fan", Mode::Database).await;
    // Sabotage t2: the column the next migration adds already exists there.
    let pool = connect("bh_shop_fan").await;
    let t2_schema = placements[1].schema.clone().expect("schema");
    pool.batch_execute(&format!(
        "ALTER TABLE \"{t2_schema}\".orders ADD COLUMN note text"
    ))
    .await
    .expect("sabotage");

    dir.register_migrations(&"shop_fan".parse().expect("s"), &[v3_add_note()])
        .await
        .expect("register");
    let recorder = Recorder::default();
    let opts = MigrateOptions {
        concurrency: Some(3),
        ..Default::default()
    };
    let summary = migrate_service(&dir, &"shop_fan".parse().expect("s"), &opts, &recorder)
        .await
        .expect("run");
    assert_eq!(summary.failed(), 1, "{summary:#?}");
    let failed = summary
        .targets
        .iter()
        .find(|t| matches!(t.outcome, Outcome::Failed(_)))
        .expect("one failed");
    assert_eq!(failed.label, "tenant t2 (schema)");
    assert!(
        matches!(&failed.outcome, Outcome::Failed(m) if m.contains("already exists")),
        "{failed:?}"
    );
    // pool + template + 4 schemas + 1 database, each reported once.
    let (total, seen) = recorder.0.lock().map(|r| r.clone()).expect("recorder");
    assert_eq!(total, 7);
    assert_eq!(seen.len(), 7);
    for p in placements
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, p)| p)
    {
        as_tenant(p, "SELECT note FROM orders")
            .await
            .expect("migrated tenant has the column");
    }
    as_tenant(&db_tenant, "SELECT note FROM orders")
        .await
        .expect("database tenant migrated");
    let status = migration_status(&dir, &"shop_fan".parse().expect("s"))
        .await
        .expect("status");
    let t2 = status
        .iter()
        .find(|s| s.target.starts_with("tenant t2"))
        .expect("t2 status");
    assert!(t2.state.starts_with("failed"), "{t2:?}");
    assert_eq!(t2.version, 2);

    // Fix t2 and run again: only t2 has work left.
    pool.batch_execute(&format!(
        "ALTER TABLE \"{t2_schema}\".orders DROP COLUMN note"
    ))
    .await
    .expect("fix");
    let again = migrate_service(&dir, &"shop_fan".parse().expect("s"), &opts, &())
        .await
        .expect("rerun");
    assert_eq!(again.failed(), 0, "{again:#?}");
    let changed: Vec<&str> = again
        .targets
        .iter()
        .filter(|t| t.from != t.to)
        .map(|t| t.label.as_str())
        .collect();
    assert_eq!(changed, ["tenant t2 (schema)"]);
    let status = migration_status(&dir, &"shop_fan".parse().expect("s"))
        .await
        .expect("status");
    assert!(status.iter().all(|s| s.state == "current"), "{status:#?}");
}

#[tokio::test]
async fn a_changed_applied_migration_is_refused_loudly() {
    let dir = directory("fanout_checksum").await;
    service(&dir, "shop_sum", Mode::Shared, vec![]).await;
    let mut changed = billing_files();
    changed[0].sql.push_str("\n-- edited after release\n");
    let err = dir
        .register_migrations(&"shop_sum".parse().expect("s"), &changed)
        .await
        .expect_err("changed");
    assert!(
        matches!(err, DirectoryError::MigrationChanged { version: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("new migration file"), "{err}");
    let older = MigrationFile {
        version: 1,
        name: "other".into(),
        sql: "SELECT 1;".into(),
    };
    assert!(dir
        .register_migrations(&"shop_sum".parse().expect("s"), &[older])
        .await
        .is_err());
}

#[tokio::test]
async fn the_template_stays_at_the_current_version_and_new_database_tenants_start_there() {
    let dir = directory("fanout_template").await;
    service(&dir, "shop_tpl", Mode::Database, vec![]).await;
    let (_, first) = tenant(&dir, "d1", "shop_tpl", Mode::Database).await;
    dir.register_migrations(&"shop_tpl".parse().expect("s"), &[v3_add_note()])
        .await
        .expect("register");
    let summary = migrate_service(
        &dir,
        &"shop_tpl".parse().expect("s"),
        &MigrateOptions::default(),
        &(),
    )
    .await
    .expect("run");
    assert_eq!(summary.failed(), 0, "{summary:#?}");
    let dbs = dir
        .service_databases(&"shop_tpl".parse().expect("s"))
        .await
        .expect("dbs");
    let template = dbs
        .iter()
        .find(|d| d.kind == ServiceDatabaseKind::Template)
        .expect("template");
    assert_eq!(template.schema_version, 3);
    let (_, second) = tenant(&dir, "d2", "shop_tpl", Mode::Database).await;
    assert_eq!(second.schema_version, 3);
    as_tenant(&second, "SELECT note FROM orders")
        .await
        .expect("new tenant has v3");
    as_tenant(&first, "SELECT note FROM orders")
        .await
        .expect("old tenant migrated");
    // The copy ran no migration: its applied rows came with the template.
    let db = connect(&second.database).await;
    let applied: i64 = db
        .query_one("SELECT count(*) FROM bulkhead.applied_migrations", &[])
        .await
        .expect("q")
        .get(0);
    assert_eq!(applied, 3);
}

#[tokio::test]
async fn dry_run_changes_nothing_and_a_failing_canary_stops_the_rollout() {
    let dir = directory("fanout_canary").await;
    service(&dir, "shop_can", Mode::Schema, vec![]).await;
    for slug in ["c1", "c2", "c3"] {
        tenant(&dir, slug, "shop_can", Mode::Schema).await;
    }
    // Every schema tenant will fail V3 (it adds a column that exists); the pool will not.
    let pool = connect("bh_shop_can").await;
    pool.batch_execute(
        "DO $$ DECLARE s text; BEGIN FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\\_%' LOOP
            EXECUTE format('ALTER TABLE %I.orders ADD COLUMN note text', s); END LOOP; END $$;",
    )
    .await
    .expect("sabotage");
    dir.register_migrations(&"shop_can".parse().expect("s"), &[v3_add_note()])
        .await
        .expect("register");
    let service = "shop_can".parse().expect("s");
    let dry = MigrateOptions {
        dry_run: true,
        ..Default::default()
    };
    let summary = migrate_service(&dir, &service, &dry, &())
        .await
        .expect("dry run");
    assert!(
        summary
            .targets
            .iter()
            .all(|t| t.outcome == Outcome::WouldApply(vec![3])),
        "{summary:#?}"
    );
    let applied: i64 = pool
        .query_one(
            "SELECT count(*) FROM bulkhead.applied_migrations WHERE version = 3",
            &[],
        )
        .await
        .expect("q")
        .get(0);
    assert_eq!(applied, 0, "dry run applied nothing");

    let canary = MigrateOptions {
        canary: Some(1),
        ..Default::default()
    };
    let summary = migrate_service(&dir, &service, &canary, &())
        .await
        .expect("canary run");
    assert!(summary.canary_stopped);
    let skipped = summary
        .targets
        .iter()
        .filter(|t| matches!(t.outcome, Outcome::Skipped(_)))
        .count();
    assert_eq!(skipped, 2, "{summary:#?}");
    assert_eq!(summary.failed(), 1);
}

#[tokio::test]
async fn a_region_without_a_cluster_is_refused_before_anything_is_created() {
    let dir = directory("region").await;
    service(&dir, "shop_reg", Mode::Shared, vec![]).await;
    let mut req = request("martian", "shop_reg", Mode::Shared);
    req.tenant.region = Some("mars".parse().expect("region"));
    let err = create_tenant(&dir, &req)
        .await
        .expect_err("no cluster on mars");
    assert!(
        matches!(err, ProvisionError::NoClusterInRegion { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--region mars"), "{err}");
    assert!(
        dir.tenant(&"martian".parse().expect("r")).await.is_err(),
        "no tenant record left"
    );
    let mut req = request("earthling", "shop_reg", Mode::Shared);
    req.tenant.region = Some("local".parse().expect("region"));
    create_tenant(&dir, &req).await.expect("local region works");
}

#[tokio::test]
async fn a_failed_provisioning_is_cleaned_up_recorded_and_retried() {
    let dir = directory("retry").await;
    // V3 fails in tenant schemas while a flag table exists in the pool database.
    let flaky = MigrationFile {
        version: 3,
        name: "flaky".into(),
        sql: "DO $$ BEGIN
                IF current_schema() LIKE 't\\_%' AND EXISTS (SELECT 1 FROM pg_tables WHERE tablename = 'provisioning_must_fail') THEN
                  RAISE EXCEPTION 'flag says fail';
                END IF;
              END $$;"
            .into(),
    };
    service(&dir, "shop_retry", Mode::Schema, vec![flaky]).await;
    let pool = connect("bh_shop_retry").await;
    pool.batch_execute("CREATE TABLE public.provisioning_must_fail ()")
        .await
        .expect("flag");
    let err = create_tenant(&dir, &request("flaky", "shop_retry", Mode::Schema))
        .await
        .expect_err("fails");
    assert!(err.to_string().contains("flag says fail"), "{err}");
    let t = dir
        .tenant(&"flaky".parse().expect("r"))
        .await
        .expect("record kept");
    let p = dir
        .placement(&"shop_retry".parse().expect("s"), &t.id)
        .await
        .expect("q")
        .expect("placement");
    assert_eq!(p.state, PlacementState::Failed);
    assert!(p
        .reason
        .as_deref()
        .unwrap_or_default()
        .contains("flag says fail"));
    let schemas: i64 = pool
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
            &[&p.schema.clone().unwrap_or_default()],
        )
        .await
        .expect("q")
        .get(0);
    assert_eq!(schemas, 0, "the failed attempt's schema was removed");

    pool.batch_execute("DROP TABLE public.provisioning_must_fail")
        .await
        .expect("unflag");
    let created = create_tenant(&dir, &request("flaky", "shop_retry", Mode::Schema))
        .await
        .expect("retry works");
    let p = created.placement.expect("placement");
    assert_eq!(p.state, PlacementState::Active);
    assert_eq!(created.tenant.id, t.id, "same tenant id");
    let again = create_tenant(&dir, &request("flaky", "shop_retry", Mode::Schema))
        .await
        .expect_err("already active");
    assert!(again.to_string().contains("already exists"), "{again}");
}

#[tokio::test]
async fn a_migration_behind_a_long_transaction_times_out_retries_and_succeeds() {
    use bulkhead_provisioner::migrate::ApplySettings;
    use std::time::Duration;
    let dir = directory("fanout_locks").await;
    service(&dir, "shop_lock", Mode::Schema, vec![]).await;
    let (_, p1) = tenant(&dir, "l1", "shop_lock", Mode::Schema).await;
    tenant(&dir, "l2", "shop_lock", Mode::Schema).await;
    // A long transaction holds a lock on l1's orders table.
    let lock_sql = format!(
        "BEGIN; LOCK TABLE \"{}\".orders IN ACCESS SHARE MODE",
        p1.schema.clone().expect("schema")
    );
    let holder = connect("bh_shop_lock").await;
    holder.batch_execute(&lock_sql).await.expect("lock");
    dir.register_migrations(&"shop_lock".parse().expect("s"), &[v3_add_note()])
        .await
        .expect("register");
    let opts = MigrateOptions {
        apply: ApplySettings {
            lock_timeout: Duration::from_millis(100),
            lock_retries: 6,
        },
        ..Default::default()
    };
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        holder.batch_execute("ROLLBACK").await.expect("release");
        holder
    });
    let summary = migrate_service(&dir, &"shop_lock".parse().expect("s"), &opts, &())
        .await
        .expect("run");
    let holder = release.await.expect("released");
    assert_eq!(summary.failed(), 0, "{summary:#?}");
    as_tenant(&p1, "SELECT note FROM orders")
        .await
        .expect("l1 migrated after the lock was released");

    // With no retries left, the blocked tenant fails quickly instead of queueing.
    holder.batch_execute(&lock_sql).await.expect("lock");
    dir.register_migrations(
        &"shop_lock".parse().expect("s"),
        &[MigrationFile {
            version: 4,
            name: "more".into(),
            sql: "ALTER TABLE orders ADD COLUMN more text;".into(),
        }],
    )
    .await
    .expect("register v4");
    let opts = MigrateOptions {
        apply: ApplySettings {
            lock_timeout: Duration::from_millis(50),
            lock_retries: 0,
        },
        ..Default::default()
    };
    let summary = migrate_service(&dir, &"shop_lock".parse().expect("s"), &opts, &())
        .await
        .expect("run");
    assert_eq!(summary.failed(), 1, "{summary:#?}");
    let failed = summary
        .targets
        .iter()
        .find(|t| matches!(t.outcome, Outcome::Failed(_)))
        .expect("failed");
    assert_eq!(failed.label, "tenant l1 (schema)");
    assert!(
        matches!(&failed.outcome, Outcome::Failed(m) if m.contains("lock timeout")),
        "{failed:?}"
    );
    holder.batch_execute("ROLLBACK").await.expect("release");
}

#[tokio::test]
async fn schema_tenants_of_one_pool_are_migrated_in_batches() {
    use bulkhead_provisioner::migrate::{apply_batch, plans_for, ApplySettings};
    let dir = directory("fanout_batch").await;
    let service = service(&dir, "shop_batch", Mode::Schema, vec![]).await;
    let mut placements = Vec::new();
    for slug in ["b1", "b2", "b3"] {
        placements.push(tenant(&dir, slug, "shop_batch", Mode::Schema).await.1);
    }
    let pool = connect("bh_shop_batch").await;
    let sabotaged = placements[1].schema.clone().expect("schema");
    pool.batch_execute(&format!(
        "ALTER TABLE \"{sabotaged}\".orders ADD COLUMN note text"
    ))
    .await
    .expect("sabotage");
    dir.register_migrations(&service.name, &[v3_add_note()])
        .await
        .expect("register");
    let service = dir.service(&service.name).await.expect("service");
    let plans = plans_for(&dir, &service).await.expect("plans");
    let cluster = dir
        .cluster(&"main".parse().expect("c"))
        .await
        .expect("cluster");
    let naming = bulkhead_provisioner::naming::Naming::of(&dir)
        .await
        .expect("naming");
    let targets: Vec<_> = placements
        .iter()
        .map(|p| {
            bulkhead_provisioner::TenantPlace::new(&naming, &service, p.tenant_id, p.mode)
                .target(&cluster, p.tenant_id.to_string())
                .expect("target")
        })
        .collect();
    let refs: Vec<_> = targets.iter().collect();
    let mut client = bulkhead_provisioner::admin_connect(&cluster, "bh_shop_batch")
        .await
        .expect("connect");
    let results = apply_batch(&mut client, &refs, &plans, ApplySettings::default()).await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    let err = results[1]
        .as_ref()
        .expect_err("sabotaged tenant fails alone");
    assert!(err.message.contains("already exists"), "{err:?}");
    // Both good tenants were recorded by one transaction: same xmin on their rows.
    let rows = pool
        .query(
            "SELECT xmin::text FROM bulkhead.applied_migrations WHERE version = 3 AND target = ANY($1)",
            &[&vec![placements[0].schema.clone().expect("s"), placements[2].schema.clone().expect("s")]],
        )
        .await
        .expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0].get::<_, String>(0),
        rows[1].get::<_, String>(0),
        "one transaction for the batch"
    );
}

//! Point-in-time recovery of one tenant against a real PostgreSQL archiving its WAL with a real
//! pgBackRest: in each mode, rows written, an instant noted, a mistake made, the tenant rewound
//! to the instant — its rows exactly as they were, a neighbour's rows (changed after the
//! instant) untouched; a tenant moved since; `--as-new`; a dry run; instants outside the
//! window refused with nothing changed; no side instance ever left running, also when the
//! process running a rewind died.

use std::path::Path;
use std::time::Duration;

use bulkhead_backup::MasterKey;
use bulkhead_directory::{Directory, TenantRef};
use bulkhead_model::{Mode, TenantId};
use bulkhead_pgkit::{postmaster_pid, process_running, ThrowawayCluster};
use bulkhead_pitr::repo::Repo;
use bulkhead_pitr::side::{sweep, SideInstance};
use bulkhead_pitr::{rewind, Layout, PitrError, RewindRequest};
use bulkhead_provisioner::naming::Naming;
use bulkhead_provisioner::TenantPlace;
use chrono::Utc;

#[path = "../../provisioner/tests/support/fixture.rs"]
mod fixture;
mod support;

use support::archiving;

const SERVICE: &str = "pitr";

struct Env {
    pg: ThrowawayCluster,
    dir: Directory,
    layout: Layout,
    master: MasterKey,
    _root: tempfile::TempDir,
}

/// A cluster archiving into a pgBackRest repository, its directory, the billing service.
async fn env() -> Env {
    let (pg, layout, root) = archiving::start(&[("full_page_writes", "on")]);
    let dir = fixture::control_on(&pg).await;
    fixture::add_main(&dir, &pg.dsn("postgres")).await;
    fixture::add_service(&dir, SERVICE, fixture::billing_migrations(), &["countries"]).await;
    Env {
        pg,
        dir,
        layout,
        master: MasterKey::from_bytes([7; 32]),
        _root: root,
    }
}

async fn client(env: &Env, t: &TenantId) -> (tokio_postgres::Client, String) {
    let p = env
        .dir
        .placement(&SERVICE.parse().expect("s"), t)
        .await
        .expect("p")
        .expect("placement");
    let svc = env.dir.service(&p.service).await.expect("svc");
    let naming = Naming::of(&env.dir).await.expect("naming");
    let place = TenantPlace::new(&naming, &svc, *t, p.mode);
    let c = env.pg.connect(&place.database).await.expect("connect");
    (c, place.schema.unwrap_or_else(|| "public".into()))
}

async fn exec(env: &Env, t: &TenantId, sql: &str) {
    let (c, s) = client(env, t).await;
    c.batch_execute(&format!(
        "SET search_path = \"{s}\"; SET session_replication_role = replica; {}",
        sql.replace("$T", &t.to_string())
    ))
    .await
    .expect(sql);
}

async fn seed(env: &Env, t: &TenantId, n: i64) {
    exec(
        env,
        t,
        &format!(
            "INSERT INTO customers (tenant_id, id, name, country) SELECT '$T', g, 'name ' || g, 'fr' FROM generate_series(1, {n}) g;
             INSERT INTO orders (tenant_id, id, customer_id, amount) SELECT '$T', g, g, g * 1.5 FROM generate_series(1, {n}) g;"
        ),
    )
    .await;
}

/// The tenant's rows, as text, sorted.
async fn rows(env: &Env, t: &TenantId) -> Vec<String> {
    let (c, s) = client(env, t).await;
    let mut out = Vec::new();
    for (table, cols) in [
        ("customers", "id, name, country"),
        ("orders", "id, customer_id, amount, created_at"),
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
    out.sort();
    out
}

fn request(t: &TenantId, at: chrono::DateTime<Utc>) -> RewindRequest {
    RewindRequest {
        tenant: TenantRef::Id(*t),
        service: None,
        at,
        as_new: None,
        mode: None,
        dry_run: false,
    }
}

/// No side instance folder is left, and no server runs from one.
fn no_side_left(env: &Env) {
    let left: Vec<_> = std::fs::read_dir(env.layout.work_dir())
        .expect("work dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "side instances left: {left:?}");
}

async fn instant() -> chrono::DateTime<Utc> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let at = Utc::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    at
}

#[tokio::test]
async fn one_tenant_rewinds_to_an_instant_in_every_mode_and_nothing_else_changes() {
    let env = env().await;
    // A tenant from before archiving had a base backup: the window starts after it.
    let early = fixture::place_tenant(&env.dir, SERVICE, "early", Mode::Shared, None, None).await;
    let before_window = Utc::now();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    bulkhead_pitr::enable(&env.dir, &"main".parse().expect("n"), &env.layout)
        .await
        .expect("enable");

    let shared = fixture::place_tenant(&env.dir, SERVICE, "acme", Mode::Shared, None, None).await;
    let neighbour =
        fixture::place_tenant(&env.dir, SERVICE, "globex", Mode::Shared, None, None).await;
    let schema =
        fixture::place_tenant(&env.dir, SERVICE, "initech", Mode::Schema, None, None).await;
    let database =
        fixture::place_tenant(&env.dir, SERVICE, "umbrella", Mode::Database, None, None).await;
    let moved = fixture::place_tenant(&env.dir, SERVICE, "hooli", Mode::Shared, None, None).await;
    for (t, n) in [
        (&shared, 50),
        (&neighbour, 20),
        (&schema, 30),
        (&database, 40),
        (&moved, 25),
        (&early, 5),
    ] {
        seed(&env, t, n).await;
    }
    // A base backup that has the database tenant's database, so its rewind restores only it.
    let repo = Repo::new("main", env.layout.config()).expect("repo");
    repo.backup(false).await.expect("incremental base backup");
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let at = instant().await;
    let before: Vec<Vec<String>> = {
        let mut v = Vec::new();
        for t in [&shared, &neighbour, &schema, &database, &moved] {
            v.push(rows(&env, t).await);
        }
        v
    };

    // The mistakes, after the instant; the neighbour's own work after it must survive.
    exec(
        &env,
        &shared,
        "DELETE FROM orders WHERE tenant_id = '$T' AND id > 10",
    )
    .await;
    exec(
        &env,
        &neighbour,
        "INSERT INTO customers (tenant_id, id, name, country) VALUES ('$T', 1000, 'after', 'de')",
    )
    .await;
    exec(
        &env,
        &schema,
        "UPDATE customers SET name = 'oops' WHERE tenant_id = '$T'",
    )
    .await;
    exec(
        &env,
        &database,
        "DELETE FROM orders WHERE tenant_id = '$T'; DELETE FROM customers WHERE tenant_id = '$T'",
    )
    .await;
    let neighbour_now = rows(&env, &neighbour).await;
    assert_ne!(neighbour_now, before[1]);

    // A move after the instant: the tenant lived in shared tables then, in a schema now.
    bulkhead_mover::start(
        &env.dir,
        &bulkhead_mover::MoveRequest {
            tenant: TenantRef::Id(moved),
            service: None,
            to: Mode::Schema,
            cluster: None,
        },
        &Default::default(),
        &(),
    )
    .await
    .expect("move");
    exec(&env, &moved, "DELETE FROM orders WHERE tenant_id = '$T'").await;

    // A dry run says what is there at the instant and changes nothing.
    let mut dry = request(&shared, at);
    dry.dry_run = true;
    let said = rewind(&env.dir, &env.master, &dry, &())
        .await
        .expect("dry run");
    assert!(said.restored.is_none());
    let orders = said
        .tables
        .iter()
        .find(|t| t.table == "orders")
        .expect("orders");
    assert_eq!(orders.rows, 50, "{said:?}");
    assert_ne!(
        rows(&env, &shared).await,
        before[0],
        "a dry run changes nothing"
    );
    no_side_left(&env);

    for (i, t) in [(0, &shared), (2, &schema), (3, &database), (4, &moved)] {
        let done = rewind(&env.dir, &env.master, &request(t, at), &())
            .await
            .unwrap_or_else(|e| panic!("rewind {t}: {e}"));
        assert_eq!(
            rows(&env, t).await,
            before[i],
            "tenant {t} is as it was at the instant"
        );
        assert!(done.restored.is_some());
        no_side_left(&env);
    }
    let moved_then = rewind(
        &env.dir,
        &env.master,
        &{
            let mut r = request(&moved, at);
            r.dry_run = true;
            r
        },
        &(),
    )
    .await
    .expect("dry");
    assert_eq!(
        moved_then.mode_at,
        Mode::Shared,
        "read from where it lived then"
    );
    assert_eq!(
        rows(&env, &neighbour).await,
        neighbour_now,
        "the neighbour is untouched"
    );

    // As a new tenant: the instant's rows in a tenant of their own; the original stays.
    exec(&env, &shared, "DELETE FROM orders WHERE tenant_id = '$T'").await;
    let mut copy = request(&shared, at);
    copy.as_new = Some("acme-then".parse().expect("slug"));
    copy.mode = Some(Mode::Schema);
    let made = rewind(&env.dir, &env.master, &copy, &())
        .await
        .expect("as new");
    let new_id = made.restored.expect("restored").tenant_id;
    assert_ne!(new_id, shared);
    assert_eq!(rows(&env, &new_id).await.len(), before[0].len());
    assert_eq!(
        rows(&env, &shared)
            .await
            .iter()
            .filter(|r| r.starts_with("orders"))
            .count(),
        0
    );

    // Outside the window: refused, nothing changed.
    let shared_now = rows(&env, &shared).await;
    for (when, what) in [
        (Utc::now() + chrono::Duration::hours(1), "in the future"),
        (
            shared_created(&env, &shared).await - chrono::Duration::seconds(5),
            "did not exist yet",
        ),
    ] {
        let e = rewind(&env.dir, &env.master, &request(&shared, when), &())
            .await
            .expect_err(what);
        assert!(matches!(e, PitrError::OutOfWindow(_)), "{e}");
        assert!(e.to_string().contains(what), "{e}");
    }
    let e = rewind(&env.dir, &env.master, &request(&early, before_window), &())
        .await
        .expect_err("before the window");
    assert!(
        e.to_string()
            .contains("before the oldest recoverable point"),
        "{e}"
    );
    assert!(
        e.to_string().contains("can be recovered from"),
        "names the window: {e}"
    );
    assert_eq!(rows(&env, &shared).await, shared_now);
    no_side_left(&env);

    // The status names the window.
    let status = bulkhead_pitr::status(&env.dir, &"main".parse().expect("n"))
        .await
        .expect("status");
    assert!(status.archiving, "{status:?}");
    assert!(status.recoverable_from.expect("from") < at);
    assert_eq!(status.backups.len(), 2);

    // A rewind whose process died leaves a running side instance: the next one removes it.
    let live = env
        .dir
        .cluster(&"main".parse().expect("n"))
        .await
        .expect("cluster");
    let label = repo.info().await.expect("info").backups[0].label.clone();
    let mut side = SideInstance::restore(&repo, &env.layout.work_dir(), &live, &label, at, None)
        .await
        .expect("side");
    side.start().await.expect("start side");
    let folder = only_side(&env.layout.work_dir());
    let pid = postmaster_pid(&folder).expect("pid");
    assert!(process_running(pid));
    std::mem::forget(side);
    std::fs::write(folder.with_extension("owner"), "999999999").expect("dead owner");
    assert_eq!(sweep(&env.layout.work_dir()), 1);
    assert!(
        !process_running(pid),
        "the orphaned side instance was stopped"
    );
    no_side_left(&env);
}

async fn shared_created(env: &Env, t: &TenantId) -> chrono::DateTime<Utc> {
    env.dir
        .tenant(&TenantRef::Id(*t))
        .await
        .expect("tenant")
        .created_at
}

fn only_side(work: &Path) -> std::path::PathBuf {
    let dirs: Vec<_> = std::fs::read_dir(work)
        .expect("work")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

//! Rewinding a 1,000,000-row tenant against restoring the whole cluster to the same instant
//! with pgBackRest, in the same run, on a throwaway cluster with production durability that
//! archives its WAL: a shared tenant beside 10 others, and a database tenant (`--db-include`).
//! Also the tenant's unavailability: the rewind's final restore transaction against a plain
//! restore of the same tenant from a `.bhk`. Prints a table.
//!
//! `cargo bench -p bulkhead-pitr --bench rewind [-- --rows N] [--others N]` (each of the 10
//! neighbours' rows, default a tenth of N)

use std::time::{Duration, Instant};

use bulkhead_backup::MasterKey;
use bulkhead_directory::{MigrationFile, TenantRef};
use bulkhead_model::{Mode, TenantId};
use bulkhead_pgkit::ThrowawayCluster;
use bulkhead_pitr::repo::Repo;
use bulkhead_pitr::side::SideInstance;
use bulkhead_pitr::{rewind, Phase, RewindRequest, Rewound};
use bulkhead_provisioner::naming::Naming;
use bulkhead_provisioner::TenantPlace;

#[path = "../tests/support/archiving.rs"]
mod archiving;
#[allow(dead_code)]
#[path = "../../../bench/support/orders.rs"]
mod orders;

use orders::fixture;

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn phase(r: &Rewound, p: Phase) -> f64 {
    r.seconds
        .iter()
        .find(|(q, _)| *q == p)
        .map(|(_, s)| *s)
        .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let mut rows: i64 = 1_000_000;
    let argv: Vec<String> = std::env::args().collect();
    for w in argv.windows(2) {
        if w[0] == "--rows" {
            rows = w[1].parse().unwrap_or(rows);
        }
    }
    let mut others = rows / 10;
    for w in argv.windows(2) {
        if w[0] == "--others" {
            others = w[1].parse().unwrap_or(others);
        }
    }
    let (pg, layout, root) = archiving::start(ThrowawayCluster::DURABLE);
    let dir = fixture::control_on(&pg).await;
    fixture::add_main(&dir, &pg.dsn("postgres")).await;
    fixture::add_service(
        &dir,
        "bench",
        vec![MigrationFile {
            version: 1,
            name: "orders".into(),
            sql: orders::ORDERS.into(),
        }],
        &[],
    )
    .await;
    let big = fixture::place_tenant(&dir, "bench", "big", Mode::Shared, None, None).await;
    let own = fixture::place_tenant(&dir, "bench", "own-db", Mode::Database, None, None).await;
    let mut neighbours = Vec::new();
    for i in 0..10 {
        neighbours.push(
            fixture::place_tenant(&dir, "bench", &format!("n{i}"), Mode::Shared, None, None).await,
        );
    }
    let svc = dir
        .service(&"bench".parse().expect("s"))
        .await
        .expect("svc");
    let naming = Naming::of(&dir).await.expect("naming");
    let db_of = |t: TenantId, m: Mode| TenantPlace::new(&naming, &svc, t, m).database;
    let fill = orders::fill;
    let pool = pg.connect("bh_bench").await.expect("pool");
    pool.batch_execute(&fill(&big, rows))
        .await
        .expect("fill big");
    for n in &neighbours {
        pool.batch_execute(&fill(n, others))
            .await
            .expect("fill neighbour");
    }
    let own_db = pg
        .connect(&db_of(own, Mode::Database))
        .await
        .expect("own db");
    own_db
        .batch_execute(&fill(&own, rows))
        .await
        .expect("fill own");
    pool.batch_execute("VACUUM ANALYZE orders")
        .await
        .expect("vacuum");
    own_db
        .batch_execute("VACUUM ANALYZE orders")
        .await
        .expect("vacuum");
    let cluster_bytes: i64 = pool
        .query_one(
            "SELECT sum(pg_database_size(oid))::bigint FROM pg_database",
            &[],
        )
        .await
        .expect("size")
        .get(0);

    let started = Instant::now();
    bulkhead_pitr::enable(&dir, &"main".parse().expect("n"), &layout)
        .await
        .expect("enable");
    let base_backup = started.elapsed();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let at = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    pool.batch_execute(&format!(
        "DELETE FROM orders WHERE tenant_id = '{big}' AND id % 2 = 0"
    ))
    .await
    .expect("mistake");
    own_db
        .batch_execute("DELETE FROM orders WHERE id % 2 = 0")
        .await
        .expect("mistake");

    let master = MasterKey::from_bytes([9; 32]);
    let request = |t: TenantId| RewindRequest {
        tenant: TenantRef::Id(t),
        service: None,
        at,
        as_new: None,
        mode: None,
        dry_run: false,
    };
    // The first rewind also closes and archives the WAL past the instant; the whole-cluster
    // restores below reuse that archive.
    let big_rewound = rewind(&dir, &master, &request(big), &())
        .await
        .expect("rewind big");
    let own_rewound = rewind(&dir, &master, &request(own), &())
        .await
        .expect("rewind own");

    let repo = Repo::new("main", layout.config()).expect("repo");
    let live = dir
        .cluster(&"main".parse().expect("n"))
        .await
        .expect("cluster");
    let label = repo.info().await.expect("info").backups[0].label.clone();
    let whole = |db: Option<String>| {
        let (repo, live, label, work) =
            (repo.clone(), live.clone(), label.clone(), layout.work_dir());
        async move {
            let started = Instant::now();
            let mut side = SideInstance::restore(&repo, &work, &live, &label, at, db.as_deref())
                .await
                .expect("restore");
            side.start().await.expect("replay");
            let took = started.elapsed();
            side.close().await;
            took
        }
    };
    let full = whole(None).await;
    let only_db = whole(Some(db_of(own, Mode::Database))).await;

    // A plain restore of the same tenant from a .bhk (what its unavailability compares with).
    let archive = root.path().join("big.bhk");
    let file = std::io::BufWriter::new(std::fs::File::create(&archive).expect("create"));
    bulkhead_backup::backup(&dir, &master, &TenantRef::Id(big), None, file, &())
        .await
        .expect("backup");
    let t = dir.tenant(&TenantRef::Id(big)).await.expect("tenant");
    let started = Instant::now();
    let file = std::io::BufReader::new(std::fs::File::open(&archive).expect("open"));
    bulkhead_backup::restore(&dir, &master, &t, file, false, &())
        .await
        .expect("plain restore");
    let plain_restore = started.elapsed();

    let total = |r: &Rewound| r.seconds.iter().map(|(_, s)| s).sum::<f64>();
    println!(
        "Rewind of a {rows}-row tenant to an instant, beside 10 tenants of {others} rows (cluster {:.0} MB; its full base backup took {}), fsync on",
        cluster_bytes as f64 / 1e6,
        secs(base_backup)
    );
    println!();
    println!("| run | fetch base backup | replay + promote | extract | restore | total | vs whole-cluster restore |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| pgBackRest restore of the whole cluster to the instant (restore, replay, promote) | | | | | {} | 1.00 |",
        secs(full)
    );
    for (what, r) in [
        ("tenant rewind, shared tenant", &big_rewound),
        (
            "tenant rewind, database tenant (`--db-include`)",
            &own_rewound,
        ),
    ] {
        println!(
            "| {what} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2} |",
            phase(r, Phase::FetchBaseBackup),
            phase(r, Phase::ReplayWal),
            phase(r, Phase::Extract),
            phase(r, Phase::Restore),
            total(r),
            total(r) / full.as_secs_f64()
        );
    }
    println!(
        "| pgBackRest restore of only the database tenant's database (`--db-include`), replay, promote | | | | | {} | {:.2} |",
        secs(only_db),
        only_db.as_secs_f64() / full.as_secs_f64()
    );
    println!();
    println!(
        "Unavailability of the shared tenant (its final restore transaction): rewind {:.2} s, plain restore of the same rows from a .bhk {} ({:.2}x)",
        phase(&big_rewound, Phase::Restore),
        secs(plain_restore),
        phase(&big_rewound, Phase::Restore) / plain_restore.as_secs_f64()
    );
}

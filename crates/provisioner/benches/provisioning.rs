//! Provisioning latency per mode and migration fan-out against a serial loop, on a
//! throwaway cluster with production durability (fsync, synchronous_commit and
//! full_page_writes on). Prints tables; asserts nothing.
//!
//! `cargo bench -p bulkhead-provisioner --bench provisioning [-- --schemas N --databases N --samples N]`

use std::time::{Duration, Instant};

use bulkhead_directory::{Directory, MigrationFile};
use bulkhead_model::Mode;
use bulkhead_pgkit::ThrowawayCluster;
use bulkhead_provisioner::migrate::{migrate_service, MigrateOptions};
use tokio_postgres::NoTls;

#[path = "../tests/support/fixture.rs"]
mod fixture;

struct Args {
    schemas: usize,
    databases: usize,
    samples: usize,
}

fn args() -> Args {
    let mut a = Args {
        schemas: 1000,
        databases: 20,
        samples: 50,
    };
    let argv: Vec<String> = std::env::args().collect();
    for w in argv.windows(2) {
        let n = w[1].parse().unwrap_or(0);
        match w[0].as_str() {
            "--schemas" => a.schemas = n,
            "--databases" => a.databases = n,
            "--samples" => a.samples = n,
            _ => {}
        }
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn provision(dir: &Directory, slug: String, mode: Mode) -> Duration {
    let started = Instant::now();
    fixture::place_tenant(dir, "bench", &slug, mode, None, None).await;
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let a = args();
    // Durable, and sized like the research baselines (shared_buffers 1GB, max_wal_size 4GB):
    // CREATE DATABASE copies the template through WAL, which small WAL buffers slow down.
    let pg = ThrowawayCluster::start_durable().expect("cluster");
    let dir = fixture::control_on(&pg).await;
    let admin = pg.connect("postgres").await.expect("admin");
    fixture::add_main(&dir, &pg.dsn("postgres")).await;
    fixture::add_service(&dir, "bench", fixture::billing_migrations(), &["countries"]).await;

    println!(
        "Provisioning latency (5 tenant tables with primary keys, indexes, foreign keys; fsync on)"
    );
    println!("| mode | samples | p50 ms | p95 ms | max ms | target p50 |");
    println!("|---|---|---|---|---|---|");
    let mut made = [0usize; 3];
    for (i, (mode, target, n)) in [
        (Mode::Shared, 10.0, a.samples),
        (Mode::Schema, 50.0, a.samples),
        (Mode::Database, 150.0, a.databases.max(1)),
    ]
    .into_iter()
    .enumerate()
    {
        let mut times = Vec::new();
        for k in 0..n {
            times.push(provision(&dir, format!("{mode}-{k}"), mode).await);
        }
        made[i] = n;
        times.sort();
        let p50 = percentile(&times, 0.5);
        println!(
            "| {mode} | {n} | {p50:.1} | {:.1} | {:.1} | ≤ {target} ms {} |",
            percentile(&times, 0.95),
            percentile(&times, 1.0),
            if p50 <= target { "(met)" } else { "(MISSED)" }
        );
    }

    let fill = Instant::now();
    for k in made[1]..a.schemas {
        provision(&dir, format!("schema-{k}"), Mode::Schema).await;
    }
    let filled = a.schemas.saturating_sub(made[1]);
    println!(
        "\nCreated {filled} more schema tenants in {:.1} s ({:.1} ms each) to reach {} schema and {} database tenants.",
        fill.elapsed().as_secs_f64(),
        fill.elapsed().as_secs_f64() * 1000.0 / filled.max(1) as f64,
        a.schemas,
        made[2]
    );

    // Serial baseline: one connection, one ALTER per target, autocommit.
    let pool = pg.connect("bh_bench").await.expect("pool");
    let schemas: Vec<String> = pool
        .query(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\\_%' ORDER BY 1",
            &[],
        )
        .await
        .expect("schemas")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let databases: Vec<String> = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 't\\_%' ORDER BY 1",
            &[],
        )
        .await
        .expect("dbs")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let serial = Instant::now();
    for s in &schemas {
        pool.batch_execute(&format!(
            "ALTER TABLE \"{s}\".orders ADD COLUMN serial_note text"
        ))
        .await
        .expect("serial alter");
    }
    for d in &databases {
        let (c, conn) = tokio_postgres::connect(&pg.dsn(d), NoTls)
            .await
            .expect("connect");
        let task = tokio::spawn(conn);
        c.batch_execute("ALTER TABLE public.orders ADD COLUMN serial_note text")
            .await
            .expect("serial alter");
        drop(c);
        let _ = task.await;
    }
    let serial = serial.elapsed();

    dir.register_migrations(
        &"bench".parse().expect("s"),
        &[MigrationFile {
            version: 3,
            name: "order_note".into(),
            sql: "ALTER TABLE orders ADD COLUMN note text;".into(),
        }],
    )
    .await
    .expect("register");
    let fan = Instant::now();
    let summary = migrate_service(
        &dir,
        &"bench".parse().expect("s"),
        &MigrateOptions::default(),
        &(),
    )
    .await
    .expect("fan-out");
    let fan = fan.elapsed();
    assert_eq!(summary.failed(), 0, "fan-out failures: {summary:#?}");

    let targets = schemas.len() + databases.len();
    println!(
        "\nMigration fan-out of one ALTER TABLE ... ADD COLUMN ({} schema + {} database tenants)",
        schemas.len(),
        databases.len()
    );
    println!("| run | targets | seconds | ms per target |");
    println!("|---|---|---|---|");
    println!(
        "| serial loop, one connection, autocommit | {targets} | {:.2} | {:.2} |",
        serial.as_secs_f64(),
        serial.as_secs_f64() * 1000.0 / targets as f64
    );
    println!(
        "| bulkhead migrate (concurrency {}, bookkeeping, grants) | {} | {:.2} | {:.2} |",
        summary.concurrency,
        summary.targets.len(),
        fan.as_secs_f64(),
        fan.as_secs_f64() * 1000.0 / summary.targets.len() as f64
    );
    // The same kind of migration again at other concurrencies, to show where time goes.
    for (k, concurrency) in [1usize, 2, 4, 16].into_iter().enumerate() {
        let version = 4 + k as i64;
        dir.register_migrations(
            &"bench".parse().expect("s"),
            &[MigrationFile {
                version,
                name: format!("note_{version}"),
                sql: format!("ALTER TABLE orders ADD COLUMN note_{version} text;"),
            }],
        )
        .await
        .expect("register");
        let opts = MigrateOptions {
            concurrency: Some(concurrency),
            ..Default::default()
        };
        let t = Instant::now();
        let s = migrate_service(&dir, &"bench".parse().expect("s"), &opts, &())
            .await
            .expect("fan-out");
        assert_eq!(s.failed(), 0);
        println!(
            "| bulkhead migrate (concurrency {concurrency}) | {} | {:.2} | {:.2} |",
            s.targets.len(),
            t.elapsed().as_secs_f64(),
            t.elapsed().as_secs_f64() * 1000.0 / s.targets.len() as f64
        );
    }
    let ratio = serial.as_secs_f64() / fan.as_secs_f64();
    println!(
        "\nfan-out is {ratio:.2}x the serial loop's speed (target ≥ 1.5x) {}",
        if ratio >= 1.5 { "(met)" } else { "(MISSED)" }
    );
}

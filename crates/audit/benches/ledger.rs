//! What the audit log and the meters cost: the request path's part (queueing an event,
//! adding a transaction's counts) in nanoseconds, the writer's append rate and the verifier's
//! rate against a throwaway cluster with production durability. Prints a table.
//!
//! `cargo bench -p bulkhead-audit --bench ledger [-- --events N]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead_audit::{action, AuditLog, Event};
use bulkhead_directory::Directory;
use bulkhead_keys::MasterKey;
use bulkhead_metering::{Counts, Meters};
use bulkhead_model::TenantId;
use bulkhead_pgkit::ThrowawayCluster;
use serde_json::json;

fn per(d: Duration, n: u64) -> f64 {
    d.as_nanos() as f64 / n as f64
}

#[tokio::main]
async fn main() {
    // Below the writer's queue (65,536): a longer burst than that is counted as dropped.
    let mut events: u64 = 50_000;
    let argv: Vec<String> = std::env::args().collect();
    for w in argv.windows(2) {
        if w[0] == "--events" {
            events = w[1].parse().unwrap_or(events);
        }
    }
    let pg = ThrowawayCluster::start_durable().expect("cluster");
    let db = pg.create_database("bench_ledger").await.expect("db");
    let dir = Directory::connect(&db.dsn).await.expect("dir");
    dir.migrate().await.expect("migrate");
    let log = AuditLog::new(dir.clone(), MasterKey::from_bytes([1; 32]));
    let tenants: Vec<TenantId> = (0..100).map(|_| TenantId::random()).collect();

    // The request path: one meter add per transaction (the session keeps the tenant's meter).
    let meters = Arc::new(Meters::default());
    let meter = meters.tenant(tenants[0]);
    let counts = Counts {
        transactions: 1,
        statements: 3,
        rows_returned: 10,
        bytes_in: 120,
        bytes_out: 900,
        backend_time_us: 250,
    };
    let adds: u64 = 10_000_000;
    let started = Instant::now();
    for _ in 0..adds {
        meter.add(std::hint::black_box(&counts));
    }
    let add_ns = per(started.elapsed(), adds);

    // Queueing events (what a refusal costs the session), then the writer draining them.
    let writer = log.writer();
    let batch: Vec<Event> = (0..events)
        .map(|i| {
            Event::new(action::REFUSED, "gateway")
                .tenant(tenants[(i % 100) as usize])
                .details(json!({ "service": "bench", "rule": "set_config", "sqlstate": "42501" }))
        })
        .collect();
    let started = Instant::now();
    let mut queued = 0u64;
    for e in batch {
        writer.record(e);
        queued += 1;
    }
    let enqueue = started.elapsed();
    writer.flush().await;
    let drained = started.elapsed();

    // Control-plane appends: one event, one transaction.
    let single: u64 = 500;
    let started = Instant::now();
    for i in 0..single {
        log.record(Event::new(action::KEY_ISSUED, "api").tenant(tenants[(i % 100) as usize]))
            .await
            .expect("record");
    }
    let one = started.elapsed();

    let started = Instant::now();
    let reports = log.verify(None).await.expect("verify");
    let verify = started.elapsed();
    let entries: usize = reports.iter().map(|r| r.entries).sum();
    assert!(reports.iter().all(|r| r.intact()));
    let appended = entries as u64 - single;

    println!("| measure | value |");
    println!("|---|---|");
    println!("| meter add per transaction (request path) | {add_ns:.1} ns |");
    println!(
        "| queueing an audit event (request path) | {:.0} ns |",
        per(enqueue, queued)
    );
    println!(
        "| batched writer: {queued} queued, {appended} appended | {:.2} s ({:.0} events/s) |",
        drained.as_secs_f64(),
        appended as f64 / drained.as_secs_f64()
    );
    println!(
        "| one event per transaction (control plane) | {:.2} ms each |",
        one.as_secs_f64() * 1000.0 / single as f64
    );
    println!(
        "| verify: {entries} entries in {} chains | {:.2} s ({:.0} entries/s) |",
        reports.len(),
        verify.as_secs_f64(),
        entries as f64 / verify.as_secs_f64()
    );
}

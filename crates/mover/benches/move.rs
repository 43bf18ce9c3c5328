//! Moves a 1,000,000-row tenant (an orders-shaped table) from shared tables to its own
//! database while a writer writes through the gateway at a steady rate, on a throwaway
//! cluster with production durability; in the same run, a plain binary COPY of the same
//! rows into a fresh database. Prints tables; asserts nothing.
//!
//! `cargo bench -p bulkhead-mover --bench move [-- --rows N --others N --rate N]`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_directory::TenantRef;
use bulkhead_gateway::{serve, GatewaySettings, GatewayState};
use bulkhead_model::{Mode, TenantId};
use bulkhead_mover::{Event, MoveOptions, MoveProgress, MoveRequest};
use bulkhead_pgkit::ThrowawayCluster;
use futures_util::{SinkExt, StreamExt};
use tokio_postgres::NoTls;

#[path = "../../../bench/support/orders.rs"]
mod orders;

use orders::{COLUMNS, ORDERS};

struct Args {
    rows: i64,
    others: i64,
    rate: u64,
}

fn args() -> Args {
    let mut a = Args {
        rows: 1_000_000,
        others: 200_000,
        rate: 200,
    };
    let argv: Vec<String> = std::env::args().collect();
    for w in argv.windows(2) {
        match w[0].as_str() {
            "--rows" => a.rows = w[1].parse().unwrap_or(a.rows),
            "--others" => a.others = w[1].parse().unwrap_or(a.others),
            "--rate" => a.rate = w[1].parse().unwrap_or(a.rate),
            _ => {}
        }
    }
    a
}

/// Copies the tenant's rows into a fresh database's table with `COPY ... (FORMAT binary)`,
/// the same way the mover does but with nothing around it.
async fn plain_copy(pg: &ThrowawayCluster, tenant: &TenantId) -> Duration {
    let admin = pg.connect("postgres").await.expect("admin");
    admin
        .batch_execute("CREATE DATABASE plain_copy")
        .await
        .expect("db");
    let dst = pg.connect("plain_copy").await.expect("dst");
    dst.batch_execute(&ORDERS.replace("DEFAULT bulkhead.current_tenant()", ""))
        .await
        .expect("table");
    let src = pg.connect("bh_bench").await.expect("src");
    let started = Instant::now();
    let out = src
        .copy_out(&format!(
            "COPY (SELECT {COLUMNS} FROM public.orders WHERE tenant_id = '{tenant}') TO STDOUT (FORMAT binary)"
        ))
        .await
        .expect("copy out");
    let sink = dst
        .copy_in(&format!(
            "COPY orders ({COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await
        .expect("copy in");
    futures_util::pin_mut!(out);
    futures_util::pin_mut!(sink);
    while let Some(chunk) = out.next().await {
        sink.send(chunk.expect("chunk")).await.expect("send");
    }
    sink.finish().await.expect("finish");
    started.elapsed()
}

#[derive(Default)]
struct Timeline {
    copy_seconds: f64,
    copied_rows: u64,
    events: Vec<(Instant, String)>,
}

struct Recorder(Mutex<Timeline>);

impl MoveProgress for Recorder {
    fn event(&self, e: &Event) {
        let Ok(mut t) = self.0.lock() else { return };
        match e {
            Event::Phase(p) => t.events.push((Instant::now(), p.to_string())),
            Event::CatchingUp { applied, lag_bytes } => t.events.push((
                Instant::now(),
                format!("a replay step ({applied} changes so far, {lag_bytes} bytes behind)"),
            )),
            Event::Copied { rows, seconds, .. } => {
                t.copy_seconds += seconds;
                t.copied_rows += rows;
            }
            _ => {}
        }
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    let fill = Instant::now();
    let orders::Bench { pg, dir, big } = orders::setup(a.rows, a.others).await;
    eprintln!(
        "set up with {} + {} rows in {:.1} s",
        a.rows,
        a.others,
        fill.elapsed().as_secs_f64()
    );

    let plain = plain_copy(&pg, &big).await;

    // The gateway and a writer through it at a steady rate.
    let state = GatewayState::new(dir.clone(), GatewaySettings::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(serve(listener, state, std::future::pending::<()>()));
    let key = dir
        .issue_key(&big, "a-benchmark-secret-for-the-move-0123456789")
        .await
        .expect("key")
        .key;
    let stop = Arc::new(AtomicBool::new(false));
    let latencies: Arc<Mutex<Vec<(Instant, Duration)>>> = Arc::default();
    let writer = {
        let (stop, lat) = (stop.clone(), latencies.clone());
        let dsn = format!("host=127.0.0.1 port={port} dbname=bench user=app password={key}");
        let every = Duration::from_secs_f64(1.0 / a.rate.max(1) as f64);
        tokio::spawn(async move {
            let (client, conn) = tokio_postgres::connect(&dsn, NoTls).await.expect("writer");
            tokio::spawn(conn);
            let stmt = client
                .prepare("INSERT INTO orders (id, customer_id, amount, status) VALUES ($1, 1, 9.99, 'new')")
                .await
                .expect("prepare");
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut id, mut failed) = (100_000_000i64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let t0 = Instant::now();
                match client.execute(&stmt, &[&id]).await {
                    Ok(_) => lat.lock().expect("lat").push((t0, t0.elapsed())),
                    Err(_) => failed += 1,
                }
                id += 1;
            }
            failed
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    let recorder = Recorder(Mutex::new(Timeline::default()));
    let started = Instant::now();
    let m = bulkhead_mover::start(
        &dir,
        &MoveRequest {
            tenant: TenantRef::Id(big),
            service: None,
            to: Mode::Database,
            cluster: None,
        },
        &MoveOptions::default(),
        &recorder,
    )
    .await
    .expect("move");
    let total = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let failed = writer.await.expect("writer");
    let lat = latencies.lock().expect("lat").clone();
    let timeline = std::mem::take(&mut *recorder.0.lock().expect("timeline"));
    let cutover_at = timeline
        .events
        .iter()
        .find(|(_, p)| p == "cutover")
        .map(|(t, _)| *t)
        .unwrap_or(started);
    let worst_cutover = lat
        .iter()
        .filter(|(t, d)| *t + *d >= cutover_at)
        .map(|(_, d)| *d)
        .max()
        .unwrap_or_default();
    let mut all: Vec<Duration> = lat.iter().map(|(_, d)| *d).collect();
    all.sort();
    let p50 = all.get(all.len() / 2).copied().unwrap_or_default();
    let worst = all.last().copied().unwrap_or_default();
    let moved: i64 = pg
        .connect(
            &bulkhead_provisioner::naming::Naming::of(&dir)
                .await
                .expect("naming")
                .tenant_database(&big, &"bench".parse().expect("s")),
        )
        .await
        .expect("target")
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .expect("count")
        .get(0);
    let rows = a.rows as f64;
    println!("Move of a {}-row tenant, shared → database, beside a {}-row tenant; writer at {} writes/s through the gateway", a.rows, a.others, a.rate);
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| plain binary COPY of the same rows into a fresh database | {:.2} s ({:.0} rows/s) |",
        plain.as_secs_f64(),
        rows / plain.as_secs_f64()
    );
    println!(
        "| move: table copy phase | {:.2} s ({:.0} rows/s) |",
        timeline.copy_seconds,
        timeline.copied_rows as f64 / timeline.copy_seconds.max(1e-6)
    );
    println!(
        "| move: total (provision, copy, catch-up, cutover) | {:.2} s ({:.0} rows/s) |",
        total.as_secs_f64(),
        rows / total.as_secs_f64()
    );
    println!(
        "| move total / plain COPY | {:.2}× (target ≤ 3×) |",
        total.as_secs_f64() / plain.as_secs_f64()
    );
    println!(
        "| tenant held at cutover (mover's measure) | {} ms: {} |",
        m.pause_ms.unwrap_or_default(),
        m.parity
            .as_ref()
            .map(|p| p["cutover_ms"].to_string())
            .unwrap_or_default()
    );
    println!(
        "| writer's worst latency from cutover on | {:.0} ms (target ≤ 1000, aim 250) |",
        worst_cutover.as_secs_f64() * 1000.0
    );
    println!(
        "| writer's p50 / worst latency over the run | {:.1} / {:.0} ms |",
        p50.as_secs_f64() * 1000.0,
        worst.as_secs_f64() * 1000.0
    );
    println!(
        "| writes acknowledged / failed | {} / {failed} |",
        lat.len()
    );
    println!(
        "| rows at the target (tenant's rows + acknowledged writes) | {moved} (expected {}) |",
        a.rows + lat.len() as i64
    );
    println!();
    println!("| phase | seconds |");
    println!("|---|---|");
    let mut prev = started;
    for (t, phase) in &timeline.events {
        if *t > prev {
            println!("| until {phase} | {:.2} |", (*t - prev).as_secs_f64());
        }
        prev = *t;
    }
}

//! Crashes under load, against real processes: a `bulkhead gateway` killed with SIGKILL
//! while two tenants write through it, and the embedded PostgreSQL restarted (fast, then
//! immediate) under the same load. Clients see errors, never hangs; they reconnect; every
//! acknowledged write is there exactly once; no backend the dead gateway held stays open;
//! no tenant ever sees another's row. The figures are printed (`--nocapture`).

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::writes::{self, Score};
use support::{gateway_client, workspace, ExtraGateway, Up};
use tokio_postgres::NoTls;

/// The scores of one tenant's two writers.
type Pair = [Arc<Mutex<Score>>; 2];

struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// (tenant, key, scores of its two writers)
    tenants: Vec<(String, String, Pair)>,
}

/// Two writers for each tenant through `gateway`, ids interleaved so that no two writers
/// (of any tenant) ever use the same id.
fn load(gateway: &str, tenants: &[(&str, &str)]) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let step = (tenants.len() * 2) as i64;
    let mut tasks = Vec::new();
    let mut out = Vec::new();
    for (t, (tenant, key)) in tenants.iter().enumerate() {
        let scores: Pair = [Arc::default(), Arc::default()];
        for (w, score) in scores.iter().enumerate() {
            tasks.push(tokio::spawn(writes::write(
                gateway.to_string(),
                tenant.to_string(),
                key.to_string(),
                (t * 2 + w) as i64,
                step,
                stop.clone(),
                score.clone(),
            )));
        }
        out.push((tenant.to_string(), key.to_string(), scores));
    }
    Load {
        stop,
        tasks,
        tenants: out,
    }
}

impl Load {
    fn acked(&self) -> usize {
        self.tenants
            .iter()
            .flat_map(|(_, _, s)| s.iter())
            .map(|s| s.lock().expect("lock").acked.len())
            .sum()
    }

    /// Stops the writers and checks every tenant's rows through `gateway`; returns a line
    /// per writer.
    async fn finish(self, gateway: &str) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("writer");
        }
        let mut lines = Vec::new();
        for (tenant, key, scores) in &self.tenants {
            let scores = writes::verify(gateway, tenant, key, scores).await;
            for s in &scores {
                assert!(
                    s.errors > 0,
                    "{tenant}: a writer saw no error: was there a fault?"
                );
                lines.push(format!(
                    "{tenant}: {} acknowledged (all there once), {} unknown, {} errors, slowest attempt {} ms, longest without a write {} ms",
                    s.acked.len(),
                    s.unknown.len(),
                    s.errors,
                    s.slowest.as_millis(),
                    s.longest_gap.as_millis()
                ));
            }
        }
        lines
    }
}

async fn superuser(up: &Up) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(&up.postgres_dsn("postgres"), NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    c
}

/// Backends of gateways' logins (all gateways log in as the installation's gateway roles:
/// `bh_gw_…` to pool databases, `bh_gwd_…` to tenant databases).
async fn gateway_backends(pg: &tokio_postgres::Client) -> (i64, i64) {
    let r = pg
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE state LIKE 'idle in transaction%' OR state = 'active')
               FROM pg_stat_activity WHERE usename LIKE 'bh\\_gw\\_%' OR usename LIKE 'bh\\_gwd\\_%'",
            &[],
        )
        .await
        .expect("pg_stat_activity");
    (r.get(0), r.get(1))
}

/// Waits until more writes were acknowledged than `before`, so that the load is running.
async fn until_writes(load: &Load, before: usize, what: &str) -> Duration {
    let started = Instant::now();
    while load.acked() <= before + 20 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "writes did not resume {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_killed_under_writes_loses_nothing_and_leaves_no_backend_behind() {
    let ws = workspace();
    let up = Up::start(&ws.path().join(".bulkhead"), &[]);
    up.billing_service("billing", &[]);
    let acme = up.tenant_with_key("acme", "billing", "shared");
    let bravo = up.tenant_with_key("bravo", "billing", "shared");
    let gw = ExtraGateway::start(&up);
    let addr = gw.addr.clone();
    let pg = superuser(&up).await;
    let load = load(&addr, &[("acme", &acme), ("bravo", &bravo)]);
    until_writes(&load, 0, "at first").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (held, _) = gateway_backends(&pg).await;
    assert!(held > 0, "the gateway holds no backend under load");

    gw.kill9();
    let killed = Instant::now();
    // Its backends end with it: the kernel closed their sockets.
    let gone = loop {
        let (n, busy) = gateway_backends(&pg).await;
        if n == 0 {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "{n} backends ({busy} in a transaction) of the killed gateway are still there"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let before = load.acked();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let restarted = ExtraGateway::start_on(&up, &addr);
    let resumed = until_writes(&load, before, "after the gateway restarted").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut report = load.finish(&restarted.addr).await;
    report.push(format!(
        "held {held} backends under load; all gone {} ms after SIGKILL; writes resumed {} ms after the restart",
        gone.as_millis(),
        resumed.as_millis()
    ));
    println!("{}", report.join("\n"));
}

/// `pg_ctl restart -m MODE` on the embedded cluster, as its account.
fn restart_postgres(up: &Up, mode: &str) -> Duration {
    let bins = bulkhead_pgkit::PgBinaries::locate().expect("binaries");
    let run_as = bulkhead_pgkit::RunAs::detect().expect("account");
    let pgdata = up.data_dir.join("pgdata");
    let mut cmd = Command::new(bins.program("pg_ctl"));
    cmd.arg("-D")
        .arg(&pgdata)
        .args(["-m", mode, "-w", "-t", "60", "-l"])
        .arg(pgdata.join("restart.log"))
        .arg("restart");
    run_as.apply(&mut cmd);
    let t = Instant::now();
    let out = cmd.output().expect("pg_ctl");
    assert!(
        out.status.success(),
        "pg_ctl restart -m {mode}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restarts_under_writes_end_in_errors_not_hangs_and_the_gateway_recovers() {
    let ws = workspace();
    let up = Up::start(&ws.path().join(".bulkhead"), &[]);
    up.billing_service("billing", &[]);
    let acme = up.tenant_with_key("acme", "billing", "shared");
    let bravo = up.tenant_with_key("bravo", "billing", "shared");
    let load = load(&up.gateway, &[("acme", &acme), ("bravo", &bravo)]);
    until_writes(&load, 0, "at first").await;
    let mut report = Vec::new();
    for mode in ["fast", "immediate"] {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = load.acked();
        let took = restart_postgres(&up, mode);
        let resumed = until_writes(&load, before, &format!("after a {mode} restart")).await;
        report.push(format!(
            "{mode} restart took {} ms (pg_ctl -w); writes through the same gateway were flowing again {} ms after pg_ctl returned",
            took.as_millis(),
            resumed.as_millis()
        ));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gateway = up.gateway.clone();
    report.extend(load.finish(&gateway).await);
    // The gateway listens to the directory again: a suspension after the restarts reaches it.
    support::ok(up.cli(&["tenant", "suspend", "acme"]));
    let t = Instant::now();
    loop {
        let works = match gateway_client(&gateway, "billing", "acme", &acme).await {
            Ok(c) => c.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        };
        if !works {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "a suspension after PostgreSQL's restarts did not reach the gateway: it no longer hears the directory"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report.push(format!(
        "a suspension after both restarts reached the gateway in {} ms",
        t.elapsed().as_millis()
    ));
    println!("{}", report.join("\n"));
}

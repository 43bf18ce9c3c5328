//! The process running a move (`bulkhead tenant move`, which moves in its own process)
//! killed with SIGKILL at each phase and at each step of the cutover, while the tenant's
//! clients write through the gateway. It stops at a named point (`BULKHEAD_FAULT_PAUSE_AT`,
//! see `bulkhead_mover::fault`) and is killed there. Then: a tenant held by the dead mover is
//! released by `bulkhead up` within a bound; re-running the move or rolling it back ends
//! with the tenant reachable and every acknowledged write there exactly once; a slot the
//! dead mover left is gone after finalize.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::writes::{self, Score};
use support::{ok, workspace, Up, BIN};
use tokio_postgres::NoTls;

/// How long a tenant may stay held after its mover died.
const RELEASE_BOUND: Duration = Duration::from_secs(10);

/// Runs `tenant move acme --to MODE` until it says it paused at `point`, then SIGKILLs it.
fn kill_mover_at(up: &Up, to: &str, point: &str) {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(&up.data_dir)
        .args(["tenant", "move", "acme", "--to", to])
        .env("BULKHEAD_FAULT_PAUSE_AT", point)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the mover");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the mover never reached {point}: {seen:?}"));
        if line.contains(&format!("paused at {point} ")) {
            break;
        }
        seen.push(line);
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let _ = child.wait();
}

/// The tenant's newest move, from the API.
fn last_move(up: &Up) -> serde_json::Value {
    let out = ok(up.cli(&["--json", "tenant", "move", "acme", "--status"]));
    let moves: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    moves[0].clone()
}

fn mode(up: &Up) -> String {
    let out = ok(up.cli(&["--json", "tenant", "show", "acme"]));
    let t: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    t["placements"][0]["mode"]
        .as_str()
        .expect("mode")
        .to_string()
}

fn other(mode: &str) -> &'static str {
    if mode == "shared" {
        "schema"
    } else {
        "shared"
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mover_killed_anywhere_loses_no_write_and_never_leaves_the_tenant_held() {
    let ws = workspace();
    let up = Up::start(&ws.path().join(".bulkhead"), &[]);
    up.billing_service("billing", &[]);
    let key = up.tenant_with_key("acme", "billing", "shared");
    let stop = Arc::new(AtomicBool::new(false));
    let scores: Vec<Arc<Mutex<Score>>> = (0..2).map(|_| Arc::default()).collect();
    let tasks: Vec<_> = scores
        .iter()
        .enumerate()
        .map(|(i, s)| {
            tokio::spawn(writes::write(
                up.gateway.clone(),
                "acme".into(),
                key.clone(),
                i as i64,
                2,
                stop.clone(),
                s.clone(),
            ))
        })
        .collect();
    let acked = || -> usize {
        scores
            .iter()
            .map(|s| s.lock().expect("lock").acked.len())
            .sum()
    };
    let (pg, conn) = tokio_postgres::connect(&up.postgres_dsn("postgres"), NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);

    let mut report = Vec::new();
    // (where it dies, what comes after: re-run it, or roll it back)
    let plan = [
        ("planned", "rerun"),
        ("provisioned", "rollback"),
        ("copying", "rerun"),
        ("copied", "rollback"),
        ("cutover:hold", "rerun"),
        ("cutover:drain", "rerun"),
        ("cutover:fence", "rerun"),
        ("cutover:replay", "rerun"),
        ("cutover:parity", "rerun"),
        ("cutover:sequences", "rerun"),
        ("switched", "finalize"),
    ];
    for (point, then) in plan {
        let from = mode(&up);
        let to = other(&from);
        tokio::time::sleep(Duration::from_millis(200)).await;
        kill_mover_at(&up, to, point);
        let killed = Instant::now();
        let mut line = format!("killed at {point}:");
        if point.starts_with("cutover") {
            // Held by a dead mover: `up` releases it.
            loop {
                let m = last_move(&up);
                if m["phase"] == "aborted" {
                    break;
                }
                assert!(
                    killed.elapsed() < RELEASE_BOUND,
                    "the tenant is still held {RELEASE_BOUND:?} after its mover died at {point}: {m}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            line += &format!(" released by up in {} ms;", killed.elapsed().as_millis());
            assert_eq!(mode(&up), from, "a released tenant stays where it was");
        }
        let before = acked();
        let t = Instant::now();
        while acked() < before + 20 {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the tenant's writes did not resume after the mover died at {point}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        line += &format!(" writes flowing {} ms later;", killed.elapsed().as_millis());
        match then {
            "rerun" => {
                let out = ok(up.cli(&["--json", "tenant", "move", "acme", "--to", to]));
                let m: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
                assert_eq!(m["phase"], "switched", "re-run after {point}: {m}");
                ok(up.cli(&["tenant", "move", "acme", "--finalize"]));
                line += &format!(" re-run: switched (pause {} ms), finalized", m["pause_ms"]);
            }
            "rollback" => {
                ok(up.cli(&["tenant", "move", "acme", "--rollback"]));
                assert_eq!(last_move(&up)["phase"], "aborted");
                assert_eq!(mode(&up), from);
                line += " rolled back: aborted, still where it was";
            }
            _ => {
                assert_eq!(last_move(&up)["phase"], "switched");
                ok(up.cli(&["tenant", "move", "acme", "--finalize"]));
                line += " switched before it died; finalized";
            }
        }
        let slots: i64 = pg
            .query_one("SELECT count(*) FROM pg_replication_slots", &[])
            .await
            .expect("slots")
            .get(0);
        assert_eq!(
            slots, 0,
            "a replication slot outlived the move killed at {point}"
        );
        report.push(line);
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("writer");
    }
    let scores = writes::verify(&up.gateway, "acme", &key, &scores).await;
    report.push(format!(
        "{} rows acknowledged over {} kills, every one there once ({} writes of unknown fate)",
        scores.iter().map(|s| s.acked.len()).sum::<usize>(),
        plan.len(),
        scores.iter().map(|s| s.unknown.len()).sum::<usize>()
    ));
    println!("{}", report.join("\n"));
}

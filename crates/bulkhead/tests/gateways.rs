//! Several gateways against one directory: `bulkhead up`'s own and a `bulkhead gateway`
//! process beside it, with clients on both. A suspension, its resumption and a revoked key
//! reach both gateways (the time each took is measured and printed); a move's cutover holds
//! the tenant on both, and every write either gateway acknowledged is there afterwards,
//! exactly once.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::writes::{self, Score};
use support::{gateway_client, ok, workspace, ExtraGateway, Up};

/// How long a directory change may take to reach every gateway.
const BOUND: Duration = Duration::from_secs(5);

/// Waits until `test` holds at `gateway`, polling with new connections; returns how long.
async fn until_at(gateway: &str, what: &str, test: impl Fn(bool) -> bool, key: &str) -> Duration {
    let started = Instant::now();
    loop {
        let works = match gateway_client(gateway, "billing", "acme", key).await {
            Ok(c) => c.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        };
        if test(works) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < BOUND,
            "{what} did not reach the gateway at {gateway} within {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_see_every_directory_change_and_lose_no_write_in_a_move() {
    let ws = workspace();
    let up = Up::start(&ws.path().join(".bulkhead"), &[]);
    up.billing_service("billing", &[]);
    let key = up.tenant_with_key("acme", "billing", "shared");
    // Without the installation's master key it refuses to start, saying where to find it.
    let empty = ws.path().join("no-secrets");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let refused = up.cli(&[
        "gateway",
        "--secrets",
        empty.to_str().expect("utf8"),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("no master key") && refused.stderr.contains("master.key"),
        "{}",
        refused.stderr
    );
    let other = ExtraGateway::start(&up);
    let gateways = [up.gateway.clone(), other.addr.clone()];
    for g in &gateways {
        let c = gateway_client(g, "billing", "acme", &key)
            .await
            .unwrap_or_else(|e| panic!("login at {g}: {e}"));
        c.simple_query("SELECT 1").await.expect("query");
    }

    // Suspend, resume: each gateway follows.
    ok(up.cli(&["tenant", "suspend", "acme"]));
    let mut report = Vec::new();
    for g in &gateways {
        let took = until_at(g, "the suspension", |works| !works, &key).await;
        report.push(format!("suspend reached {g} in {} ms", took.as_millis()));
    }
    ok(up.cli(&["tenant", "resume", "acme"]));
    for g in &gateways {
        let took = until_at(g, "the resumption", |works| works, &key).await;
        report.push(format!("resume reached {g} in {} ms", took.as_millis()));
    }

    // A second key works on both until it is revoked, then on neither.
    let second = ok(up.cli(&["tenant", "key", "create", "acme"]))
        .stdout
        .trim()
        .to_string();
    let id = second
        .strip_prefix("bhk_")
        .and_then(|k| k.split_once('.'))
        .map(|(id, _)| id.to_string())
        .expect("key id");
    for g in &gateways {
        until_at(g, "the new key", |works| works, &second).await;
    }
    ok(up.cli(&["tenant", "key", "revoke", &id]));
    for g in &gateways {
        let took = until_at(g, "the revocation", |works| !works, &second).await;
        report.push(format!(
            "key revocation reached {g} in {} ms",
            took.as_millis()
        ));
    }

    // A move while both gateways write: held on both, nothing lost, nothing twice.
    let stop = Arc::new(AtomicBool::new(false));
    let scores: Vec<Arc<Mutex<Score>>> = (0..2).map(|_| Arc::default()).collect();
    let tasks: Vec<_> = gateways
        .iter()
        .zip(&scores)
        .enumerate()
        .map(|(i, (g, score))| {
            tokio::spawn(writes::write(
                g.clone(),
                "acme".into(),
                key.clone(),
                i as i64,
                2,
                stop.clone(),
                score.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let moved = serde_json::from_str::<serde_json::Value>(
        &ok(up.cli(&["--json", "tenant", "move", "acme", "--to", "schema"])).stdout,
    )
    .expect("json");
    assert_eq!(moved["phase"], "switched", "{moved}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("writer");
    }

    let scores = writes::verify(&gateways[1], "acme", &key, &scores).await;
    for (g, s) in gateways.iter().zip(&scores) {
        assert!(
            s.acked.len() > 10,
            "too few writes through {g} to judge: {}",
            s.acked.len()
        );
        report.push(format!(
            "{g}: {} writes acknowledged, {} unknown (an error after sending), slowest {} ms (the cutover's hold)",
            s.acked.len(),
            s.unknown.len(),
            s.slowest.as_millis()
        ));
    }
    assert_eq!(moved["pause_ms"].as_i64().map(|p| p < 5_000), Some(true));
    println!("{}", report.join("\n"));
}

//! A client that writes through a gateway until told to stop, keeping score: which ids the
//! server acknowledged, which ones failed after being sent (their fate unknown: committed or
//! not), how long the slowest write took, and how long it went without a successful one.
//! It reconnects after every error, so it rides over gateway and server restarts.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::gateway_client;

/// What one writer saw.
#[derive(Default)]
pub struct Score {
    pub acked: BTreeSet<i64>,
    pub unknown: BTreeSet<i64>,
    pub errors: usize,
    /// The slowest single write (or failed attempt).
    pub slowest: Duration,
    /// The longest stretch without an acknowledged write.
    pub longest_gap: Duration,
}

/// Writes rows `(id, 'w', 'fr')` into `customers` through `gateway` as the tenant whose key
/// is `key`, ids `first, first + step, ...`, until `stop`.
pub async fn write(
    gateway: String,
    tenant: String,
    key: String,
    first: i64,
    step: i64,
    stop: Arc<AtomicBool>,
    score: Arc<Mutex<Score>>,
) {
    let mut id = first;
    let mut client = None;
    let mut last_ok = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if client.is_none() {
            client = gateway_client(&gateway, "billing", &tenant, &key)
                .await
                .ok();
            if client.is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        }
        let Some(c) = &client else { continue };
        let t = Instant::now();
        // A bound on every write: an error is fine, a hang is not.
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            c.execute(
                "INSERT INTO customers (id, name, country) VALUES ($1, 'w', 'fr')",
                &[&id],
            ),
        )
        .await;
        let took = t.elapsed();
        let mut s = score.lock().expect("lock");
        s.slowest = s.slowest.max(took);
        match r {
            Ok(Ok(_)) => {
                s.acked.insert(id);
                s.longest_gap = s.longest_gap.max(last_ok.elapsed());
                last_ok = Instant::now();
            }
            Ok(Err(_)) | Err(_) => {
                s.unknown.insert(id);
                s.errors += 1;
                client = None;
            }
        }
        drop(s);
        id += step;
    }
}

/// Checks `present` (every id in the table, as the tenant sees it) against the writers'
/// scores: every acknowledged id there once, nothing nobody wrote.
pub fn check(present: &[i64], scores: &[&Score]) {
    let unique: BTreeSet<i64> = present.iter().copied().collect();
    assert_eq!(unique.len(), present.len(), "a row is there twice");
    let mut may = BTreeSet::new();
    for s in scores {
        let lost: Vec<_> = s.acked.difference(&unique).collect();
        assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
        may.extend(s.acked.iter().copied());
        may.extend(s.unknown.iter().copied());
    }
    let stray: Vec<_> = unique.difference(&may).collect();
    assert!(
        stray.is_empty(),
        "rows nobody wrote (another tenant's?): {stray:?}"
    );
}

/// Reads `tenant`'s ids through `gateway`, takes the writers' final scores and checks them
/// (see [`check`]); returns the scores.
pub async fn verify(
    gateway: &str,
    tenant: &str,
    key: &str,
    scores: &[Arc<Mutex<Score>>],
) -> Vec<Score> {
    let c = gateway_client(gateway, "billing", tenant, key)
        .await
        .expect("login to check the writes");
    let present: Vec<i64> = c
        .query("SELECT id FROM customers ORDER BY id", &[])
        .await
        .expect("select")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let scores: Vec<Score> = scores
        .iter()
        .map(|s| std::mem::take(&mut *s.lock().expect("lock")))
        .collect();
    check(&present, &scores.iter().collect::<Vec<_>>());
    scores
}

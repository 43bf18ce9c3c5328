//! Per-tenant limits, by tier: concurrent transactions, transactions per second, and how long
//! one query may run. One tenant hammering the gateway cannot take every backend connection
//! or starve another tenant's latency: past its limit it is refused (53300) or cancelled
//! (57014), with a message naming the limit, and everyone else goes on.
//!
//! Invariant: a transaction holds its tenant's pass for as long as it holds a backend
//! connection; dropping the pass (however the transaction ends) frees its place.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_model::TenantId;

/// The limits of one tier (None: no limit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierLimits {
    /// Transactions of one tenant running at once.
    pub max_transactions: Option<usize>,
    /// Transactions of one tenant started per second (a burst of one second's worth).
    pub transactions_per_second: Option<u32>,
    /// How long one query (a simple Query, or extended messages up to Sync) may run.
    pub statement_timeout: Option<Duration>,
}

/// Limits per tier, with a default for tiers not listed.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// For tiers without their own.
    pub default: TierLimits,
    /// By tier name.
    pub tiers: HashMap<String, TierLimits>,
}

impl Limits {
    /// The limits of `tier`.
    pub fn for_tier(&self, tier: &str) -> &TierLimits {
        self.tiers.get(tier).unwrap_or(&self.default)
    }
}

/// Why a transaction may not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitHit {
    /// At its concurrent-transaction limit.
    Concurrency(usize),
    /// Over its rate.
    Rate(u32),
}

/// One tenant's running count and rate bucket.
#[derive(Debug)]
pub struct Gate {
    active: AtomicUsize,
    /// (tokens, when last refilled).
    bucket: Mutex<(f64, Instant)>,
}

/// A running transaction's place; freed when dropped.
#[derive(Debug)]
pub struct Pass {
    gate: Arc<Gate>,
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.gate.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    fn new() -> Self {
        Self {
            active: AtomicUsize::new(0),
            bucket: Mutex::new((f64::MAX, Instant::now())),
        }
    }

    /// Lets a transaction in under `limits`, or says which limit it hit.
    pub fn enter(self: &Arc<Self>, limits: &TierLimits) -> Result<Pass, LimitHit> {
        let before = self.active.fetch_add(1, Ordering::AcqRel);
        let pass = Pass { gate: self.clone() };
        if let Some(max) = limits.max_transactions {
            if before >= max {
                return Err(LimitHit::Concurrency(max));
            }
        }
        if let Some(rate) = limits.transactions_per_second {
            let mut bucket = match self.bucket.lock() {
                Ok(b) => b,
                Err(poisoned) => poisoned.into_inner(),
            };
            let now = Instant::now();
            let capacity = f64::from(rate.max(1));
            let refill = now.duration_since(bucket.1).as_secs_f64() * f64::from(rate);
            bucket.0 = (bucket.0 + refill).min(capacity);
            bucket.1 = now;
            if bucket.0 < 1.0 {
                return Err(LimitHit::Rate(rate));
            }
            bucket.0 -= 1.0;
        }
        Ok(pass)
    }

    /// Transactions running now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }
}

/// Every tenant's gate.
#[derive(Default)]
pub struct Gates {
    gates: Mutex<HashMap<TenantId, Arc<Gate>>>,
}

/// Gates kept at most; idle ones are dropped past this.
const MAX_GATES: usize = 100_000;

impl Gates {
    /// The gate of `tenant`.
    pub fn of(&self, tenant: TenantId) -> Arc<Gate> {
        let mut gates = match self.gates.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if gates.len() >= MAX_GATES {
            // Only gates with nothing running may go: a running pass keeps its own.
            gates.retain(|_, g| g.active() > 0);
        }
        gates
            .entry(tenant)
            .or_insert_with(|| Arc::new(Gate::new()))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_is_bounded_and_a_dropped_pass_frees_its_place() {
        let gate = Arc::new(Gate::new());
        let limits = TierLimits {
            max_transactions: Some(2),
            ..Default::default()
        };
        let a = gate.enter(&limits).expect("first");
        let _b = gate.enter(&limits).expect("second");
        assert_eq!(
            gate.enter(&limits).expect_err("third"),
            LimitHit::Concurrency(2)
        );
        drop(a);
        assert!(gate.enter(&limits).is_ok(), "a place was freed");
        assert_eq!(gate.active(), 1, "refused entries hold nothing");
    }

    #[test]
    fn the_rate_allows_a_seconds_burst_then_refuses() {
        let gate = Arc::new(Gate::new());
        let limits = TierLimits {
            transactions_per_second: Some(5),
            ..Default::default()
        };
        let admitted = (0..20).filter(|_| gate.enter(&limits).is_ok()).count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn tiers_without_limits_of_their_own_get_the_default() {
        let mut limits = Limits::default();
        limits.tiers.insert(
            "free".into(),
            TierLimits {
                max_transactions: Some(1),
                ..Default::default()
            },
        );
        assert_eq!(limits.for_tier("free").max_transactions, Some(1));
        assert_eq!(limits.for_tier("business"), &TierLimits::default());
    }
}

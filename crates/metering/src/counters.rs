//! The gateway's counters per tenant, in atomics: a session adds its transaction's counts
//! with a handful of relaxed additions when the transaction ends, never under a lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bulkhead_model::TenantId;

/// The metrics the gateway counts, in the order of [`Counts`]' fields.
pub const GATEWAY_METRICS: [&str; 6] = [
    "transactions",
    "statements",
    "rows_returned",
    "bytes_in",
    "bytes_out",
    "backend_time_us",
];

/// One set of counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Transactions that ran on a backend.
    pub transactions: u64,
    /// Statements the server completed (transaction control left out).
    pub statements: u64,
    /// Rows sent to the client.
    pub rows_returned: u64,
    /// Bytes from the client.
    pub bytes_in: u64,
    /// Bytes to the client.
    pub bytes_out: u64,
    /// Time a backend connection was held, in microseconds.
    pub backend_time_us: u64,
}

impl Counts {
    /// The counts in the order of [`GATEWAY_METRICS`].
    pub fn values(&self) -> [u64; 6] {
        [
            self.transactions,
            self.statements,
            self.rows_returned,
            self.bytes_in,
            self.bytes_out,
            self.backend_time_us,
        ]
    }

    fn add(&mut self, o: &Counts) {
        self.transactions += o.transactions;
        self.statements += o.statements;
        self.rows_returned += o.rows_returned;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.backend_time_us += o.backend_time_us;
    }

    /// True when everything is zero.
    pub fn is_empty(&self) -> bool {
        self.values().iter().all(|v| *v == 0)
    }
}

/// One tenant's counts since the last flush.
#[derive(Default, Debug)]
pub struct TenantMeter {
    v: [AtomicU64; 6],
}

impl TenantMeter {
    /// Adds `c`.
    pub fn add(&self, c: &Counts) {
        for (slot, v) in self.v.iter().zip(c.values()) {
            if v > 0 {
                slot.fetch_add(v, Ordering::Relaxed);
            }
        }
    }

    fn load(&self) -> Counts {
        let v: Vec<u64> = self.v.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        from_values(&v)
    }

    fn take(&self) -> Counts {
        let v: Vec<u64> = self
            .v
            .iter()
            .map(|a| a.swap(0, Ordering::Relaxed))
            .collect();
        from_values(&v)
    }
}

fn from_values(v: &[u64]) -> Counts {
    Counts {
        transactions: v[0],
        statements: v[1],
        rows_returned: v[2],
        bytes_in: v[3],
        bytes_out: v[4],
        backend_time_us: v[5],
    }
}

/// Every tenant's meter, and what has been taken from them so far (for `/metrics`).
#[derive(Default, Debug)]
pub struct Meters {
    tenants: Mutex<HashMap<TenantId, Arc<TenantMeter>>>,
    taken: Mutex<HashMap<TenantId, Counts>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Meters {
    /// The meter of `tenant` (a session keeps it for the tenant's next transactions).
    pub fn tenant(&self, tenant: TenantId) -> Arc<TenantMeter> {
        lock(&self.tenants).entry(tenant).or_default().clone()
    }

    /// Takes every tenant's counts since the last take (they start again from zero).
    pub fn take(&self) -> Vec<(TenantId, Counts)> {
        let meters: Vec<(TenantId, Arc<TenantMeter>)> = lock(&self.tenants)
            .iter()
            .map(|(t, m)| (*t, m.clone()))
            .collect();
        let mut out = Vec::new();
        let mut taken = lock(&self.taken);
        for (t, m) in meters {
            let c = m.take();
            if !c.is_empty() {
                taken.entry(t).or_default().add(&c);
                out.push((t, c));
            }
        }
        out.sort_by_key(|(t, _)| *t);
        out
    }

    /// The `n` tenants with the most transactions since start, with their totals, and the
    /// sum of everyone else's.
    pub fn top(&self, n: usize) -> (Vec<(TenantId, Counts)>, Counts) {
        let mut all: HashMap<TenantId, Counts> = lock(&self.taken).clone();
        for (t, m) in lock(&self.tenants).iter() {
            all.entry(*t).or_default().add(&m.load());
        }
        let mut all: Vec<(TenantId, Counts)> = all.into_iter().collect();
        all.sort_by(|a, b| {
            b.1.transactions
                .cmp(&a.1.transactions)
                .then(b.1.bytes_out.cmp(&a.1.bytes_out))
                .then(a.0.cmp(&b.0))
        });
        let mut rest = Counts::default();
        for (_, c) in all.iter().skip(n) {
            rest.add(c);
        }
        all.truncate(n);
        (all, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_reset_and_totals_keep_counting() {
        let m = Meters::default();
        let (a, b) = (TenantId::random(), TenantId::random());
        let c = Counts {
            transactions: 2,
            statements: 3,
            ..Default::default()
        };
        m.tenant(a).add(&c);
        m.tenant(b).add(&Counts {
            transactions: 5,
            ..Default::default()
        });
        let first = m.take();
        assert_eq!(first.len(), 2);
        assert!(m.take().is_empty(), "nothing new since");
        m.tenant(a).add(&c);
        let (top, rest) = m.top(1);
        assert_eq!(
            top,
            vec![(
                b,
                Counts {
                    transactions: 5,
                    ..Default::default()
                }
            )]
        );
        assert_eq!(rest.transactions, 4);
        assert_eq!(rest.statements, 6);
    }
}

//! What a session counts for metering: per backend transaction, the statements the server
//! completed (transaction control left out), the rows sent to the client, the bytes both
//! ways and the time the backend connection was held. Counted in plain fields while the
//! transaction runs and added to the tenant's meter (a few atomic additions) when it ends.

use std::sync::Arc;
use std::time::Instant;

use bulkhead_metering::{Counts, TenantMeter};
use bulkhead_model::TenantId;
use bulkhead_wire::Frame;

use super::Session;

/// The running transaction's counts.
#[derive(Default)]
pub(super) struct SessionUsage {
    statements: u64,
    rows: u64,
    leased_at: Option<Instant>,
    in_mark: u64,
    out_mark: u64,
    meter: Option<(TenantId, Arc<TenantMeter>)>,
}

/// True for the CommandComplete of BEGIN, COMMIT or ROLLBACK (counted as transactions).
fn is_transaction_control(tag: &[u8]) -> bool {
    let word = tag.split(|b| *b == 0 || *b == b' ').next().unwrap_or(&[]);
    matches!(word, b"BEGIN" | b"COMMIT" | b"ROLLBACK")
}

impl Session {
    /// Counts a reply relayed to the client.
    pub(super) fn count_reply(&mut self, frame: &Frame) {
        match frame.tag {
            b'D' => self.usage.rows += 1,
            b'C' if !is_transaction_control(&frame.body) => self.usage.statements += 1,
            _ => {}
        }
    }

    /// A backend connection was checked out for a transaction.
    pub(super) fn usage_leased(&mut self) {
        self.usage.leased_at = Some(Instant::now());
    }

    /// The backend transaction ended (committed, rolled back or lost): its counts go to the
    /// tenant's meter.
    pub(super) fn meter_transaction(&mut self) {
        let Some(tenant) = self.route.as_ref().and_then(|r| r.tenant) else {
            return;
        };
        let u = &mut self.usage;
        let held = u
            .leased_at
            .take()
            .map(|t| u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let counts = Counts {
            transactions: 1,
            statements: std::mem::take(&mut u.statements),
            rows_returned: std::mem::take(&mut u.rows),
            bytes_in: self.io.bytes_in - u.in_mark,
            bytes_out: self.io.bytes_out - u.out_mark,
            backend_time_us: held,
        };
        u.in_mark = self.io.bytes_in;
        u.out_mark = self.io.bytes_out;
        let meter = match &u.meter {
            Some((t, m)) if *t == tenant => m.clone(),
            _ => {
                let m = self.state.meters.tenant(tenant);
                u.meter = Some((tenant, m.clone()));
                m
            }
        };
        meter.add(&counts);
    }
}

impl Drop for Session {
    /// A client that leaves mid-transaction still pays for what ran.
    fn drop(&mut self) {
        if self.backend.is_some() {
            self.meter_transaction();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_transaction_control;

    #[test]
    fn transaction_control_tags_are_told_apart() {
        for t in [&b"BEGIN\0"[..], b"COMMIT\0", b"ROLLBACK\0"] {
            assert!(is_transaction_control(t));
        }
        for t in [
            &b"SELECT 3\0"[..],
            b"INSERT 0 1\0",
            b"COMMITTED\0",
            b"SAVEPOINT\0",
        ] {
            assert!(!is_transaction_control(t));
        }
    }
}

//! Flushing the gateway's counters to the control database.
//!
//! Each flush takes the counts since the last one as a numbered batch, one usage event per
//! tenant and metric, keyed `gw:<instance>:<batch>:<tenant>:<metric>`. A batch that fails to
//! commit is kept and retried as it is (same keys), and new counts wait for the next batch,
//! so a flush retried after a crash or a lost COMMIT reply is counted once.

use std::sync::Arc;
use std::time::Duration;

use bulkhead_directory::{Directory, DirectoryError, UsageEvent, UsageSource};
use bulkhead_model::TenantId;
use chrono::{DateTime, Utc};

use crate::counters::{Counts, Meters, GATEWAY_METRICS};

/// The usage events of one flush.
pub fn gateway_events(
    instance: &str,
    batch: u64,
    at: DateTime<Utc>,
    counts: &[(TenantId, Counts)],
) -> Vec<UsageEvent> {
    let mut out = Vec::new();
    for (tenant, c) in counts {
        for (metric, v) in GATEWAY_METRICS.iter().zip(c.values()) {
            if v == 0 {
                continue;
            }
            out.push(UsageEvent {
                key: format!("gw:{instance}:{batch}:{tenant}:{metric}"),
                tenant: *tenant,
                metric: (*metric).to_string(),
                quantity: i64::try_from(v).unwrap_or(i64::MAX),
                at,
                source: UsageSource::Gateway,
            });
        }
    }
    out
}

/// Takes counts from `meters` and writes them, one batch at a time.
#[derive(Debug)]
pub struct Flusher {
    meters: Arc<Meters>,
    instance: String,
    batch_no: u64,
    pending: Option<Vec<UsageEvent>>,
}

impl Flusher {
    /// A flusher for `meters`, its batches named after a fresh instance id.
    pub fn new(meters: Arc<Meters>) -> Self {
        Self {
            meters,
            instance: uuid::Uuid::new_v4().simple().to_string(),
            batch_no: 1,
            pending: None,
        }
    }

    /// The batch to write next: the one that failed last time, else the counts since.
    pub fn next_batch(&mut self) -> Vec<UsageEvent> {
        if let Some(p) = self.pending.take() {
            return p;
        }
        let counts = self.meters.take();
        if counts.is_empty() {
            return Vec::new();
        }
        let batch = self.batch_no;
        self.batch_no += 1;
        gateway_events(&self.instance, batch, Utc::now(), &counts)
    }

    /// Writes the next batch; on failure it is kept for the next call. Returns how many
    /// events were newly counted.
    pub async fn flush(&mut self, dir: &Directory) -> Result<u64, DirectoryError> {
        let batch = self.next_batch();
        if batch.is_empty() {
            return Ok(0);
        }
        match dir.record_usage(&batch).await {
            Ok(n) => Ok(n),
            Err(e) => {
                self.pending = Some(batch);
                Err(e)
            }
        }
    }

    /// True when a failed batch waits to be retried.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }
}

/// A flusher shared by the periodic task and on-demand flushes (`usage collect`).
pub type SharedFlusher = Arc<tokio::sync::Mutex<Flusher>>;

/// Flushes every `interval` until `stop` turns true, then once more (retrying a few times),
/// so a clean shutdown writes everything counted.
pub async fn run(
    dir: Directory,
    flusher: SharedFlusher,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(interval) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopping {
            break;
        }
        if let Err(e) = flusher.lock().await.flush(&dir).await {
            tracing::warn!(error = %e, "flushing usage counts failed; the batch is kept and retried");
        }
    }
    // Until two flushes in a row succeed: the first may have sent a batch kept from a failed
    // flush, leaving the counts taken since for the second.
    let mut flusher = flusher.lock().await;
    let mut succeeded = 0;
    for attempt in 1..=6u32 {
        match flusher.flush(&dir).await {
            Ok(_) => {
                succeeded += 1;
                if succeeded == 2 {
                    return;
                }
            }
            Err(e) => {
                succeeded = 0;
                tracing::warn!(error = %e, attempt, "the final usage flush failed");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
    }
    tracing::error!("usage counts could not be written at shutdown and are lost");
}

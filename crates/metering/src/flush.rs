//! Flushing the gateway's counters to the control database.
//!
//! Each flush takes the counts since the last one as a numbered batch, keyed
//! `gw:<instance>:<batch>`, and adds them to the hourly rollups in the statement that stores
//! the key (one key per batch: one per tenant and metric was 90,000 stored events every
//! flush at 15,000 active tenants). A batch that fails to commit is kept and retried as it is
//! (same key), and new counts wait for the next batch, so a flush retried after a crash or a
//! lost COMMIT reply is counted once.

use std::sync::Arc;
use std::time::Duration;

use bulkhead_directory::{Directory, DirectoryError};
use bulkhead_model::TenantId;
use chrono::{DateTime, Utc};

use crate::counters::{Counts, Meters, GATEWAY_METRICS};

/// One flush's counts: its key, its time (which decides the hour) and (tenant, metric,
/// quantity) rows, none zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayBatch {
    /// `gw:<instance>:<batch>`, the same on every retry.
    pub key: String,
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// The counts.
    pub rows: Vec<(TenantId, &'static str, i64)>,
}

impl GatewayBatch {
    /// The batch `batch` of `instance`, taken `at`, of `counts`.
    pub fn new(
        instance: &str,
        batch: u64,
        at: DateTime<Utc>,
        counts: &[(TenantId, Counts)],
    ) -> Self {
        let mut rows = Vec::new();
        for (tenant, c) in counts {
            for (metric, v) in GATEWAY_METRICS.iter().zip(c.values()) {
                if v != 0 {
                    rows.push((*tenant, *metric, i64::try_from(v).unwrap_or(i64::MAX)));
                }
            }
        }
        Self {
            key: format!("gw:{instance}:{batch}"),
            at,
            rows,
        }
    }

    /// Writes it; returns how many rollups it added to (0 when it was written before).
    pub async fn record(&self, dir: &Directory) -> Result<u64, DirectoryError> {
        dir.record_gateway_batch(&self.key, self.at, &self.rows)
            .await
    }
}

/// Takes counts from `meters` and writes them, one batch at a time.
#[derive(Debug)]
pub struct Flusher {
    meters: Arc<Meters>,
    instance: String,
    batch_no: u64,
    pending: Option<GatewayBatch>,
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

    /// The batch to write next: the one that failed last time, else the counts since (None
    /// when nothing was counted).
    pub fn next_batch(&mut self) -> Option<GatewayBatch> {
        if let Some(p) = self.pending.take() {
            return Some(p);
        }
        let counts = self.meters.take();
        if counts.is_empty() {
            return None;
        }
        let batch = self.batch_no;
        self.batch_no += 1;
        Some(GatewayBatch::new(
            &self.instance,
            batch,
            Utc::now(),
            &counts,
        ))
    }

    /// Writes the next batch; on failure it is kept for the next call. Returns how many
    /// (tenant, metric) counts were newly added.
    pub async fn flush(&mut self, dir: &Directory) -> Result<u64, DirectoryError> {
        let Some(batch) = self.next_batch() else {
            return Ok(0);
        };
        match batch.record(dir).await {
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

//! The batched writer for the request path: `record` never waits (it puts the event on a
//! bounded queue); a background task appends what is queued in batches. Closing it writes
//! everything queued before returning, so a clean shutdown loses nothing. If the queue is
//! ever full (a flood of failed logins faster than the database takes them), the events that
//! did not fit are counted and that count is recorded as an `audit.dropped` event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::event::{action, Event};
use crate::AuditLog;

/// Queue capacity by default.
pub const QUEUE: usize = 65_536;
/// At most this many events per append.
const BATCH: usize = 1_024;

enum Item {
    Event(Event),
    Flush(oneshot::Sender<()>),
}

/// A handle on the writer: cheap to clone, `record` never blocks.
#[derive(Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<Item>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter").finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Starts the writer task on `log`, queueing at most `queue` events.
    pub fn start(log: AuditLog, queue: usize) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(log, rx, dropped.clone()));
        Self { tx, dropped }
    }

    /// Queues `event` (never waits).
    pub fn record(&self, event: Event) {
        if self.tx.try_send(Item::Event(event)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until everything queued before this call is written (or given up on, logged).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Item::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run(log: AuditLog, mut rx: mpsc::Receiver<Item>, dropped: Arc<AtomicU64>) {
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        let mut waiting = Vec::new();
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Item::Event(e) => batch.push(e),
                Item::Flush(done) => waiting.push(done),
            }
            if batch.len() >= BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            batch.push(
                Event::new(action::DROPPED, "gateway")
                    .details(json!({ "events": lost, "reason": "the audit queue was full" })),
            );
        }
        write(&log, batch).await;
        for done in waiting {
            let _ = done.send(());
        }
    }
}

/// Appends `batch`, retrying for a while if the control database is away (a retry of an
/// append that did commit records nothing twice: events carry their own ids).
async fn write(log: &AuditLog, batch: Vec<Event>) {
    if batch.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=8 {
        let appended = if attempt == 1 {
            log.record_all(batch.clone()).await
        } else {
            log.record_again(batch.clone()).await
        };
        match appended {
            Ok(()) => return,
            Err(e) if attempt < 8 => {
                tracing::warn!(error = %e, events = batch.len(), attempt, "writing audit events failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                for ev in &batch {
                    tracing::error!(error = %e, tenant = ?ev.tenant, action = %ev.action, actor = %ev.actor, details = %ev.details, "an audit event could not be written");
                }
            }
        }
    }
}

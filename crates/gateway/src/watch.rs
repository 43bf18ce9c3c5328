//! Directory changes, heard on the `bulkhead_directory` notification channel. Each change to
//! a tenant, its placements or its keys bumps that tenant's generation; a change to clusters
//! or services, or a lost listener connection, bumps the global one. Sessions compare
//! generations before every unit of work and re-resolve their route when either moved, so a
//! suspension or a move takes effect on open sessions, not just on new logins.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead_directory::CHANGE_CHANNEL;
use bulkhead_model::TenantId;
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

/// Generations of directory state.
#[derive(Default)]
pub struct DirectoryWatch {
    global: AtomicU64,
    /// Bumped with every change of any generation: one load tells that nothing moved.
    changes: AtomicU64,
    tenants: Mutex<HashMap<TenantId, u64>>,
    /// Woken on every change: sessions waiting out a held tenant retry at once.
    changed: tokio::sync::Notify,
}

/// What a session saw when it resolved its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seen {
    global: u64,
    tenant: u64,
}

impl DirectoryWatch {
    /// The current generations for `tenant`.
    pub fn seen(&self, tenant: &TenantId) -> Seen {
        Seen {
            global: self.global.load(Ordering::Acquire),
            tenant: self
                .tenants
                .lock()
                .ok()
                .and_then(|t| t.get(tenant).copied())
                .unwrap_or(0),
        }
    }

    /// The generation of everything that is not one tenant's (clusters, services,
    /// credentials).
    pub fn global(&self) -> u64 {
        self.global.load(Ordering::Acquire)
    }

    /// A number that moves whenever any generation moves.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// Resolves at the next change of anything (register before re-checking, as with
    /// [`tokio::sync::Notify`]).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    fn bump_tenant(&self, tenant: TenantId) {
        if let Ok(mut t) = self.tenants.lock() {
            *t.entry(tenant).or_default() += 1;
        }
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    fn bump_all(&self) {
        self.global.fetch_add(1, Ordering::AcqRel);
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    fn on_payload(&self, payload: &str) {
        let parsed: Option<serde_json::Value> = serde_json::from_str(payload).ok();
        let tenant = parsed
            .as_ref()
            .and_then(|v| v.get("tenant_id"))
            .and_then(|v| v.as_str())
            .and_then(|s| TenantId::from_str(s).ok());
        match tenant {
            Some(t) => self.bump_tenant(t),
            None => self.bump_all(),
        }
    }

    /// Listens until the process ends, reconnecting with backoff; every reconnect counts as
    /// a change of everything (notifications may have been missed meanwhile).
    pub fn spawn(self: &Arc<Self>, dsn: String) {
        let watch = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match watch.listen(&dsn).await {
                    Ok(()) => backoff = Duration::from_millis(200),
                    Err(e) => tracing::warn!(error = %e, "directory listener lost; reconnecting"),
                }
                watch.bump_all();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        });
    }

    async fn listen(&self, dsn: &str) -> Result<(), tokio_postgres::Error> {
        let (client, mut conn) = tokio_postgres::connect(dsn, NoTls).await?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let pump = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(m) = messages.next().await {
                match m {
                    Ok(AsyncMessage::Notification(n)) => {
                        if tx.send(n.payload().to_string()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {CHANGE_CHANNEL}"))
            .await?;
        // Anything that changed before LISTEN took effect.
        self.bump_all();
        while let Some(payload) = rx.recv().await {
            self.on_payload(&payload);
        }
        pump.abort();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_changes_bump_that_tenant_and_others_bump_everything() {
        let w = DirectoryWatch::default();
        let a: TenantId = "3f2b8c1e-0d4a-4e1b-9c57-6a0f1e2d3c4b".parse().expect("id");
        let b: TenantId = "0b7e3f4c-5a6d-4e8f-9a0b-1c2d3e4f5a6b".parse().expect("id");
        let (sa, sb) = (w.seen(&a), w.seen(&b));
        w.on_payload(
            r#"{"table": "placements", "tenant_id": "3f2b8c1e-0d4a-4e1b-9c57-6a0f1e2d3c4b"}"#,
        );
        assert_ne!(w.seen(&a), sa);
        assert_eq!(w.seen(&b), sb);
        w.on_payload(r#"{"table": "clusters", "name": "main"}"#);
        assert_ne!(w.seen(&b), sb);
    }
}

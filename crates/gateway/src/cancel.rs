//! Cancel requests. Each client gets the gateway's own key (pid, secret), never a backend's.
//! While a session runs a unit on a backend, its entry holds that backend's key; a cancel
//! request with the right secret is forwarded to PostgreSQL as a fresh CancelRequest.
//!
//! Invariant: a cancel can only reach the backend the client is using at that moment. The
//! session clears its backend key under the same lock a cancel holds while sending, before
//! the connection goes back to the pool (the race PgDog #1505 describes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bulkhead_wire::to_server;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;

/// Where a cancel for one session goes right now.
#[derive(Debug, Clone)]
pub struct CancelTarget {
    /// The backend's server.
    pub server: Arc<crate::backend::BackendTarget>,
    /// Backend pid.
    pub pid: i32,
    /// Backend secret.
    pub secret: Bytes,
}

/// One session's entry.
pub type Slot = Arc<tokio::sync::Mutex<Option<CancelTarget>>>;

/// Every live session's key.
#[derive(Default)]
pub struct CancelRegistry {
    sessions: Mutex<HashMap<i32, ([u8; 4], Slot)>>,
}

impl CancelRegistry {
    /// Registers a session's key; returns its slot.
    pub fn register(&self, pid: i32, secret: [u8; 4]) -> Slot {
        let slot: Slot = Arc::new(tokio::sync::Mutex::new(None));
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(pid, (secret, slot.clone()));
        }
        slot
    }

    /// Forgets a session.
    pub fn remove(&self, pid: i32) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(&pid);
        }
    }

    /// Handles a CancelRequest: forwards it when the key matches and the session is running
    /// something; otherwise does nothing (as PostgreSQL does, it never answers).
    pub async fn cancel(&self, pid: i32, secret: &[u8]) {
        let slot = match self.sessions.lock() {
            Ok(s) => s.get(&pid).and_then(|(known, slot)| {
                let same = known.len() == secret.len()
                    && known
                        .iter()
                        .zip(secret)
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0;
                same.then(|| slot.clone())
            }),
            Err(_) => None,
        };
        let Some(slot) = slot else {
            tracing::info!(pid, "cancel request with an unknown key ignored");
            return;
        };
        let held = slot.lock().await;
        let Some(target) = held.as_ref() else { return };
        send(target).await;
    }
}

/// Sends a CancelRequest for `target`'s backend and waits until PostgreSQL has taken it.
pub async fn send(target: &CancelTarget) {
    let mut out = BytesMut::new();
    to_server::cancel_request(&mut out, target.pid, &target.secret);
    match tokio::net::TcpStream::connect((target.server.host.as_str(), target.server.port)).await {
        Ok(mut s) => {
            let _ = s.write_all(&out).await;
            // PostgreSQL closes the socket when done; wait for that before letting the
            // session reuse the backend.
            let mut sink = [0u8; 1];
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                tokio::io::AsyncReadExt::read(&mut s, &mut sink),
            )
            .await;
        }
        Err(e) => tracing::warn!(error = %e, "sending a cancel request failed"),
    }
}

//! Backend connections, pooled per cluster: each cluster has a budget of connections
//! (configuration, never the tenant count) shared by its databases. Idle connections are kept
//! per database; when the budget is spent on idle connections of other databases, one of
//! those is closed to make room; otherwise a checkout waits, bounded, and then fails with
//! 53300.
//!
//! Invariant: a connection goes back to the pool only when the session says it is clean
//! (ReadyForQuery idle, nothing unread); otherwise it is closed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::conn::{BackendTarget, ServerConn};
use crate::GatewayError;

/// Pool sizes and waits.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Connections per cluster.
    pub size: usize,
    /// How long a checkout may wait.
    pub checkout_timeout: Duration,
    /// Oldest server version accepted (`server_version_num`).
    pub min_server_version: i32,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            size: 20,
            checkout_timeout: Duration::from_secs(5),
            min_server_version: 150_009,
        }
    }
}

type Idle = Vec<(ServerConn, OwnedSemaphorePermit)>;
type Target = Arc<BackendTarget>;

struct ClusterPool {
    permits: Arc<Semaphore>,
    idle: Mutex<HashMap<Target, Idle>>,
    /// Signalled whenever a connection is given back or closed, so a waiting checkout looks
    /// again: a returned connection keeps its permit, so a wait on the semaphore alone would
    /// miss it. One waiter is woken per connection (a woken waiter that gives up passes the
    /// wake-up on), not all of them to race for it.
    changed: Notify,
}

impl Drop for Leased {
    fn drop(&mut self) {
        // Closed (not given back): its permit is released with it; wake a waiter.
        if self.conn.is_some() {
            self.pool.changed.notify_one();
        }
    }
}

/// Every cluster's pool.
pub struct Pools {
    settings: PoolSettings,
    clusters: Mutex<HashMap<String, Arc<ClusterPool>>>,
}

/// A checked-out connection; closed when dropped unless given back.
pub struct Leased {
    conn: Option<ServerConn>,
    permit: Option<OwnedSemaphorePermit>,
    pool: Arc<ClusterPool>,
    target: Target,
}

impl Leased {
    /// The connection.
    pub fn conn(&mut self) -> &mut ServerConn {
        self.conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("a Leased holds its connection until given back"))
    }

    /// Returns a clean connection to the pool.
    pub fn give_back(mut self) {
        if let (Some(mut conn), Some(permit)) = (self.conn.take(), self.permit.take()) {
            conn.idle_since = std::time::Instant::now();
            if conn.has_buffered() {
                return;
            }
            if let Ok(mut idle) = self.pool.idle.lock() {
                idle.entry(self.target.clone())
                    .or_default()
                    .push((conn, permit));
            }
            self.pool.changed.notify_one();
        }
    }
}

/// Idle time after which a connection is checked before it serves again.
const RECHECK_AFTER_IDLE: std::time::Duration = std::time::Duration::from_millis(500);

/// An idle connection to `target`: one for which `prefer` holds if there is one, else the
/// one idle longest (the others' tenants are likelier to come back).
fn take_idle(
    pool: &Arc<ClusterPool>,
    target: &Target,
    prefer: &impl Fn(&ServerConn) -> bool,
) -> Option<Leased> {
    let (conn, permit) = pool.idle.lock().ok().and_then(|mut idle| {
        let list = idle.get_mut(&**target)?;
        loop {
            let taken = match list.iter().rposition(|(c, _)| prefer(c)) {
                Some(i) => list.remove(i),
                None if list.is_empty() => return None,
                None => list.remove(0),
            };
            // One that sat idle a while may have been closed by the server meanwhile (a
            // terminated backend, a dropped database): check it (one non-blocking read) and
            // drop it if so, its permit coming back. A busy pool skips the check.
            if taken.0.idle_since.elapsed() < RECHECK_AFTER_IDLE || !taken.0.is_unusable() {
                return Some(taken);
            }
        }
    })?;
    Some(Leased {
        conn: Some(conn),
        permit: Some(permit),
        pool: pool.clone(),
        target: target.clone(),
    })
}

impl Pools {
    /// Empty pools with these settings.
    pub fn new(settings: PoolSettings) -> Self {
        Self {
            settings,
            clusters: Mutex::new(HashMap::new()),
        }
    }

    fn cluster(&self, name: &str) -> Arc<ClusterPool> {
        let mut clusters = match self.clusters.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(pool) = clusters.get(name) {
            return pool.clone();
        }
        clusters
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(ClusterPool {
                    permits: Arc::new(Semaphore::new(self.settings.size)),
                    idle: Mutex::new(HashMap::new()),
                    changed: Notify::new(),
                })
            })
            .clone()
    }

    /// A connection to `target` on `cluster`: an idle one (one for which `prefer` holds if
    /// there is one: the one that last served the same tenant), a new one within the budget,
    /// or one freed by closing an idle connection of another database, waiting at most the
    /// checkout timeout.
    pub async fn checkout(
        &self,
        cluster: &str,
        target: &Target,
        prefer: impl Fn(&ServerConn) -> bool,
    ) -> Result<Leased, GatewayError> {
        let pool = self.cluster(cluster);
        // Most checkouts find an idle connection: no need to queue as a waiter for that.
        if let Some(leased) = take_idle(&pool, target, &prefer) {
            return Ok(leased);
        }
        let deadline = tokio::time::Instant::now() + self.settings.checkout_timeout;
        let permit = loop {
            // Register interest before looking, so a give-back between look and wait is seen.
            let watch = pool.clone();
            let changed = watch.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(leased) = take_idle(&pool, target, &prefer) {
                return Ok(leased);
            }
            if let Ok(p) = pool.permits.clone().try_acquire_owned() {
                break p;
            }
            // Close an idle connection of another database to make room, if there is one.
            let evicted = pool.idle.lock().ok().and_then(|mut idle| {
                idle.iter_mut()
                    .find(|(t, list)| *t != target && !list.is_empty())
                    .and_then(|(_, l)| l.pop())
            });
            if evicted.is_some() {
                drop(evicted);
                continue;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(GatewayError::PoolTimeout);
            }
        };
        let conn = match ServerConn::connect(target, self.settings.min_server_version).await {
            Ok(c) => c,
            Err(e) => {
                drop(permit);
                pool.changed.notify_one();
                return Err(e);
            }
        };
        Ok(Leased {
            conn: Some(conn),
            permit: Some(permit),
            pool,
            target: target.clone(),
        })
    }

    /// (cluster, idle, checked out) for every cluster.
    pub fn all_stats(&self) -> Vec<(String, usize, usize)> {
        let names: Vec<String> = match self.clusters.lock() {
            Ok(c) => c.keys().cloned().collect(),
            Err(_) => Vec::new(),
        };
        names
            .into_iter()
            .map(|n| {
                let (idle, used) = self.stats(&n);
                (n, idle, used)
            })
            .collect()
    }

    /// How many connections of `cluster` are idle and how many are checked out.
    pub fn stats(&self, cluster: &str) -> (usize, usize) {
        let pool = self.cluster(cluster);
        let idle = pool
            .idle
            .lock()
            .map(|i| i.values().map(Vec::len).sum())
            .unwrap_or(0);
        let used = self.settings.size - pool.permits.available_permits() - idle;
        (idle, used)
    }
}

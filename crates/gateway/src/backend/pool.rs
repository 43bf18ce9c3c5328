//! Backend connections, pooled per cluster: each cluster has a budget of connections
//! (configuration, never the tenant count) shared by its databases. Idle connections are kept
//! per database, oldest first (a checkout takes the newest); when the budget is spent on idle
//! connections of other databases, one of those is closed to make room, a database tenant's
//! before a pool database's (see [`ClusterPool::evict_for`]); otherwise a checkout waits,
//! bounded, and then fails with 53300.
//!
//! Invariant: a connection goes back to the pool only when the session says it is clean
//! (ReadyForQuery idle, nothing unread); otherwise it is closed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// How long a backend may leave what the gateway sent unacknowledged (a lost network,
    /// a frozen host) before its connection is dropped and the client told: the sockets'
    /// `TCP_USER_TIMEOUT`, with keepalive probes on idle connections. Also bounds connecting.
    pub network_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            size: 20,
            checkout_timeout: Duration::from_secs(5),
            min_server_version: 150_009,
            network_timeout: Duration::from_secs(10),
        }
    }
}

type Idle = Vec<(ServerConn, OwnedSemaphorePermit)>;
type Target = Arc<BackendTarget>;

struct ClusterPool {
    permits: Arc<Semaphore>,
    idle: Mutex<HashMap<Target, Idle>>,
    /// Checkouts waiting, oldest first. A returned connection keeps its permit, so a wait
    /// on the semaphore alone would miss it: each give-back or close wakes one waiter (see
    /// [`ClusterPool::wake`]), not all of them to race for it.
    waiters: Mutex<VecDeque<Arc<Waiter>>>,
    /// Connections checked out, per database.
    in_use: Mutex<HashMap<Target, usize>>,
}

/// A checkout waiting for a connection.
struct Waiter {
    target: Target,
    since: Instant,
    /// Woken and not yet looked: another wake-up goes to someone else.
    woken: AtomicBool,
    notify: Notify,
}

/// How much longer than the oldest waiter for the database a connection was given back to
/// the oldest waiter of all may have waited before it is served first (it then closes an
/// idle connection of another database to open its own); also how long a checkout waits for
/// its own database's connections before it closes another's.
const FAIR_WAIT: Duration = Duration::from_millis(100);

/// How long another database's connection must have been idle before a checkout whose own
/// connections are all in use closes it rather than wait for one of its own.
const SETTLED_IDLE: Duration = Duration::from_millis(250);

impl ClusterPool {
    fn count_use(&self, target: &Target, up: bool) {
        if let Ok(mut m) = self.in_use.lock() {
            let n = m.entry(target.clone()).or_default();
            *n = if up { *n + 1 } else { n.saturating_sub(1) };
        }
    }

    fn in_use(&self, target: &Target) -> usize {
        self.in_use
            .lock()
            .ok()
            .and_then(|m| m.get(target).copied())
            .unwrap_or(0)
    }

    /// Closes an idle connection of another database than `target` (one no checkout waits
    /// for, unless `starving`; idle at least `min_idle`) to make room; false when there is
    /// none. A database tenant's connections go first, least recently used first, and a pool
    /// database's only when none is idle, and for a database tenant's checkout only once
    /// idle [`SETTLED_IDLE`] (or when it starves): a pool database's connection serves every
    /// tenant placed there, and a new one costs far more than a database tenant's (the
    /// login's membership list and the catalog caches of many tenants are rebuilt in each new
    /// backend). A busy database keeps its warm connections, and one used rarely gives up its
    /// own first.
    fn evict_for(&self, target: &Target, starving: bool, min_idle: Duration) -> bool {
        let wanted: Vec<Target> = match self.waiters.lock() {
            Ok(q) if !starving => q.iter().map(|w| w.target.clone()).collect(),
            _ => Vec::new(),
        };
        let settles = |t: &Target| target.single_tenant && !t.single_tenant && !starving;
        let evicted = self.idle.lock().ok().and_then(|mut idle| {
            idle.iter_mut()
                .filter(|(t, list)| *t != target && !list.is_empty() && !wanted.contains(t))
                .filter(|(t, list)| {
                    let least = if settles(t) {
                        min_idle.max(SETTLED_IDLE)
                    } else {
                        min_idle
                    };
                    list[0].0.idle_since.elapsed() >= least
                })
                .min_by_key(|(t, list)| (!t.single_tenant, list[0].0.idle_since))
                .map(|(_, l)| l.remove(0))
        });
        evicted.is_some()
    }

    /// Wakes the waiter a freed connection should go to. `returned`: a connection to that
    /// database was given back, and goes to the oldest waiter for the same database (no
    /// connection closed and opened), unless the oldest waiter of all has waited
    /// [`FAIR_WAIT`] longer than that one; None: a permit came free, for the oldest waiter.
    fn wake(&self, returned: Option<&Target>) {
        let Ok(queue) = self.waiters.lock() else {
            return;
        };
        let mut oldest = None;
        let mut same = None;
        for w in queue.iter().filter(|w| !w.woken.load(Ordering::Relaxed)) {
            oldest.get_or_insert(w);
            if returned.is_none_or(|t| w.target == *t) {
                same = Some(w);
                break;
            }
        }
        let chosen = match (oldest, same) {
            (Some(o), Some(s)) if s.since.duration_since(o.since) > FAIR_WAIT => o,
            (_, Some(s)) => s,
            (Some(o), None) => o,
            (None, None) => return,
        };
        chosen.woken.store(true, Ordering::Relaxed);
        chosen.notify.notify_one();
    }
}

/// A waiter's place in its pool's queue, left when dropped; a waiter woken that leaves
/// without the connection it was woken for passes the wake-up on.
struct Queued {
    pool: Arc<ClusterPool>,
    waiter: Arc<Waiter>,
}

impl Queued {
    fn join(pool: &Arc<ClusterPool>, target: &Target) -> Self {
        let waiter = Arc::new(Waiter {
            target: target.clone(),
            since: Instant::now(),
            woken: AtomicBool::new(false),
            notify: Notify::new(),
        });
        if let Ok(mut q) = pool.waiters.lock() {
            q.push_back(waiter.clone());
        }
        Self {
            pool: pool.clone(),
            waiter,
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        if let Ok(mut q) = self.pool.waiters.lock() {
            q.retain(|w| !Arc::ptr_eq(w, &self.waiter));
        }
        if self.waiter.woken.load(Ordering::Relaxed) {
            self.pool.wake(None);
        }
    }
}

impl Drop for Leased {
    fn drop(&mut self) {
        // Closed (not given back): its permit is released with it; wake a waiter.
        if self.conn.is_some() {
            self.pool.count_use(&self.target, false);
            self.pool.wake(None);
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
            self.pool.count_use(&self.target, false);
            conn.idle_since = std::time::Instant::now();
            if conn.has_buffered() {
                return;
            }
            if let Ok(mut idle) = self.pool.idle.lock() {
                idle.entry(self.target.clone())
                    .or_default()
                    .push((conn, permit));
            }
            self.pool.wake(Some(&self.target));
        }
    }
}

/// Idle time after which a connection is checked before it serves again.
const RECHECK_AFTER_IDLE: std::time::Duration = std::time::Duration::from_millis(500);

/// An idle connection to `target`: the one `rank` ranks highest, of those the one used last.
/// Last in, first out, like PgBouncer's default: connections beyond what the load needs stay
/// idle and age, so the LRU eviction closes them first when another database needs room
/// (taking the one idle longest kept every connection warm in turn, and a database tenant's
/// connection was closed instead, one connect per such transaction).
fn take_idle(
    pool: &Arc<ClusterPool>,
    target: &Target,
    rank: &impl Fn(&ServerConn) -> u8,
) -> Option<Leased> {
    let (conn, permit) = pool.idle.lock().ok().and_then(|mut idle| {
        let list = idle.get_mut(&**target)?;
        loop {
            let best = list
                .iter()
                .enumerate()
                .max_by_key(|(i, (c, _))| (rank(c), *i))
                .map(|(i, _)| i)?;
            let taken = list.remove(best);
            // One that sat idle a while may have been closed by the server meanwhile (a
            // terminated backend, a dropped database): check it (one non-blocking read) and
            // drop it if so, its permit coming back. A busy pool skips the check.
            if taken.0.idle_since.elapsed() < RECHECK_AFTER_IDLE || !taken.0.is_unusable() {
                return Some(taken);
            }
        }
    })?;
    pool.count_use(target, true);
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
                    waiters: Mutex::new(VecDeque::new()),
                    in_use: Mutex::new(HashMap::new()),
                })
            })
            .clone()
    }

    /// A connection to `target` on `cluster`: an idle one (the one `rank` ranks highest: see
    /// the session's preference), a new one within the budget,
    /// or one freed by closing an idle connection of another database, waiting at most the
    /// checkout timeout.
    pub async fn checkout(
        &self,
        cluster: &str,
        target: &Target,
        rank: impl Fn(&ServerConn) -> u8,
    ) -> Result<Leased, GatewayError> {
        let pool = self.cluster(cluster);
        // Most checkouts find an idle connection: no need to queue as a waiter for that.
        if let Some(leased) = take_idle(&pool, target, &rank) {
            return Ok(leased);
        }
        let deadline = tokio::time::Instant::now() + self.settings.checkout_timeout;
        let queued = Queued::join(&pool, target);
        let permit = loop {
            // Looking again from here: a wake-up from now on is kept for the wait below.
            queued.waiter.woken.store(false, Ordering::Relaxed);
            if let Some(leased) = take_idle(&pool, target, &rank) {
                return Ok(leased);
            }
            if let Ok(p) = pool.permits.clone().try_acquire_owned() {
                break p;
            }
            // Make room by closing another database's idle connection. When this database
            // has connections in use that will come back soon, only one idle a while
            // ([`SETTLED_IDLE`]) and otherwise wait for one of its own, up to FAIR_WAIT:
            // closing every momentarily idle connection under load would open one per
            // transaction.
            let starving = queued.waiter.since.elapsed() >= FAIR_WAIT;
            let own_coming_back = pool.in_use(target) > 0 && !starving;
            let min_idle = if own_coming_back {
                SETTLED_IDLE
            } else {
                Duration::ZERO
            };
            if pool.evict_for(target, starving, min_idle) {
                continue;
            }
            // A database tenant's checkout that left a pool database's connection to settle
            // looks again when it starves, woken or not.
            let wait = if own_coming_back || (target.single_tenant && !starving) {
                deadline.min(tokio::time::Instant::from_std(
                    queued.waiter.since + FAIR_WAIT,
                ))
            } else {
                deadline
            };
            if tokio::time::timeout_at(wait, queued.waiter.notify.notified())
                .await
                .is_err()
            {
                if wait < deadline {
                    continue;
                }
                return Err(GatewayError::PoolTimeout);
            }
        };
        drop(queued);
        // Counted from now: checkouts of the same database wait for this one.
        pool.count_use(target, true);
        let conn = match ServerConn::connect(
            target,
            self.settings.min_server_version,
            self.settings.network_timeout,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                pool.count_use(target, false);
                drop(permit);
                pool.wake(None);
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

//! The client side: accept connections, run the startup and login exchange, then hand the
//! connection to a session. Bad protocol input closes that client only.

mod io;
mod scram;
mod startup;
pub(crate) use startup::Greeting;
mod tls;

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bulkhead_directory::Directory;
use tokio::net::TcpListener;

use crate::backend::{PoolSettings, Pools};
use crate::session::Session;
use crate::GatewayError;
pub use io::ClientIo;
pub use tls::load_acceptor;

/// Limits of the client side.
#[derive(Clone)]
pub struct GatewaySettings {
    /// Largest message accepted from a client.
    pub max_message: usize,
    /// Time allowed for startup and login.
    pub login_timeout: Duration,
    /// Backend pools.
    pub pool: PoolSettings,
    /// TLS for clients, when a certificate is configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Refuse logins that did not negotiate TLS.
    pub tls_required: bool,
    /// Per-tenant limits by tier.
    pub limits: crate::limits::Limits,
    /// Where refusals, failed logins and limit hits are recorded (none: not recorded).
    pub audit: Option<bulkhead_audit::AuditWriter>,
    /// How often the usage counters are flushed to the control database.
    pub usage_flush: Duration,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            max_message: 16 * 1024 * 1024,
            login_timeout: Duration::from_secs(10),
            pool: PoolSettings::default(),
            tls: None,
            tls_required: false,
            limits: Default::default(),
            audit: None,
            usage_flush: Duration::from_secs(10),
        }
    }
}

/// What every client task shares.
pub struct GatewayState {
    /// The directory.
    pub directory: Directory,
    /// Backend pools.
    pub pools: Pools,
    /// Settings.
    pub settings: GatewaySettings,
    /// Live sessions' cancel keys.
    pub(crate) cancels: crate::cancel::CancelRegistry,
    /// Counters for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Usage per tenant, flushed to the control database (see [`bulkhead_metering`]).
    pub meters: Arc<bulkhead_metering::Meters>,
    /// What flushes them (periodically, and on demand).
    pub(crate) flusher: bulkhead_metering::flush::SharedFlusher,
    /// Routes, slugs and token settings read from the directory.
    pub(crate) cache: crate::cache::DirectoryCache,
    gateway_role: tokio::sync::OnceCell<String>,
    /// Every tenant's running transactions and rate.
    pub(crate) gates: crate::limits::Gates,
    /// Tenants being provisioned on their first token.
    pub(crate) jit: crate::jit::Flights,
    /// Directory changes (started by [`GatewayState::new`]).
    pub(crate) watch: Arc<crate::watch::DirectoryWatch>,
    next_pid: AtomicI32,
}

impl GatewayState {
    /// New shared state.
    pub fn new(directory: Directory, settings: GatewaySettings) -> Arc<Self> {
        let watch = Arc::new(crate::watch::DirectoryWatch::default());
        watch.spawn(directory.dsn().to_string());
        let meters: Arc<bulkhead_metering::Meters> = Default::default();
        let flusher = Arc::new(tokio::sync::Mutex::new(bulkhead_metering::Flusher::new(
            meters.clone(),
        )));
        Arc::new(Self {
            meters,
            flusher,
            watch,
            directory,
            pools: Pools::new(settings.pool.clone()),
            settings,
            cancels: Default::default(),
            metrics: Default::default(),
            cache: Default::default(),
            jit: Default::default(),
            gates: Default::default(),
            gateway_role: tokio::sync::OnceCell::new(),
            next_pid: AtomicI32::new(1),
        })
    }

    /// The gateway's login role (read from the directory once).
    pub(crate) async fn gateway_role(&self) -> Result<&str, GatewayError> {
        self.gateway_role
            .get_or_try_init(|| async { self.directory.gateway_role().await })
            .await
            .map(String::as_str)
            .map_err(GatewayError::from)
    }

    /// The route of a tenant in a service (cached; see [`crate::cache`]).
    pub(crate) async fn route(
        &self,
        service: &str,
        tenant: &bulkhead_model::TenantId,
    ) -> Result<Arc<crate::route::Route>, GatewayError> {
        let role = self.gateway_role().await?;
        let deadline = tokio::time::Instant::now() + HOLD_BOUND;
        loop {
            let changed = self.watch.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self
                .cache
                .route(&self.directory, &self.watch, service, tenant, role)
                .await
            {
                // A move's cutover: wait for the release (a directory change), re-checking
                // now and then in case a notification was missed.
                Err(GatewayError::Held(t)) => {
                    let now = tokio::time::Instant::now();
                    if now >= deadline {
                        return Err(GatewayError::HeldTooLong(t, HOLD_BOUND.as_secs()));
                    }
                    let nap = (deadline - now).min(std::time::Duration::from_millis(100));
                    let _ = tokio::time::timeout(nap, changed).await;
                }
                other => return other,
            }
        }
    }

    /// The catalog route of a service (cached; see [`crate::route`]).
    pub(crate) async fn catalog_route(
        &self,
        service: &str,
    ) -> Result<Arc<crate::route::Route>, GatewayError> {
        let role = self.gateway_role().await?;
        self.cache
            .catalog_route(&self.directory, &self.watch, service, role)
            .await
    }

    /// The metrics as Prometheus text.
    pub fn render_metrics(&self) -> String {
        let mut text = self.metrics.render(&self.pools.all_stats());
        crate::metrics::render_tenants(&mut text, &self.meters);
        text
    }

    /// The gateway's figures as JSON (what `/metrics` says, for people).
    pub fn health(&self) -> crate::metrics::Health {
        self.metrics.health(&self.pools.all_stats())
    }

    /// Flushes the usage counters now; returns how many usage events were newly counted.
    pub async fn flush_usage(&self) -> Result<u64, bulkhead_directory::DirectoryError> {
        self.flusher.lock().await.flush(&self.directory).await
    }

    /// Records `action` by the gateway about `tenant` (queued, never waits) when an audit log
    /// is configured; `details` is only made then.
    pub(crate) fn audit(
        &self,
        action: &str,
        tenant: Option<bulkhead_model::TenantId>,
        details: impl FnOnce() -> serde_json::Value,
    ) {
        if let Some(a) = &self.settings.audit {
            let mut event = bulkhead_audit::Event::new(action, "gateway").details(details());
            event.tenant = tenant;
            a.record(event);
        }
    }

    pub(crate) fn next_pid(&self) -> i32 {
        self.next_pid.fetch_add(1, Ordering::Relaxed)
    }
}

/// How long a tenant's new transaction waits for a move's cutover before it is refused.
pub const HOLD_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepts clients until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: Arc<GatewayState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let state = state.clone();
                    tokio::spawn(async move {
                        if let Err(e) = handle(stream, state).await {
                            if !matches!(e, GatewayError::ClientGone) {
                                tracing::info!(%peer, error = %e, kind = e.label(), "client connection ended");
                            }
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            }
        }
    }
}

/// A gateway running on a runtime of its own: see [`start`].
pub struct Running {
    /// Its shared state (for `/metrics`).
    pub state: Arc<GatewayState>,
    thread: std::thread::JoinHandle<()>,
}

impl Running {
    /// Waits until the gateway has stopped (after its stop signal).
    pub async fn stopped(self) {
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

/// Starts the gateway on a runtime of its own, with its own connections to the directory
/// at `directory_dsn`, serving `listener` until `stop` turns true. With `threads` = 1 the
/// runtime is single-threaded — one event loop, like PgBouncer's: no work stealing and no
/// wake-ups across threads on the hot path, which on a small machine costs more than a
/// second thread gains; more threads make it a work-stealing runtime of that many.
pub async fn start(
    directory_dsn: String,
    settings: GatewaySettings,
    listener: std::net::TcpListener,
    threads: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Running, GatewayError> {
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("bulkhead-gateway")
            .enable_all()
            .build()
    }
    .map_err(|e| GatewayError::Backend(format!("starting the gateway's runtime: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| GatewayError::Backend(format!("gateway listener: {e}")))?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("bulkhead-gateway".into())
        .spawn(move || {
            runtime.block_on(async move {
                let started = async {
                    let directory = Directory::connect(&directory_dsn).await?;
                    let listener = TcpListener::from_std(listener)
                        .map_err(|e| GatewayError::Backend(format!("gateway listener: {e}")))?;
                    Ok::<_, GatewayError>((GatewayState::new(directory, settings), listener))
                };
                match started.await {
                    Ok((state, listener)) => {
                        let _ = ready_tx.send(Ok(state.clone()));
                        let flusher = tokio::spawn(bulkhead_metering::flush::run(
                            state.directory.clone(),
                            state.flusher.clone(),
                            state.settings.usage_flush,
                            stop.clone(),
                        ));
                        serve(listener, state.clone(), async move {
                            let _ = stop.wait_for(|s| *s).await;
                        })
                        .await;
                        // A clean stop writes what was counted and queued.
                        let _ = flusher.await;
                        if let Some(audit) = &state.settings.audit {
                            audit.flush().await;
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })
        .map_err(|e| GatewayError::Backend(format!("starting the gateway's thread: {e}")))?;
    match ready_rx.await {
        Ok(Ok(state)) => Ok(Running { state, thread }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(GatewayError::Backend("the gateway's thread ended".into())),
    }
}

async fn handle(
    stream: tokio::net::TcpStream,
    state: Arc<GatewayState>,
) -> Result<(), GatewayError> {
    state.metrics.client_connected();
    let result = serve_client(stream, &state).await;
    state.metrics.client_disconnected();
    if let Err(e) = &result {
        state
            .metrics
            .count("bulkhead_gateway_errors_total", e.label());
    }
    result
}

async fn serve_client(
    stream: tokio::net::TcpStream,
    state: &Arc<GatewayState>,
) -> Result<(), GatewayError> {
    let peer = stream
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let mut io = ClientIo::new(stream, state.settings.max_message);
    let login =
        tokio::time::timeout(state.settings.login_timeout, startup::login(&mut io, state)).await;
    let logged_in = match login {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            if matches!(
                e,
                GatewayError::BadCredentials(_)
                    | GatewayError::NotAuthorized(_)
                    | GatewayError::UnknownService(_)
            ) {
                tracing::info!(%peer, kind = e.label(), error = %e, "login failed");
                state.audit(bulkhead_audit::action::LOGIN_FAILED, None, || {
                    serde_json::json!({ "kind": e.label(), "message": e.to_string(), "peer": peer })
                });
            }
            if !matches!(e, GatewayError::ClientGone) {
                io.error("FATAL", e.sqlstate(), &e.to_string());
                let _ = io.flush().await;
            }
            return Err(e);
        }
        Err(_) => {
            io.error(
                "FATAL",
                bulkhead_wire::SqlState::ProtocolViolation,
                "login timed out",
            );
            let _ = io.flush().await;
            return Err(GatewayError::ClientGone);
        }
    };
    tracing::debug!(identity = ?logged_in.identity, "client logged in");
    let (pid, secret) = (logged_in.greeting.pid, logged_in.greeting.secret);
    let slot = state.cancels.register(pid, secret);
    // Every line logged while serving the client carries its service and tenant (recorded
    // again when a service credential chooses another tenant).
    let span = tracing::info_span!(
        "session",
        service = %logged_in.service,
        tenant = tracing::field::Empty
    );
    if let crate::auth::Identity::Tenant(t) = &logged_in.identity {
        span.record("tenant", tracing::field::display(t));
    }
    let result = tracing::Instrument::instrument(
        Session::new(
            io,
            state.clone(),
            logged_in.service,
            logged_in.identity,
            slot,
            logged_in.settings,
        )
        .run(logged_in.greeting),
        span,
    )
    .await;
    state.cancels.remove(pid);
    result
}

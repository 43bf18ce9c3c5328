//! The HTTP admin API. Routes under `/v1/` speak JSON and need the instance's bearer token
//! (or the read-only console token, or a console session: see `auth`); `/health` and
//! `/version` are open so load balancers and humans can probe them; `/` serves the web
//! console (crate `bulkhead-console`).
//!
//! Invariant: every failure leaves as a JSON body `{"error": {"kind", "message"}}` with a
//! status code derived from the error's kind, never as a bare text or a panic.

mod auth;
mod error;
mod openapi;
mod routes;
mod session;

use std::sync::Arc;

use axum::Router;
use bulkhead_directory::Directory;

pub use error::ApiError;
pub use session::Role;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub(crate) directory: Directory,
    pub(crate) token: Arc<str>,
    /// The read-only console token (none: there is none).
    pub(crate) read_token: Option<Arc<str>>,
    /// Signed-in console browsers.
    pub(crate) sessions: Arc<session::Sessions>,
    /// Moves running in this process, with their live figures.
    pub(crate) live_moves: routes::LiveMoves,
    pub(crate) gateway: Option<Arc<bulkhead_gateway::GatewayState>>,
    /// Where the gateway listens (the probe attacks through it).
    pub(crate) gateway_addr: Option<std::net::SocketAddr>,
    /// Where the master key lives (`secrets/` of the data folder).
    pub(crate) secrets_dir: Option<std::path::PathBuf>,
    /// The audit log control-plane actions are recorded in (none: not recorded).
    pub(crate) audit: Option<bulkhead_audit::AuditLog>,
    /// Where backups taken on demand go (the scheduled backups' folder and policies).
    pub(crate) schedule: Option<Arc<bulkhead_pitr::schedule::Schedule>>,
    /// Prices per unit for `/v1/cost`.
    pub(crate) prices: bulkhead_metering::Prices,
}

impl ApiState {
    /// State for a server backed by `directory`, accepting `token` as bearer token.
    pub fn new(directory: Directory, token: &str) -> Self {
        Self {
            directory,
            token: Arc::from(token),
            read_token: None,
            sessions: Default::default(),
            live_moves: Default::default(),
            gateway: None,
            gateway_addr: None,
            secrets_dir: None,
            audit: None,
            prices: Default::default(),
            schedule: None,
        }
    }

    /// Also accepts `token` as a read-only credential: it sees everything an operator sees
    /// (GET) and changes nothing.
    pub fn with_read_token(mut self, token: &str) -> Self {
        self.read_token = Some(Arc::from(token));
        self
    }

    /// Records control-plane actions in `audit` (and serves `/v1/audit`).
    pub fn with_audit(mut self, audit: bulkhead_audit::AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Prices per unit for `/v1/cost` (a request's `prices` override them).
    pub fn with_prices(mut self, prices: bulkhead_metering::Prices) -> Self {
        self.prices = prices;
        self
    }

    /// Records `action` by the API about `tenant` (a failure to record is logged: the
    /// action is done already).
    pub(crate) async fn record(
        &self,
        action: &str,
        tenant: bulkhead_model::TenantId,
        details: serde_json::Value,
    ) {
        if let Some(a) = &self.audit {
            a.record_or_log(
                bulkhead_audit::Event::new(action, "api")
                    .tenant(tenant)
                    .details(details),
            )
            .await;
        }
    }

    /// Backups taken on demand (`POST /v1/tenants/{t}/backups`) go where the schedule's go.
    pub fn with_schedule(mut self, schedule: bulkhead_pitr::schedule::Schedule) -> Self {
        self.schedule = Some(Arc::new(schedule));
        self
    }

    /// The data folder's secrets, where the master key for backups is kept.
    pub fn with_secrets_dir(mut self, dir: std::path::PathBuf) -> Self {
        self.secrets_dir = Some(dir);
        self
    }

    /// Serves the gateway's metrics at `/metrics`.
    pub fn with_gateway(mut self, gateway: Arc<bulkhead_gateway::GatewayState>) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// Where the gateway listens, for the probe.
    pub fn with_gateway_addr(mut self, addr: std::net::SocketAddr) -> Self {
        self.gateway_addr = Some(addr);
        self
    }
}

/// The whole API as an axum router.
pub fn router(state: ApiState) -> Router {
    let v1 = routes::v1().route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::require_token,
    ));
    Router::new()
        .merge(routes::open())
        .merge(bulkhead_console::router())
        .nest("/v1", v1)
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn(request_span))
        .with_state(state)
}

/// Every line logged while serving a request carries its method and path (and so the
/// tenant named in it).
async fn request_span(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path());
    tracing::Instrument::instrument(next.run(req), span).await
}

/// The version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

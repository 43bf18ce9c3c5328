//! Gateway errors: each carries the SQLSTATE and the message the client sees, which never
//! names hosts, placements or other tenants; the internal cause goes to the log.

use bulkhead_wire::SqlState;

/// Why a client's connection or statement failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Wrong password, key or token signature (28P01).
    #[error("{0}")]
    BadCredentials(String),
    /// The identity is not acceptable: unknown or suspended tenant, no placement (28000).
    #[error("{0}")]
    NotAuthorized(String),
    /// The database name is not a service (3D000).
    #[error("service \"{0}\" does not exist")]
    UnknownService(String),
    /// Refused by the guard.
    #[error("{message}")]
    Refused {
        /// The SQLSTATE.
        code: SqlState,
        /// The message.
        message: String,
    },
    /// The pool is exhausted and the wait timed out (53300).
    #[error("all connections to the tenant's database are busy; try again")]
    PoolTimeout,
    /// The client broke the protocol (08P01).
    #[error("protocol violation: {0}")]
    Protocol(#[from] bulkhead_wire::ProtocolError),
    /// The backend failed or could not be reached (08006); details are logged, not shown.
    #[error("the tenant's database is not reachable right now")]
    Backend(String),
    /// The directory could not answer (57P03).
    #[error("the gateway cannot reach its directory right now")]
    Directory(String),
    /// A move's cutover holds the tenant (internal: the session waits, then retries).
    #[error("tenant {0} is held for a move's cutover")]
    Held(bulkhead_model::TenantId),
    /// The hold outlasted the bound (57014).
    #[error("tenant {0} is being moved and its cutover did not finish within {1} s; the transaction did not run, retry it")]
    HeldTooLong(bulkhead_model::TenantId, u64),
    /// Not supported yet (0A000).
    #[error("{0}")]
    Unsupported(String),
    /// The client went away.
    #[error("client disconnected")]
    ClientGone,
}

impl GatewayError {
    /// The SQLSTATE sent to the client.
    pub fn sqlstate(&self) -> SqlState {
        match self {
            GatewayError::BadCredentials(_) => SqlState::InvalidPassword,
            GatewayError::NotAuthorized(_) => SqlState::InvalidAuthorizationSpecification,
            GatewayError::UnknownService(_) => SqlState::InvalidCatalogName,
            GatewayError::Refused { code, .. } => *code,
            GatewayError::PoolTimeout => SqlState::TooManyConnections,
            GatewayError::Protocol(_) => SqlState::ProtocolViolation,
            GatewayError::Backend(_) => SqlState::ConnectionFailure,
            GatewayError::Directory(_) => SqlState::CannotConnectNow,
            GatewayError::Unsupported(_) => SqlState::FeatureNotSupported,
            GatewayError::Held(_) | GatewayError::HeldTooLong(..) => SqlState::QueryCanceled,
            GatewayError::ClientGone => SqlState::ConnectionFailure,
        }
    }

    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            GatewayError::BadCredentials(_) => "bad_credentials",
            GatewayError::NotAuthorized(_) => "not_authorized",
            GatewayError::UnknownService(_) => "unknown_service",
            GatewayError::Refused { .. } => "refused",
            GatewayError::PoolTimeout => "pool_timeout",
            GatewayError::Protocol(_) => "protocol",
            GatewayError::Backend(_) => "backend",
            GatewayError::Directory(_) => "directory",
            GatewayError::Unsupported(_) => "unsupported",
            GatewayError::Held(_) | GatewayError::HeldTooLong(..) => "held",
            GatewayError::ClientGone => "client_gone",
        }
    }
}

impl From<bulkhead_directory::DirectoryError> for GatewayError {
    fn from(e: bulkhead_directory::DirectoryError) -> Self {
        GatewayError::Directory(e.to_string())
    }
}

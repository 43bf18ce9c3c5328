//! The SQLSTATE codes Bulkhead sends, as a typed enum: never a string literal at call sites.

/// A SQLSTATE error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlState {
    /// 08P01: the client broke the protocol.
    ProtocolViolation,
    /// 08006: the backend connection failed.
    ConnectionFailure,
    /// 08001: no backend connection could be made.
    SqlclientUnableToEstablishSqlconnection,
    /// 28000: who you are is not acceptable (unknown or suspended tenant, bad token claims).
    InvalidAuthorizationSpecification,
    /// 28P01: wrong password, key or token signature.
    InvalidPassword,
    /// 3D000: no such database (service).
    InvalidCatalogName,
    /// 42501: refused by a tenant isolation rule.
    InsufficientPrivilege,
    /// 42601: the statement does not parse.
    SyntaxError,
    /// 0A000: not supported through the gateway.
    FeatureNotSupported,
    /// 22023: a parameter value is invalid.
    InvalidParameterValue,
    /// 25000: not allowed in the current transaction state.
    InvalidTransactionState,
    /// 25001: a transaction is already in progress (a warning).
    ActiveSqlTransaction,
    /// 25P01: no transaction is in progress (a warning).
    NoActiveSqlTransaction,
    /// 25P02: the transaction is aborted.
    InFailedSqlTransaction,
    /// 53300: a limit was reached (pool, tenant concurrency).
    TooManyConnections,
    /// 53400: a configured limit was exceeded.
    ConfigurationLimitExceeded,
    /// 57014: canceled or timed out.
    QueryCanceled,
    /// 57P01: the gateway is shutting down.
    AdminShutdown,
    /// 57P03: the target cannot take connections right now.
    CannotConnectNow,
    /// 42P05: a prepared statement of that name exists.
    DuplicatePreparedStatement,
    /// 26000: no prepared statement of that name.
    InvalidSqlStatementName,
    /// XX000: an internal error.
    InternalError,
}

impl SqlState {
    /// The five-character code.
    pub fn code(&self) -> &'static str {
        match self {
            SqlState::ProtocolViolation => "08P01",
            SqlState::ConnectionFailure => "08006",
            SqlState::SqlclientUnableToEstablishSqlconnection => "08001",
            SqlState::InvalidAuthorizationSpecification => "28000",
            SqlState::InvalidPassword => "28P01",
            SqlState::InvalidCatalogName => "3D000",
            SqlState::InsufficientPrivilege => "42501",
            SqlState::SyntaxError => "42601",
            SqlState::FeatureNotSupported => "0A000",
            SqlState::InvalidParameterValue => "22023",
            SqlState::ActiveSqlTransaction => "25001",
            SqlState::NoActiveSqlTransaction => "25P01",
            SqlState::InvalidTransactionState => "25000",
            SqlState::InFailedSqlTransaction => "25P02",
            SqlState::TooManyConnections => "53300",
            SqlState::ConfigurationLimitExceeded => "53400",
            SqlState::QueryCanceled => "57014",
            SqlState::AdminShutdown => "57P01",
            SqlState::CannotConnectNow => "57P03",
            SqlState::DuplicatePreparedStatement => "42P05",
            SqlState::InvalidSqlStatementName => "26000",
            SqlState::InternalError => "XX000",
        }
    }
}

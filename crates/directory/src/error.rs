//! Errors of the directory layer.

use bulkhead_model::ModelError;

/// What kind of failure, for HTTP status codes, exit codes and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller sent something invalid.
    Invalid,
    /// The named thing does not exist.
    NotFound,
    /// It exists already, or is still in use.
    Conflict,
    /// A PostgreSQL server we were asked to use cannot be used.
    Unsuitable,
    /// The control database failed or is unreachable.
    Internal,
}

impl ErrorKind {
    /// A short label for metrics and JSON error bodies.
    pub fn label(&self) -> &'static str {
        match self {
            ErrorKind::Invalid => "invalid",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unsuitable => "unsuitable",
            ErrorKind::Internal => "internal",
        }
    }
}

/// Why a directory operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// A name, id or word failed validation.
    #[error(transparent)]
    Invalid(#[from] ModelError),
    /// A connection string that does not parse.
    #[error("invalid DSN for cluster `{cluster}`: {reason}")]
    InvalidDsn {
        /// The cluster being added.
        cluster: String,
        /// What the parser said.
        reason: String,
    },
    /// Some other invalid input, described.
    #[error("{0}")]
    InvalidInput(String),
    /// No such thing.
    #[error("{kind} `{name}` not found")]
    NotFound {
        /// "cluster", "service", "tenant".
        kind: &'static str,
        /// What was asked for.
        name: String,
    },
    /// It exists already.
    #[error("{kind} `{name}` already exists")]
    AlreadyExists {
        /// "cluster", "service", "tenant".
        kind: &'static str,
        /// The duplicate.
        name: String,
    },
    /// It is still referenced and cannot be removed.
    #[error("{kind} `{name}` is still in use: {detail}")]
    InUse {
        /// "cluster", "service".
        kind: &'static str,
        /// Its name.
        name: String,
        /// What still uses it and what to do.
        detail: String,
    },
    /// A registered migration file was changed.
    #[error(
        "migration V{version}__{name} of service `{service}` was changed after it was registered; \
         applied migrations never change: put the change in a new migration file"
    )]
    MigrationChanged {
        /// The service.
        service: String,
        /// The version.
        version: i64,
        /// Its name.
        name: String,
    },
    /// The cluster's DSN does not answer.
    #[error("cluster `{cluster}` does not answer: {reason}")]
    Unreachable {
        /// The cluster being added.
        cluster: String,
        /// The connection error.
        reason: String,
    },
    /// The cluster answers but cannot host tenants.
    #[error("cluster `{cluster}` cannot be used: {reason}")]
    Unsuitable {
        /// The cluster being added.
        cluster: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The control database holds a directory newer than this binary understands.
    #[error("the control database's directory schema is at version {found}, newer than this Bulkhead knows ({known}); upgrade Bulkhead")]
    SchemaTooNew {
        /// Version found.
        found: i32,
        /// Newest version this build knows.
        known: i32,
    },
    /// An applied directory migration differs from the one shipped in this binary.
    #[error("directory migration V{version} was changed after it was applied (checksum {found} in the database, {expected} in this build)")]
    SchemaChecksum {
        /// The migration version.
        version: i32,
        /// The checksum recorded in the database.
        found: String,
        /// The checksum of this build's file.
        expected: String,
    },
    /// A row in the directory does not decode: someone edited it by hand.
    #[error("directory row is corrupt: {0}")]
    Corrupt(String),
    /// The control database refused or failed a statement.
    #[error("control database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    /// No connection to the control database could be had.
    #[error("control database unavailable: {0}")]
    Pool(String),
}

impl DirectoryError {
    /// The kind, for status codes and metrics.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DirectoryError::Invalid(_)
            | DirectoryError::InvalidDsn { .. }
            | DirectoryError::InvalidInput(_) => ErrorKind::Invalid,
            DirectoryError::NotFound { .. } => ErrorKind::NotFound,
            DirectoryError::AlreadyExists { .. }
            | DirectoryError::InUse { .. }
            | DirectoryError::MigrationChanged { .. } => ErrorKind::Conflict,
            DirectoryError::Unreachable { .. } | DirectoryError::Unsuitable { .. } => {
                ErrorKind::Unsuitable
            }
            DirectoryError::SchemaTooNew { .. }
            | DirectoryError::SchemaChecksum { .. }
            | DirectoryError::Corrupt(_)
            | DirectoryError::Database(_)
            | DirectoryError::Pool(_) => ErrorKind::Internal,
        }
    }

    /// A placement that should exist does not.
    pub fn not_found_placement(tenant: &impl ToString) -> Self {
        Self::not_found("placement", tenant.to_string())
    }

    pub(crate) fn not_found(kind: &'static str, name: impl ToString) -> Self {
        DirectoryError::NotFound {
            kind,
            name: name.to_string(),
        }
    }
}

impl From<deadpool_postgres::PoolError> for DirectoryError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        DirectoryError::Pool(e.to_string())
    }
}

/// True when `e` is a unique violation (SQLSTATE 23505).
pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// True when `e` is a foreign-key violation (SQLSTATE 23503).
pub(crate) fn is_fk_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
}

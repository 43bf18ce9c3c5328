//! Errors of backups, restores and erasures.

use bulkhead_directory::{DirectoryError, ErrorKind};

/// Why a backup, restore or erasure failed. None of them changes anything when it fails.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The directory refused or failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// Provisioning (a clone's new tenant, an erasure's teardown) failed.
    #[error(transparent)]
    Provision(#[from] bulkhead_provisioner::ProvisionError),
    /// Reading the tenant's place failed.
    #[error(transparent)]
    Place(#[from] bulkhead_mover::MoveError),
    /// A statement on a cluster failed.
    #[error("{context}: {message}")]
    Sql {
        /// What we were doing.
        context: String,
        /// PostgreSQL's message.
        message: String,
    },
    /// The archive is damaged, truncated or was altered.
    #[error("the archive is damaged or was altered: {0}; nothing was changed")]
    Corrupt(String),
    /// The archive cannot be opened with the keys at hand.
    #[error("{0}; nothing was changed")]
    Key(String),
    /// The master key is malformed or its file unreadable.
    #[error(transparent)]
    MasterKey(#[from] bulkhead_keys::KeyError),
    /// The request does not fit (another tenant's backup, a newer version, no placement).
    #[error("{0}")]
    Refused(String),
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl BackupError {
    /// The kind, for status codes and exit codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BackupError::Directory(e) => e.kind(),
            BackupError::Provision(e) => e.kind(),
            BackupError::Place(e) => e.kind(),
            BackupError::Corrupt(_) | BackupError::Refused(_) => ErrorKind::Invalid,
            BackupError::Key(_) => ErrorKind::Unsuitable,
            BackupError::Sql { .. } | BackupError::Io { .. } | BackupError::MasterKey(_) => {
                ErrorKind::Internal
            }
        }
    }

    /// Wraps a PostgreSQL error with what we were doing.
    pub fn sql(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> BackupError {
        let context = context.into();
        move |e| BackupError::Sql {
            context,
            message: bulkhead_provisioner::describe(&e),
        }
    }

    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
        let context = context.into();
        move |source| BackupError::Io { context, source }
    }
}

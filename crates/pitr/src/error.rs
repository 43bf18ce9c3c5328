//! Errors of point-in-time recovery. A rewind that fails changes nothing in the tenant's
//! place (the final restore is one transaction) and leaves no side instance running.

use bulkhead_directory::{DirectoryError, ErrorKind};

/// Why archiving, a status or a rewind failed.
#[derive(Debug, thiserror::Error)]
pub enum PitrError {
    /// The directory refused or failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// Extracting or restoring the tenant failed.
    #[error(transparent)]
    Backup(#[from] bulkhead_backup::BackupError),
    /// Reading a place failed.
    #[error(transparent)]
    Place(#[from] bulkhead_mover::MoveError),
    /// Starting or stopping a PostgreSQL server failed.
    #[error(transparent)]
    Server(#[from] bulkhead_pgkit::PgKitError),
    /// The cluster has no continuous archiving.
    #[error("cluster {0} has no point-in-time recovery: turn WAL archiving on for it (`bulkhead pitr enable {0}`, or `bulkhead up` for the embedded cluster)")]
    NotEnabled(String),
    /// The requested time is outside what can be recovered.
    #[error("{0}; nothing was changed")]
    OutOfWindow(String),
    /// The request does not fit.
    #[error("{0}")]
    Refused(String),
    /// pgBackRest failed.
    #[error("pgbackrest {command} failed: {output}")]
    Tool {
        /// The command (`backup`, `restore`, ...).
        command: String,
        /// What it printed.
        output: String,
    },
    /// A statement failed.
    #[error("{context}: {message}")]
    Sql {
        /// What we were doing.
        context: String,
        /// PostgreSQL's message.
        message: String,
    },
    /// A file or process could not be handled.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl PitrError {
    /// The kind, for status codes and exit codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PitrError::Directory(e) => e.kind(),
            PitrError::Backup(e) => e.kind(),
            PitrError::Place(e) => e.kind(),
            PitrError::NotEnabled(_) => ErrorKind::Unsuitable,
            PitrError::OutOfWindow(_) | PitrError::Refused(_) => ErrorKind::Invalid,
            PitrError::Server(_)
            | PitrError::Tool { .. }
            | PitrError::Sql { .. }
            | PitrError::Io { .. } => ErrorKind::Internal,
        }
    }

    /// Wraps a PostgreSQL error with what we were doing.
    pub fn sql(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> PitrError {
        let context = context.into();
        move |e| PitrError::Sql {
            context,
            message: bulkhead_provisioner::describe(&e),
        }
    }

    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PitrError {
        let context = context.into();
        move |source| PitrError::Io { context, source }
    }
}

impl From<bulkhead_provisioner::ProvisionError> for PitrError {
    fn from(e: bulkhead_provisioner::ProvisionError) -> Self {
        PitrError::Backup(e.into())
    }
}

//! Errors of moves.

use bulkhead_directory::{DirectoryError, ErrorKind};
use bulkhead_provisioner::ProvisionError;

/// Why a move was refused or stopped.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// The directory refused or failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// Provisioning or tearing down a place failed.
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    /// A statement on a cluster failed.
    #[error("{context}: {message}")]
    Sql {
        /// What we were doing.
        context: String,
        /// PostgreSQL's message (with SQLSTATE), or the connection error.
        message: String,
    },
    /// A pre-check refused the move before anything was copied.
    #[error("move refused: {0}")]
    Refused(String),
    /// The request does not make sense (no such move, nothing to roll back).
    #[error("{0}")]
    Invalid(String),
    /// The replication stream could not be decoded.
    #[error("replication stream: {0}")]
    Decode(String),
    /// Source and target differ after catching up.
    #[error("parity check failed, the move was aborted and the tenant stays where it was: {0}")]
    Parity(String),
    /// The mover stopped on purpose after a phase (crash tests).
    #[error("the mover stopped after phase {0} (as asked)")]
    Halted(&'static str),
}

impl MoveError {
    /// The kind, for status codes and exit codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            MoveError::Directory(e) => e.kind(),
            MoveError::Provision(e) => e.kind(),
            MoveError::Refused(_) => ErrorKind::Unsuitable,
            MoveError::Invalid(_) => ErrorKind::Invalid,
            MoveError::Sql { .. }
            | MoveError::Decode(_)
            | MoveError::Parity(_)
            | MoveError::Halted(_) => ErrorKind::Internal,
        }
    }

    /// Wraps a PostgreSQL error with what we were doing.
    pub fn sql(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> MoveError {
        let context = context.into();
        move |e| MoveError::Sql {
            context,
            message: bulkhead_provisioner::describe(&e),
        }
    }
}

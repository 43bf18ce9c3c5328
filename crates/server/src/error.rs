//! Errors of starting and running the server.

use std::path::PathBuf;

/// Why `bulkhead up` could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration file or an environment override is invalid.
    #[error("configuration {source_name}: {message}")]
    Config {
        /// The file, or the environment variable.
        source_name: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// Another instance runs on this data folder.
    #[error(
        "another Bulkhead (pid {pid}) is already running on {dir}; stop it first, or use another --data-dir"
    )]
    DataDirInUse {
        /// The other process.
        pid: String,
        /// The data folder.
        dir: PathBuf,
    },
    /// The embedded PostgreSQL could not be found, created or started.
    #[error(transparent)]
    Postgres(#[from] bulkhead_pgkit::PgKitError),
    /// The directory could not be reached or migrated.
    #[error(transparent)]
    Directory(#[from] bulkhead_directory::DirectoryError),
    /// A cluster could not be prepared.
    #[error(transparent)]
    Provision(#[from] bulkhead_provisioner::ProvisionError),
    /// The gateway could not start.
    #[error("cannot start the gateway: {0}")]
    Gateway(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file in the data folder could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

impl ServerError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
        let context = context.into();
        move |source| ServerError::Io { context, source }
    }
}

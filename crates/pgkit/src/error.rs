//! Errors of the PostgreSQL process kit; each says what to do about it.

use std::path::PathBuf;

/// Why a PostgreSQL server could not be found, created, started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum PgKitError {
    /// No `initdb`/`postgres` pair was found anywhere we looked.
    #[error(
        "no PostgreSQL server binaries found (looked in: {searched}). Install them \
         (Debian/Ubuntu: `apt-get install postgresql`) or set BULKHEAD_PG_BINDIR to the folder \
         holding `initdb` and `postgres`"
    )]
    BinariesNotFound {
        /// The folders that were searched, comma separated.
        searched: String,
    },
    /// We run as root and the unprivileged account does not exist.
    #[error(
        "running as root, but PostgreSQL refuses to run as root and the account `{0}` to run it \
         as does not exist; create it (`useradd --system {0}`) or set BULKHEAD_PG_USER"
    )]
    NoUnprivilegedUser(String),
    /// A folder on the path to the data folder cannot be entered by the PostgreSQL account.
    #[error(
        "the PostgreSQL account `{user}` cannot enter {path}; choose a data folder it can reach \
         (for example under /var/lib or /tmp) with --data-dir"
    )]
    NotReachable {
        /// The account PostgreSQL runs as.
        user: String,
        /// The folder it cannot traverse.
        path: PathBuf,
    },
    /// `initdb` failed.
    #[error("initdb failed in {dir}: {output}")]
    InitDb {
        /// The data folder.
        dir: PathBuf,
        /// What initdb printed.
        output: String,
    },
    /// The server exited or never became ready.
    #[error(
        "PostgreSQL did not start on port {port}: {reason}\n--- last lines of {log} ---\n{tail}"
    )]
    Start {
        /// The port it was asked to listen on.
        port: u16,
        /// What went wrong.
        reason: String,
        /// The server's log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// Another postmaster already runs on this data folder.
    #[error("a PostgreSQL server (pid {pid}) is already running on {dir}")]
    AlreadyRunning {
        /// Its process id.
        pid: i32,
        /// The data folder.
        dir: PathBuf,
    },
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A SQL statement against the throwaway cluster failed.
    #[error("{context}: {source}")]
    Sql {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: tokio_postgres::Error,
    },
}

impl PgKitError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PgKitError {
        let context = context.into();
        move |source| PgKitError::Io { context, source }
    }
}

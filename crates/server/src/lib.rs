//! `bulkhead up`: reads the configuration, takes the data folder, starts the embedded
//! PostgreSQL (or uses the configured servers), migrates the directory, registers clusters,
//! serves the HTTP API, and stops all of it cleanly on Ctrl-C or SIGTERM.
//!
//! Invariant: one data folder serves one running instance; a second is refused before it
//! touches anything.

mod config;
mod datadir;
mod embedded;
mod error;
mod instance;
mod run;

pub use config::{ClusterConfig, Config};
pub use datadir::DataDir;
pub use error::ServerError;
pub use instance::Instance;
pub use run::{up, UpOptions};

//! `bulkhead up`: reads the configuration, takes the data folder, starts the embedded
//! PostgreSQL (or uses the configured servers), migrates the directory, registers clusters,
//! serves the HTTP API, and stops all of it cleanly on Ctrl-C or SIGTERM; and `bulkhead
//! gateway`, a gateway process of its own against the same directory.
//!
//! Invariant: one data folder serves one running instance; a second is refused before it
//! touches anything.

mod config;
mod datadir;
mod embedded;
mod error;
mod gateway_only;
mod instance;
mod run;

pub use config::{ClusterConfig, Config};
pub use datadir::DataDir;
pub use error::ServerError;
pub use gateway_only::{gateway, GatewayOptions};
pub use instance::Instance;
pub use run::{up, UpOptions};

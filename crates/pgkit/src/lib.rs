//! The PostgreSQL process kit: find the system's PostgreSQL binaries, create a data folder,
//! run a server in it as an unprivileged user, and stop it.
//!
//! Two users of this crate: [`ThrowawayCluster`] for tests (a temporary folder that disappears
//! with the server, even when a test panics or the test process is killed) and
//! [`Server`] for `bulkhead up`'s persistent embedded cluster.
//!
//! Invariant: every server this crate starts is stopped by whoever holds its [`Server`]
//! (on drop, at process exit for the per-binary shared cluster, or by a watchdog process
//! when the owner dies without unwinding).

mod binaries;
mod error;
mod identity;
mod server;
mod throwaway;

pub use binaries::PgBinaries;
pub use error::PgKitError;
pub use identity::RunAs;
pub use server::{
    free_port, postmaster_pid, process_running, random_password, stop_orphan, Durability, Server,
    ServerSpec,
};
pub use throwaway::{shared_cluster, TestDatabase, ThrowawayCluster};

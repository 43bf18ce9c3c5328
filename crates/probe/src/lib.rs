//! `bulkhead probe`: proof of isolation by attack. It creates a throwaway service and two
//! throwaway tenants in each mode, writes known rows as each, then attacks one from the other
//! through the gateway with every vector it knows (see `vectors/`), and reports for each
//! whether it was blocked. Its tenants and service are removed whatever happens.
//!
//! The probe attacks through tables of its own (`migrations/V1__probe.sql`), placed on the
//! cluster of the service named (or the default one): it proves the installation's
//! mechanics — the gateway, the roles, row-level security, schema and database isolation —
//! on that cluster. `bulkhead verify` is what checks a service's own schema.

mod client;
mod report;
mod setup;
mod vectors;

use std::net::SocketAddr;

use bulkhead_directory::{Directory, DirectoryError};
use bulkhead_model::ServiceName;
use bulkhead_provisioner::ProvisionError;

pub use report::{Outcome, ProbeReport, ProbeRow};

/// Why the probe could not run (a leak is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The directory failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// Creating or removing the throwaway tenants failed.
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    /// The gateway could not be reached with a throwaway tenant's own credentials.
    #[error("the gateway at {addr} does not serve the probe's tenants: {reason}")]
    Gateway {
        /// Where it was tried.
        addr: SocketAddr,
        /// Why it failed.
        reason: String,
    },
}

/// Runs every vector against throwaway tenants on the cluster of `service` (or the default
/// cluster), through the gateway at `gateway`; `progress` hears about each step.
pub async fn probe(
    dir: &Directory,
    gateway: SocketAddr,
    service: Option<&ServiceName>,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<ProbeReport, ProbeError> {
    let cluster = match service {
        Some(s) => Some(dir.service(s).await?.cluster),
        None => None,
    };
    progress("creating the throwaway service and tenants");
    let setup = setup::Setup::create(dir, gateway, cluster).await;
    let result = match &setup {
        Ok(s) => vectors::run_all(s, progress).await,
        Err(_) => Ok(ProbeReport::default()),
    };
    progress("removing the throwaway tenants and service");
    let cleaned = match &setup {
        Ok(s) => s.remove(dir).await,
        Err(_) => Ok(()),
    };
    let report = result?;
    setup?;
    cleaned?;
    Ok(report)
}

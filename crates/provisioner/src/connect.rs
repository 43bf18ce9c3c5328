//! Administrator connections to a database on a cluster, from the cluster's admin DSN.

use std::str::FromStr;
use std::time::Duration;

use bulkhead_directory::Cluster;
use tokio_postgres::{Client, NoTls};

use crate::ProvisionError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects as the cluster's administrator to `database`; the connection task runs on the
/// current runtime and ends when the client is dropped.
pub async fn admin_connect(cluster: &Cluster, database: &str) -> Result<Client, ProvisionError> {
    let context = || {
        format!(
            "connecting to database {database} on cluster {}",
            cluster.name
        )
    };
    let mut config =
        tokio_postgres::Config::from_str(&cluster.admin_dsn).map_err(|e| ProvisionError::Sql {
            context: context(),
            message: e.to_string(),
        })?;
    config
        .dbname(database)
        .connect_timeout(CONNECT_TIMEOUT)
        .application_name("bulkhead-provisioner");
    let (client, conn) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls))
        .await
        .map_err(|_| ProvisionError::Sql {
            context: context(),
            message: format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
        })?
        .map_err(ProvisionError::sql(context()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "provisioner connection ended");
        }
    });
    Ok(client)
}

//! Service registration with its physical side: creating a service migrates its pool
//! database on the home cluster (so a broken migration set is refused at once), and
//! removing one drops its databases and roles everywhere.

use bulkhead_directory::{Directory, NewService, Service, ServiceDatabaseKind};
use bulkhead_model::ServiceName;

use crate::migrate::plans_for;
use crate::service_db::{drop_service_databases, ensure_service_database};
use crate::ProvisionError;

/// Registers a service and migrates its pool database; undone entirely if that fails.
pub async fn create_service(dir: &Directory, new: &NewService) -> Result<Service, ProvisionError> {
    let service = dir.create_service(new).await?;
    let result = async {
        let plans = plans_for(dir, &service).await?;
        let home = dir.cluster(&service.cluster).await?;
        ensure_service_database(dir, &service, &home, ServiceDatabaseKind::Pool, &plans).await
    }
    .await;
    if let Err(e) = result {
        if let Err(cleanup) = remove_service(dir, &service.name).await {
            tracing::error!(service = %service.name, error = %cleanup, "undoing a failed service creation failed");
        }
        return Err(e);
    }
    Ok(dir.service(&service.name).await?)
}

/// Removes a service with no tenants: drops its databases and runtime group on every cluster.
pub async fn remove_service(dir: &Directory, name: &ServiceName) -> Result<(), ProvisionError> {
    let service = dir.service(name).await?;
    if service.placements > 0 {
        // The directory gives the precise message.
        dir.remove_service(name).await?;
    }
    let mut clusters: Vec<_> = dir
        .service_databases(name)
        .await?
        .into_iter()
        .map(|d| d.cluster)
        .collect();
    clusters.push(service.cluster.clone());
    clusters.sort();
    clusters.dedup();
    for cluster in clusters {
        let cluster = dir.cluster(&cluster).await?;
        drop_service_databases(dir, &service, &cluster).await?;
    }
    dir.remove_service(name).await?;
    Ok(())
}

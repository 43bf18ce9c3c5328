//! `bulkhead verify`: a policy-coverage report. For every place a service's tenants live —
//! its pool databases (shared tables and tenant schemas) and its tenant databases — it reads
//! the catalog and checks the facts isolation rests on, so anyone can see at any time that
//! the promise holds, and exactly where it does not.
//!
//! Each check counts what it looked at; a failure or warning names the object and what to
//! fix. Nothing here changes anything.

mod checks;
mod report;
mod tenants;

pub use report::{Check, Finding, Level, Report};

use bulkhead_directory::{Directory, DirectoryError, ServiceDatabaseKind};
use bulkhead_model::{Mode, ServiceName};
use bulkhead_provisioner::{admin_connect, ProvisionError};

/// Why the report could not be made (a failed check is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The directory failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// A cluster could not be reached.
    #[error(transparent)]
    Cluster(#[from] ProvisionError),
    /// A catalog query failed.
    #[error("reading the catalog of {target}: {source}")]
    Catalog {
        /// Which database.
        target: String,
        /// Why.
        #[source]
        source: tokio_postgres::Error,
    },
}

/// What the checks of one database need to know about the service.
pub(crate) struct Scope<'a> {
    /// `cluster/database`, for the report.
    pub target: String,
    /// The cluster's name.
    pub cluster: String,
    /// The database's name.
    pub database: String,
    /// Which tenant each object belongs to.
    pub known: &'a tenants::KnownTenants,
    /// The service's reference tables (allowed without `tenant_id`).
    pub reference_tables: &'a [String],
    /// The service's allow-listed SECURITY DEFINER functions (`schema.name`).
    pub allowed_definers: &'a [String],
    /// The gateway's login, the one role besides the owner that may read the context key.
    pub gateway: &'a str,
}

/// Verifies `service`, or every service.
pub async fn verify(dir: &Directory, service: Option<&ServiceName>) -> Result<Report, VerifyError> {
    let services = match service {
        Some(s) => vec![dir.service(s).await?],
        None => dir.list_services().await?,
    };
    let mut report = Report::default();
    let known = tenants::KnownTenants::load(dir).await?;
    let gateway = dir.gateway_role().await?;
    for svc in &services {
        let allowed = dir.allowed_definers(&svc.name).await?;
        for db in dir.service_databases(&svc.name).await? {
            let cluster = dir.cluster(&db.cluster).await?;
            let client = admin_connect(&cluster, &db.database).await?;
            let scope = Scope {
                target: format!("{}/{}", db.cluster, db.database),
                cluster: db.cluster.to_string(),
                database: db.database.clone(),
                known: &known,
                reference_tables: &svc.reference_tables,
                allowed_definers: &allowed,
                gateway: &gateway,
            };
            let run = match db.kind {
                ServiceDatabaseKind::Pool => {
                    checks::pool_database(&client, &scope, &mut report).await
                }
                ServiceDatabaseKind::Template => {
                    checks::tenant_database(&client, &scope, &mut report).await
                }
            };
            run.map_err(|source| VerifyError::Catalog {
                target: scope.target.clone(),
                source,
            })?;
            client.release();
        }
        for p in dir.placements_of_service(&svc.name).await? {
            if p.mode != Mode::Database {
                continue;
            }
            let cluster = dir.cluster(&p.cluster).await?;
            let client = admin_connect(&cluster, &p.database).await?;
            let scope = Scope {
                target: format!("{}/{}", p.cluster, p.database),
                cluster: p.cluster.to_string(),
                database: p.database.clone(),
                known: &known,
                reference_tables: &svc.reference_tables,
                allowed_definers: &allowed,
                gateway: &gateway,
            };
            checks::tenant_database(&client, &scope, &mut report)
                .await
                .map_err(|source| VerifyError::Catalog {
                    target: scope.target.clone(),
                    source,
                })?;
            client.release();
        }
        // Cluster-wide facts (roles, database ACLs) once per cluster of the service.
        let mut clusters: Vec<_> = dir
            .service_databases(&svc.name)
            .await?
            .into_iter()
            .map(|d| d.cluster)
            .collect();
        clusters.sort();
        clusters.dedup();
        for name in clusters {
            let cluster = dir.cluster(&name).await?;
            let client = admin_connect(&cluster, "postgres").await?;
            let run = async {
                checks::cluster(&client, &name.to_string(), &known, &mut report).await?;
                checks::cluster_names(&client, &name.to_string(), &known, &mut report).await
            };
            run.await.map_err(|source| VerifyError::Catalog {
                target: name.to_string(),
                source,
            })?;
            client.release();
        }
    }
    report.services = services.len();
    Ok(report)
}

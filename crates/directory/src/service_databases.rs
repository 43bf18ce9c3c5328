//! The databases a service owns on each cluster: its pool database (shared and schema
//! tenants) and its template (database tenants are copies of it).

use std::str::FromStr;

use bulkhead_model::{ClusterName, ServiceName};
use serde::Serialize;
use tokio_postgres::Row;

use crate::{Directory, DirectoryError};

/// Pool or template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceDatabaseKind {
    /// Holds shared tables and tenant schemas.
    Pool,
    /// Kept at the current migration version; database tenants are created from it.
    Template,
}

impl ServiceDatabaseKind {
    /// The word stored in the directory.
    pub fn as_str(&self) -> &'static str {
        match self {
            ServiceDatabaseKind::Pool => "pool",
            ServiceDatabaseKind::Template => "template",
        }
    }
}

/// A pool database or template of a service on one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceDatabase {
    /// The service.
    pub service: ServiceName,
    /// The cluster.
    pub cluster: ClusterName,
    /// Pool or template.
    pub kind: ServiceDatabaseKind,
    /// Its database name.
    pub database: String,
    /// Migration version applied.
    pub schema_version: i64,
    /// The last migration failure, if the last run failed.
    pub migration_error: Option<String>,
}

impl Directory {
    /// Every pool database and template of a service.
    pub async fn service_databases(
        &self,
        service: &ServiceName,
    ) -> Result<Vec<ServiceDatabase>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT service, cluster, kind, database_name, schema_version, migration_error
                   FROM directory.service_databases WHERE service = $1 ORDER BY kind, cluster",
                &[&service.as_str()],
            )
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Every service database on a cluster.
    pub async fn service_databases_on(
        &self,
        cluster: &ClusterName,
    ) -> Result<Vec<ServiceDatabase>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT service, cluster, kind, database_name, schema_version, migration_error
                   FROM directory.service_databases WHERE cluster = $1",
                &[&cluster.as_str()],
            )
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Records that a service database exists (idempotent).
    pub async fn record_service_database(
        &self,
        service: &ServiceName,
        cluster: &ClusterName,
        kind: ServiceDatabaseKind,
        database: &str,
    ) -> Result<(), DirectoryError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO directory.service_databases (service, cluster, kind, database_name)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (service, cluster, kind) DO NOTHING",
                &[
                    &service.as_str(),
                    &cluster.as_str(),
                    &kind.as_str(),
                    &database,
                ],
            )
            .await?;
        Ok(())
    }

    /// Records the outcome of migrating a service database.
    pub async fn set_service_database_version(
        &self,
        service: &ServiceName,
        cluster: &ClusterName,
        kind: ServiceDatabaseKind,
        version: i64,
        error: Option<&str>,
    ) -> Result<(), DirectoryError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE directory.service_databases SET schema_version = $4, migration_error = $5, updated_at = now()
                  WHERE service = $1 AND cluster = $2 AND kind = $3",
                &[&service.as_str(), &cluster.as_str(), &kind.as_str(), &version, &error],
            )
            .await?;
        Ok(())
    }

    /// Forgets a service database (after it was dropped).
    pub async fn forget_service_database(
        &self,
        service: &ServiceName,
        cluster: &ClusterName,
        kind: ServiceDatabaseKind,
    ) -> Result<(), DirectoryError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM directory.service_databases WHERE service = $1 AND cluster = $2 AND kind = $3",
                &[&service.as_str(), &cluster.as_str(), &kind.as_str()],
            )
            .await?;
        Ok(())
    }
}

fn from_row(row: &Row) -> Result<ServiceDatabase, DirectoryError> {
    let corrupt = |e: String| DirectoryError::Corrupt(format!("service_databases: {e}"));
    let kind = match row.get::<_, &str>("kind") {
        "pool" => ServiceDatabaseKind::Pool,
        "template" => ServiceDatabaseKind::Template,
        other => return Err(corrupt(format!("unknown kind `{other}`"))),
    };
    Ok(ServiceDatabase {
        service: ServiceName::from_str(row.get("service")).map_err(|e| corrupt(e.to_string()))?,
        cluster: ClusterName::from_str(row.get("cluster")).map_err(|e| corrupt(e.to_string()))?,
        kind,
        database: row.get("database_name"),
        schema_version: row.get("schema_version"),
        migration_error: row.get("migration_error"),
    })
}

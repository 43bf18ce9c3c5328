//! `migrate status`: the version of every target of a service as the directory records it,
//! and any drift from the newest migration.

use bulkhead_directory::Directory;
use bulkhead_model::{Mode, ServiceName};
use serde::Serialize;

use crate::ProvisionError;

/// One target's recorded state.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    /// How it is shown.
    pub target: String,
    /// `pool`, `template`, `schema`, `database` or `shared`.
    pub kind: String,
    /// Its cluster.
    pub cluster: String,
    /// Its version.
    pub version: i64,
    /// The service's newest version.
    pub latest: i64,
    /// `current`, `behind by N`, or `failed: ...`.
    pub state: String,
}

fn state(version: i64, latest: i64, error: Option<&str>) -> String {
    match error {
        Some(e) => format!("failed: {e}"),
        None if version >= latest => "current".into(),
        None => format!("behind by {}", latest - version),
    }
}

/// The recorded version of every target of `service`.
pub async fn migration_status(
    dir: &Directory,
    service: &ServiceName,
) -> Result<Vec<TargetStatus>, ProvisionError> {
    dir.service(service).await?;
    let latest = dir
        .migrations(service)
        .await?
        .last()
        .map(|m| m.version)
        .unwrap_or(0);
    let mut rows = Vec::new();
    let databases = dir.service_databases(service).await?;
    for d in &databases {
        rows.push(TargetStatus {
            target: format!("{} {}", d.kind.as_str(), d.database),
            kind: d.kind.as_str().into(),
            cluster: d.cluster.to_string(),
            version: d.schema_version,
            latest,
            state: state(d.schema_version, latest, d.migration_error.as_deref()),
        });
    }
    let slugs: std::collections::HashMap<_, _> = dir
        .list_tenants()
        .await?
        .into_iter()
        .map(|t| (t.id, t.slug))
        .collect();
    for p in dir.placements_of_service(service).await? {
        let slug = slugs
            .get(&p.tenant_id)
            .map(|s| s.to_string())
            .unwrap_or_else(|| p.tenant_id.to_string());
        let (version, error) = if p.mode == Mode::Shared {
            // Shared tenants live in the pool database and move with it.
            let pool = databases.iter().find(|d| {
                d.cluster == p.cluster && d.kind == bulkhead_directory::ServiceDatabaseKind::Pool
            });
            (pool.as_ref().map(|d| d.schema_version).unwrap_or(0), None)
        } else {
            (p.schema_version, p.migration_error.clone())
        };
        rows.push(TargetStatus {
            target: format!("tenant {slug} ({})", p.state),
            kind: p.mode.to_string(),
            cluster: p.cluster.to_string(),
            version,
            latest,
            state: state(version, latest, error.as_deref()),
        });
    }
    Ok(rows)
}

//! Placements: one row per (service, tenant) saying where that tenant's data lives.

use std::str::FromStr;

use bulkhead_model::{ClusterName, Mode, PlacementState, ServiceName, TenantId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;

use crate::{Directory, DirectoryError};

/// Where one tenant's data for one service lives.
#[derive(Debug, Clone, Serialize)]
pub struct Placement {
    /// The service.
    pub service: ServiceName,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its isolation mode.
    pub mode: Mode,
    /// The cluster holding the data.
    pub cluster: ClusterName,
    /// The database on that cluster.
    pub database: String,
    /// The tenant's schema (schema mode only).
    pub schema: Option<String>,
    /// The role the gateway switches to for this tenant.
    pub role: String,
    /// The service migration version applied to it.
    pub schema_version: i64,
    /// Lifecycle state.
    pub state: PlacementState,
    /// Bumped on every move; caches compare it.
    pub epoch: i64,
    /// Why it failed, when it did.
    pub reason: Option<String>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

pub(crate) const SELECT: &str =
    "SELECT service, tenant_id, mode, cluster, database_name, schema_name, role_name,
        schema_version, state, epoch, reason, updated_at FROM directory.placements";

impl Directory {
    /// Every placement of one tenant, by service.
    pub async fn placements_of(&self, tenant: &TenantId) -> Result<Vec<Placement>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("{SELECT} WHERE tenant_id = $1 ORDER BY service"),
                &[&tenant.as_uuid()],
            )
            .await?;
        rows.iter().map(placement_from_row).collect()
    }
}

pub(crate) fn placement_from_row(row: &Row) -> Result<Placement, DirectoryError> {
    let corrupt =
        |e: bulkhead_model::ModelError| DirectoryError::Corrupt(format!("placements: {e}"));
    Ok(Placement {
        service: ServiceName::from_str(row.get("service")).map_err(corrupt)?,
        tenant_id: TenantId::from(row.get::<_, uuid::Uuid>("tenant_id")),
        mode: Mode::from_str(row.get("mode")).map_err(corrupt)?,
        cluster: ClusterName::from_str(row.get("cluster")).map_err(corrupt)?,
        database: row.get("database_name"),
        schema: row.get("schema_name"),
        role: row.get("role_name"),
        schema_version: row.get("schema_version"),
        state: PlacementState::from_str(row.get("state")).map_err(corrupt)?,
        epoch: row.get("epoch"),
        reason: row.get("reason"),
        updated_at: row.get("updated_at"),
    })
}

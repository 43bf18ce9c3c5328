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
    /// The last migration failure at this placement, if the last run failed here.
    pub migration_error: Option<String>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

pub(crate) const SELECT: &str =
    "SELECT service, tenant_id, mode, cluster, database_name, schema_name, role_name,
        schema_version, state, epoch, reason, migration_error, updated_at FROM directory.placements";

impl Directory {
    /// Every placement of one tenant, by service.
    pub async fn placements_of(&self, tenant: &TenantId) -> Result<Vec<Placement>, DirectoryError> {
        self.select_placements("tenant_id = $1 ORDER BY service", &[&tenant.as_uuid()])
            .await
    }

    /// Placements matching `filter` (a WHERE clause over bound parameters).
    async fn select_placements(
        &self,
        filter: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Placement>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("{SELECT} WHERE {filter}"), params)
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
        migration_error: row.get("migration_error"),
        updated_at: row.get("updated_at"),
    })
}

/// A placement about to be provisioned.
#[derive(Debug, Clone)]
pub struct NewPlacement {
    /// The service.
    pub service: ServiceName,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its mode.
    pub mode: Mode,
    /// Its cluster.
    pub cluster: ClusterName,
    /// Its database.
    pub database: String,
    /// Its schema (schema mode).
    pub schema: Option<String>,
    /// Its runtime role.
    pub role: String,
}

impl Directory {
    /// One placement, if any.
    pub async fn placement(
        &self,
        service: &ServiceName,
        tenant: &TenantId,
    ) -> Result<Option<Placement>, DirectoryError> {
        let found = self
            .select_placements(
                "service = $1 AND tenant_id = $2",
                &[&service.as_str(), &tenant.as_uuid()],
            )
            .await?;
        Ok(found.into_iter().next())
    }

    /// Every placement on a cluster.
    pub async fn placements_on(
        &self,
        cluster: &ClusterName,
    ) -> Result<Vec<Placement>, DirectoryError> {
        self.select_placements("cluster = $1", &[&cluster.as_str()])
            .await
    }

    /// Every placement of a service.
    pub async fn placements_of_service(
        &self,
        service: &ServiceName,
    ) -> Result<Vec<Placement>, DirectoryError> {
        self.select_placements(
            "service = $1 ORDER BY mode, cluster, tenant_id",
            &[&service.as_str()],
        )
        .await
    }

    /// Claims a placement for provisioning: inserts it as `provisioning`, or takes over a
    /// `failed` one (a retry). Refused while one exists in any other state.
    pub async fn claim_placement(&self, p: &NewPlacement) -> Result<Placement, DirectoryError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "INSERT INTO directory.placements (service, tenant_id, mode, cluster, database_name, schema_name, role_name, state)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'provisioning')
                 ON CONFLICT (service, tenant_id) DO UPDATE
                    SET mode = EXCLUDED.mode, cluster = EXCLUDED.cluster, database_name = EXCLUDED.database_name,
                        schema_name = EXCLUDED.schema_name, role_name = EXCLUDED.role_name, state = 'provisioning',
                        reason = NULL, schema_version = 0, updated_at = now()
                  WHERE directory.placements.state = 'failed'
                 RETURNING service",
                &[
                    &p.service.as_str(),
                    &p.tenant_id.as_uuid(),
                    &p.mode.as_str(),
                    &p.cluster.as_str(),
                    &p.database,
                    &p.schema,
                    &p.role,
                ],
            )
            .await?;
        if row.is_none() {
            let existing = self.placement(&p.service, &p.tenant_id).await?;
            let state = existing
                .map(|e| e.state.to_string())
                .unwrap_or_else(|| "unknown".into());
            return Err(DirectoryError::AlreadyExists {
                kind: "placement",
                name: format!("{} in service {} (state {state})", p.tenant_id, p.service),
            });
        }
        self.placement(&p.service, &p.tenant_id)
            .await?
            .ok_or_else(|| DirectoryError::not_found("placement", p.tenant_id))
    }

    /// Marks a provisioned placement active at `version`.
    pub async fn activate_placement(
        &self,
        service: &ServiceName,
        tenant: &TenantId,
        version: i64,
    ) -> Result<(), DirectoryError> {
        self.update_placement(
            "SET state = 'active', schema_version = $3, reason = NULL, migration_error = NULL",
            service,
            tenant,
            &[&version],
        )
        .await
    }

    /// Marks a placement failed, with the reason.
    pub async fn fail_placement(
        &self,
        service: &ServiceName,
        tenant: &TenantId,
        reason: &str,
    ) -> Result<(), DirectoryError> {
        self.update_placement(
            "SET state = 'failed', reason = $3",
            service,
            tenant,
            &[&reason],
        )
        .await
    }

    /// Sets a placement's state.
    pub async fn set_placement_state(
        &self,
        service: &ServiceName,
        tenant: &TenantId,
        state: PlacementState,
    ) -> Result<(), DirectoryError> {
        self.update_placement("SET state = $3", service, tenant, &[&state.as_str()])
            .await
    }

    /// Records the outcome of migrating a placement.
    pub async fn set_placement_migration(
        &self,
        service: &ServiceName,
        tenant: &TenantId,
        version: i64,
        error: Option<&str>,
    ) -> Result<(), DirectoryError> {
        self.update_placement(
            "SET schema_version = $3, migration_error = $4",
            service,
            tenant,
            &[&version, &error],
        )
        .await
    }

    /// Records the outcomes of migrating many placements of one service in one statement.
    pub async fn set_placement_migrations(
        &self,
        service: &ServiceName,
        outcomes: &[(TenantId, i64, Option<String>)],
    ) -> Result<(), DirectoryError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let ids: Vec<uuid::Uuid> = outcomes.iter().map(|o| o.0.as_uuid()).collect();
        let versions: Vec<i64> = outcomes.iter().map(|o| o.1).collect();
        let errors: Vec<Option<String>> = outcomes.iter().map(|o| o.2.clone()).collect();
        let client = self.client().await?;
        client
            .execute(
                "UPDATE directory.placements p SET schema_version = u.version, migration_error = u.error, updated_at = now()
                   FROM unnest($2::uuid[], $3::bigint[], $4::text[]) AS u(tenant_id, version, error)
                  WHERE p.service = $1 AND p.tenant_id = u.tenant_id",
                &[&service.as_str(), &ids, &versions, &errors],
            )
            .await?;
        Ok(())
    }

    /// Points a placement at its objects' new names (after they were renamed on the
    /// cluster): epoch + 1, so every gateway resolves it again, and released from a hold.
    pub async fn rename_placement_objects(
        &self,
        service: &ServiceName,
        tenant: &TenantId,
        database: &str,
        schema: Option<&str>,
        role: &str,
    ) -> Result<(), DirectoryError> {
        self.update_placement(
            "SET database_name = $3, schema_name = $4, role_name = $5, epoch = epoch + 1, held_at = NULL",
            service,
            tenant,
            &[&database, &schema, &role],
        )
        .await
    }

    /// Removes a placement record (after its data was torn down).
    pub async fn remove_placement(
        &self,
        service: &ServiceName,
        tenant: &TenantId,
    ) -> Result<(), DirectoryError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM directory.placements WHERE service = $1 AND tenant_id = $2",
                &[&service.as_str(), &tenant.as_uuid()],
            )
            .await?;
        Ok(())
    }

    async fn update_placement(
        &self,
        set: &str,
        service: &ServiceName,
        tenant: &TenantId,
        extra: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(), DirectoryError> {
        let client = self.client().await?;
        let uuid = tenant.as_uuid();
        let svc = service.as_str();
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&svc, &uuid];
        params.extend_from_slice(extra);
        let sql = format!(
            "UPDATE directory.placements {set}, updated_at = now() WHERE service = $1 AND tenant_id = $2"
        );
        let n = client.execute(&sql, &params).await?;
        if n == 0 {
            return Err(DirectoryError::not_found(
                "placement",
                format!("{tenant} in service {service}"),
            ));
        }
        Ok(())
    }
}

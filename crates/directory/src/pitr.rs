//! Point-in-time recovery per cluster (where its pgBackRest stanza and configuration are) and
//! the scheduled logical backups of tenants (which were taken, where, until when kept).

use std::str::FromStr;

use bulkhead_model::{ClusterName, TenantId};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Directory, DirectoryError};

/// A cluster's continuous archiving, as registered.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterPitr {
    /// The cluster.
    pub cluster: ClusterName,
    /// pgBackRest's stanza.
    pub stanza: String,
    /// pgBackRest's configuration file.
    pub config_path: String,
    /// Where side instances are restored.
    pub work_dir: String,
    /// When archiving was turned on.
    pub enabled_at: DateTime<Utc>,
}

/// A scheduled backup of a tenant.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduledBackup {
    /// Its id.
    pub id: uuid::Uuid,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its service.
    pub service: String,
    /// The archive file.
    pub path: String,
    /// Its size.
    pub bytes: i64,
    /// Rows in it.
    pub rows: i64,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// When retention removes it.
    pub expires_at: DateTime<Utc>,
}

fn pitr_from_row(r: &tokio_postgres::Row) -> Result<ClusterPitr, DirectoryError> {
    Ok(ClusterPitr {
        cluster: ClusterName::from_str(r.get("cluster"))
            .map_err(|e| DirectoryError::Corrupt(format!("cluster_pitr: {e}")))?,
        stanza: r.get("stanza"),
        config_path: r.get("config_path"),
        work_dir: r.get("work_dir"),
        enabled_at: r.get("enabled_at"),
    })
}

fn backup_from_row(r: &tokio_postgres::Row) -> ScheduledBackup {
    ScheduledBackup {
        id: r.get("id"),
        tenant_id: TenantId::from(r.get::<_, uuid::Uuid>("tenant_id")),
        service: r.get("service"),
        path: r.get("path"),
        bytes: r.get("bytes"),
        rows: r.get("rows"),
        taken_at: r.get("taken_at"),
        expires_at: r.get("expires_at"),
    }
}

const BACKUP_COLUMNS: &str = "id, tenant_id, service, path, bytes, rows, taken_at, expires_at";

impl Directory {
    /// Registers (or updates) a cluster's continuous archiving.
    pub async fn set_cluster_pitr(
        &self,
        cluster: &ClusterName,
        stanza: &str,
        config_path: &str,
        work_dir: &str,
    ) -> Result<ClusterPitr, DirectoryError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO directory.cluster_pitr (cluster, stanza, config_path, work_dir)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (cluster) DO UPDATE
                    SET stanza = EXCLUDED.stanza, config_path = EXCLUDED.config_path,
                        work_dir = EXCLUDED.work_dir
                 RETURNING cluster, stanza, config_path, work_dir, enabled_at",
                &[&cluster.as_str(), &stanza, &config_path, &work_dir],
            )
            .await?;
        pitr_from_row(&row)
    }

    /// The cluster's continuous archiving, if it has any.
    pub async fn cluster_pitr(
        &self,
        cluster: &ClusterName,
    ) -> Result<Option<ClusterPitr>, DirectoryError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT cluster, stanza, config_path, work_dir, enabled_at
                   FROM directory.cluster_pitr WHERE cluster = $1",
                &[&cluster.as_str()],
            )
            .await?;
        row.as_ref().map(pitr_from_row).transpose()
    }

    /// Every cluster's continuous archiving.
    pub async fn list_cluster_pitr(&self) -> Result<Vec<ClusterPitr>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT cluster, stanza, config_path, work_dir, enabled_at
                   FROM directory.cluster_pitr ORDER BY cluster",
                &[],
            )
            .await?;
        rows.iter().map(pitr_from_row).collect()
    }

    /// Records a scheduled backup just written.
    pub async fn add_scheduled_backup(&self, b: &ScheduledBackup) -> Result<(), DirectoryError> {
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "INSERT INTO directory.scheduled_backups ({BACKUP_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ),
                &[
                    &b.id,
                    &b.tenant_id.as_uuid(),
                    &b.service,
                    &b.path,
                    &b.bytes,
                    &b.rows,
                    &b.taken_at,
                    &b.expires_at,
                ],
            )
            .await?;
        Ok(())
    }

    /// A tenant's scheduled backups, newest first.
    pub async fn scheduled_backups_of(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<ScheduledBackup>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {BACKUP_COLUMNS} FROM directory.scheduled_backups
                      WHERE tenant_id = $1 ORDER BY taken_at DESC"
                ),
                &[&tenant.as_uuid()],
            )
            .await?;
        Ok(rows.iter().map(backup_from_row).collect())
    }

    /// Scheduled backups whose retention ran out at `now`.
    pub async fn expired_scheduled_backups(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<ScheduledBackup>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {BACKUP_COLUMNS} FROM directory.scheduled_backups
                      WHERE expires_at <= $1 ORDER BY taken_at"
                ),
                &[&now],
            )
            .await?;
        Ok(rows.iter().map(backup_from_row).collect())
    }

    /// When the tenant's newest scheduled backup was taken, if ever.
    pub async fn last_scheduled_backup(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<DateTime<Utc>>, DirectoryError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT max(taken_at) FROM directory.scheduled_backups WHERE tenant_id = $1",
                &[&tenant.as_uuid()],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Forgets a scheduled backup (its file already removed).
    pub async fn remove_scheduled_backup(&self, id: uuid::Uuid) -> Result<(), DirectoryError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM directory.scheduled_backups WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(())
    }
}

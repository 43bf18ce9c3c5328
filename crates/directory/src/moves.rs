//! Moves of a tenant between modes and clusters: one row per move holding its phase, so a
//! mover that stopped anywhere resumes (or rolls back) from what the directory says; and the
//! hold flag on a placement that makes gateways wait with that tenant's new transactions.

use std::fmt;
use std::str::FromStr;

use bulkhead_model::{ClusterName, Mode, ServiceName, TenantId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;

use crate::{Directory, DirectoryError};

/// Where a move is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MovePhase {
    /// Recorded; pre-checks passed.
    Planned,
    /// The target place exists at the source's migration version.
    Provisioned,
    /// Publication and slot exist on the source; tables are being copied.
    Copying,
    /// Every table is copied; changes are being replayed.
    Copied,
    /// The tenant is held at the gateways and its source fenced.
    Cutover,
    /// The placement points at the target; the source is kept, fenced, until finalized.
    Switched,
    /// The source was removed.
    Finalized,
    /// Given up before the switch; the tenant stayed where it was.
    Aborted,
    /// Moved back by a rollback move.
    RolledBack,
}

impl MovePhase {
    /// The word stored in the directory.
    pub fn as_str(&self) -> &'static str {
        match self {
            MovePhase::Planned => "planned",
            MovePhase::Provisioned => "provisioned",
            MovePhase::Copying => "copying",
            MovePhase::Copied => "copied",
            MovePhase::Cutover => "cutover",
            MovePhase::Switched => "switched",
            MovePhase::Finalized => "finalized",
            MovePhase::Aborted => "aborted",
            MovePhase::RolledBack => "rolled_back",
        }
    }

    /// True while the move has not switched yet (a mover may resume it).
    pub fn is_open(&self) -> bool {
        *self < MovePhase::Switched
    }
}

impl fmt::Display for MovePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MovePhase {
    type Err = DirectoryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "planned" => MovePhase::Planned,
            "provisioned" => MovePhase::Provisioned,
            "copying" => MovePhase::Copying,
            "copied" => MovePhase::Copied,
            "cutover" => MovePhase::Cutover,
            "switched" => MovePhase::Switched,
            "finalized" => MovePhase::Finalized,
            "aborted" => MovePhase::Aborted,
            "rolled_back" => MovePhase::RolledBack,
            other => return Err(DirectoryError::Corrupt(format!("move phase `{other}`"))),
        })
    }
}

/// One move.
#[derive(Debug, Clone, Serialize)]
pub struct Move {
    /// Its id.
    pub id: uuid::Uuid,
    /// The service.
    pub service: ServiceName,
    /// The tenant (the same before and after).
    pub tenant_id: TenantId,
    /// Mode before.
    pub from_mode: Mode,
    /// Cluster before.
    pub from_cluster: ClusterName,
    /// Mode after.
    pub to_mode: Mode,
    /// Cluster after.
    pub to_cluster: ClusterName,
    /// The service migration version both places are at.
    pub version: i64,
    /// Where it is.
    pub phase: MovePhase,
    /// The logical replication slot on the source cluster.
    pub slot_name: String,
    /// The publication on the source database.
    pub publication: String,
    /// Where the slot started (changes from here on are replayed).
    pub start_lsn: Option<String>,
    /// Tables copied so far.
    pub tables_copied: Vec<String>,
    /// Rows copied so far.
    pub rows_copied: i64,
    /// The move this one rolls back.
    pub rollback_of: Option<uuid::Uuid>,
    /// Why it stopped, when it did.
    pub error: Option<String>,
    /// The parity check's result per table, once run.
    pub parity: Option<serde_json::Value>,
    /// How long the tenant was held at cutover, in milliseconds.
    pub pause_ms: Option<i64>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When the placement switched.
    pub switched_at: Option<DateTime<Utc>>,
    /// When it was finalized, aborted or rolled back.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A move about to start.
#[derive(Debug, Clone)]
pub struct NewMove {
    /// The service.
    pub service: ServiceName,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Mode before.
    pub from_mode: Mode,
    /// Cluster before.
    pub from_cluster: ClusterName,
    /// Mode after.
    pub to_mode: Mode,
    /// Cluster after.
    pub to_cluster: ClusterName,
    /// The migration version.
    pub version: i64,
    /// The move it rolls back.
    pub rollback_of: Option<uuid::Uuid>,
}

/// Where a placement points after a switch.
#[derive(Debug, Clone)]
pub struct PlaceRecord {
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

pub(crate) const SELECT: &str = "SELECT id, service, tenant_id, from_mode, from_cluster, to_mode, to_cluster, version, phase,
        slot_name, publication, start_lsn::text AS start_lsn, tables_copied, rows_copied, rollback_of, error,
        parity, pause_ms, created_at, updated_at, switched_at, finished_at FROM directory.moves";

pub(crate) fn move_from_row(r: &Row) -> Result<Move, DirectoryError> {
    let corrupt = |e: bulkhead_model::ModelError| DirectoryError::Corrupt(format!("moves: {e}"));
    Ok(Move {
        id: r.get("id"),
        service: ServiceName::from_str(r.get("service")).map_err(corrupt)?,
        tenant_id: TenantId::from(r.get::<_, uuid::Uuid>("tenant_id")),
        from_mode: Mode::from_str(r.get("from_mode")).map_err(corrupt)?,
        from_cluster: ClusterName::from_str(r.get("from_cluster")).map_err(corrupt)?,
        to_mode: Mode::from_str(r.get("to_mode")).map_err(corrupt)?,
        to_cluster: ClusterName::from_str(r.get("to_cluster")).map_err(corrupt)?,
        version: r.get("version"),
        phase: MovePhase::from_str(r.get("phase"))?,
        slot_name: r.get("slot_name"),
        publication: r.get("publication"),
        start_lsn: r.get("start_lsn"),
        tables_copied: r.get("tables_copied"),
        rows_copied: r.get("rows_copied"),
        rollback_of: r.get("rollback_of"),
        error: r.get("error"),
        parity: r.get("parity"),
        pause_ms: r.get("pause_ms"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        switched_at: r.get("switched_at"),
        finished_at: r.get("finished_at"),
    })
}

impl Directory {
    /// Records a new move as `planned`. Refused while another move of the tenant in the
    /// service is under way.
    pub async fn create_move(&self, m: &NewMove) -> Result<Move, DirectoryError> {
        let id = uuid::Uuid::new_v4();
        let tag = id.simple().to_string();
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO directory.moves (id, service, tenant_id, from_mode, from_cluster, to_mode, to_cluster,
                     version, phase, slot_name, publication, rollback_of)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'planned', $9, $9, $10)",
                &[
                    &id,
                    &m.service.as_str(),
                    &m.tenant_id.as_uuid(),
                    &m.from_mode.as_str(),
                    &m.from_cluster.as_str(),
                    &m.to_mode.as_str(),
                    &m.to_cluster.as_str(),
                    &m.version,
                    &format!("bh_mv_{tag}"),
                    &m.rollback_of,
                ],
            )
            .await;
        match inserted {
            Ok(_) => self.get_move(id).await,
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                Err(DirectoryError::AlreadyExists {
                    kind: "move",
                    name: format!("of tenant {} in service {}", m.tenant_id, m.service),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One move.
    pub async fn get_move(&self, id: uuid::Uuid) -> Result<Move, DirectoryError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("{SELECT} WHERE id = $1"), &[&id])
            .await?
            .ok_or_else(|| DirectoryError::not_found("move", id))?;
        move_from_row(&row)
    }

    /// The moves of a tenant in a service, newest first.
    pub async fn moves_of(
        &self,
        service: &ServiceName,
        tenant: &TenantId,
    ) -> Result<Vec<Move>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("{SELECT} WHERE service = $1 AND tenant_id = $2 ORDER BY created_at DESC"),
                &[&service.as_str(), &tenant.as_uuid()],
            )
            .await?;
        rows.iter().map(move_from_row).collect()
    }

    /// Every move not yet finished (under way, or switched and awaiting finalize).
    pub async fn unfinished_moves(&self) -> Result<Vec<Move>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("{SELECT} WHERE phase IN ('planned', 'provisioned', 'copying', 'copied', 'cutover', 'switched') ORDER BY created_at"),
                &[],
            )
            .await?;
        rows.iter().map(move_from_row).collect()
    }

    /// Sets a move's phase (and clears its error when it advances).
    pub async fn set_move_phase(
        &self,
        id: uuid::Uuid,
        phase: MovePhase,
        error: Option<&str>,
    ) -> Result<(), DirectoryError> {
        let finished = matches!(
            phase,
            MovePhase::Finalized | MovePhase::Aborted | MovePhase::RolledBack
        );
        self.update_move(
            "phase = $2, error = $3, finished_at = CASE WHEN $4 THEN now() ELSE finished_at END",
            id,
            &[&phase.as_str(), &error, &finished],
        )
        .await
    }

    /// Records a move's error without changing its phase.
    pub async fn set_move_error(&self, id: uuid::Uuid, error: &str) -> Result<(), DirectoryError> {
        self.update_move("error = $2", id, &[&error]).await
    }

    /// Records where the move's slot started.
    pub async fn set_move_start(&self, id: uuid::Uuid, lsn: &str) -> Result<(), DirectoryError> {
        self.update_move("start_lsn = $2::text::pg_lsn", id, &[&lsn])
            .await
    }

    /// Records a copied table and its rows.
    pub async fn add_copied_table(
        &self,
        id: uuid::Uuid,
        table: &str,
        rows: i64,
    ) -> Result<(), DirectoryError> {
        self.update_move(
            "tables_copied = array_append(array_remove(tables_copied, $2), $2), rows_copied = rows_copied + $3",
            id,
            &[&table, &rows],
        )
        .await
    }

    /// Records the migration version both sides are at now.
    pub async fn set_move_version(
        &self,
        id: uuid::Uuid,
        version: i64,
    ) -> Result<(), DirectoryError> {
        self.update_move("version = $2", id, &[&version]).await
    }

    /// Forgets the copied tables (a restart of the copy from scratch).
    pub async fn reset_copied_tables(&self, id: uuid::Uuid) -> Result<(), DirectoryError> {
        self.update_move("tables_copied = '{}', rows_copied = 0", id, &[])
            .await
    }

    /// Holds (or releases) a tenant's new transactions at every gateway.
    pub async fn hold_placement(
        &self,
        service: &ServiceName,
        tenant: &TenantId,
        hold: bool,
    ) -> Result<(), DirectoryError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE directory.placements SET held_at = CASE WHEN $3 THEN now() END, updated_at = now()
                  WHERE service = $1 AND tenant_id = $2",
                &[&service.as_str(), &tenant.as_uuid(), &hold],
            )
            .await?;
        Ok(())
    }

    /// The switch: in one transaction, the placement points at `to` (at the move's version,
    /// epoch + 1, released, active) and the move is `switched` with its parity and pause.
    pub async fn switch_move(
        &self,
        m: &Move,
        to: &PlaceRecord,
        parity: &serde_json::Value,
        pause_ms: i64,
    ) -> Result<(), DirectoryError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "UPDATE directory.placements SET mode = $3, cluster = $4, database_name = $5, schema_name = $6,
                        role_name = $7, schema_version = $8, epoch = epoch + 1, held_at = NULL, state = 'active',
                        updated_at = now()
                  WHERE service = $1 AND tenant_id = $2",
                &[
                    &m.service.as_str(),
                    &m.tenant_id.as_uuid(),
                    &to.mode.as_str(),
                    &to.cluster.as_str(),
                    &to.database,
                    &to.schema,
                    &to.role,
                    &m.version,
                ],
            )
            .await?;
        if n == 0 {
            return Err(DirectoryError::not_found_placement(&m.tenant_id));
        }
        tx.execute(
            "UPDATE directory.moves SET phase = 'switched', parity = $2, pause_ms = $3, error = NULL,
                    switched_at = now(), updated_at = now() WHERE id = $1",
            &[&m.id, parity, &pause_ms],
        )
        .await?;
        if let Some(original) = m.rollback_of {
            tx.execute(
                "UPDATE directory.moves SET phase = 'rolled_back', finished_at = now(), updated_at = now() WHERE id = $1",
                &[&original],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn update_move(
        &self,
        set: &str,
        id: uuid::Uuid,
        extra: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(), DirectoryError> {
        let client = self.client().await?;
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&id];
        params.extend_from_slice(extra);
        let n = client
            .execute(
                &format!("UPDATE directory.moves SET {set}, updated_at = now() WHERE id = $1"),
                &params,
            )
            .await?;
        if n == 0 {
            return Err(DirectoryError::not_found("move", id));
        }
        Ok(())
    }
}

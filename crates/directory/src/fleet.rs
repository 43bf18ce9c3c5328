//! Read models over the whole fleet for people looking at it (the console, `/v1/fleet`):
//! tenant counts per cluster and mode, a tenant search with server-side filters and
//! pagination, the fleet's recent moves, a tenant's API keys (ids only) and the outcomes of
//! `verify` and `probe` runs. Each is one query however many tenants there are.

use std::collections::BTreeMap;
use std::str::FromStr;

use bulkhead_model::{ClusterName, Mode, ServiceName, TenantId, TenantState, Tier};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::types::ToSql;

use crate::moves::{move_from_row, SELECT as MOVES};
use crate::tenants::{tenant_from_row, SELECT as TENANTS};
use crate::{Directory, DirectoryError, Move, Tenant};

/// How many tenants of each mode one cluster holds (placements not deleted).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterCounts {
    /// By mode: `shared`, `schema`, `database`.
    pub modes: BTreeMap<String, i64>,
    /// Every placement, whatever its mode.
    pub total: i64,
}

/// What a tenant search asks for; every filter is optional and they combine with AND.
#[derive(Debug, Clone, Default)]
pub struct TenantQuery {
    /// A part of the slug, or a whole id.
    pub text: Option<String>,
    /// Placed in this service.
    pub service: Option<ServiceName>,
    /// Placed in this mode.
    pub mode: Option<Mode>,
    /// Placed on this cluster.
    pub cluster: Option<ClusterName>,
    /// Of this tier.
    pub tier: Option<Tier>,
    /// Pinned to this region.
    pub region: Option<String>,
    /// Active or suspended.
    pub state: Option<TenantState>,
    /// At most this many (1–500).
    pub limit: i64,
    /// After skipping this many, by slug.
    pub offset: i64,
}

/// Where a tenant in a search result lives, in short.
#[derive(Debug, Clone, Serialize)]
pub struct PlaceSummary {
    /// The service.
    pub service: String,
    /// The mode.
    pub mode: String,
    /// The cluster.
    pub cluster: String,
    /// The placement's state.
    pub state: String,
    /// Its epoch (bumped by each move).
    pub epoch: i64,
}

/// One tenant of a search, with its placements.
#[derive(Debug, Clone, Serialize)]
pub struct TenantSummary {
    /// The tenant.
    #[serde(flatten)]
    pub tenant: Tenant,
    /// Its places, by service.
    pub placements: Vec<PlaceSummary>,
}

/// One page of a tenant search.
#[derive(Debug, Clone, Serialize)]
pub struct TenantPage {
    /// How many tenants match in all.
    pub total: i64,
    /// The page size asked for.
    pub limit: i64,
    /// How many were skipped.
    pub offset: i64,
    /// This page, by slug (with search text: exact and shortest matches first).
    pub tenants: Vec<TenantSummary>,
}

/// A move with its tenant's slug, for a fleet-wide list.
#[derive(Debug, Clone, Serialize)]
pub struct MoveSummary {
    /// The move.
    #[serde(flatten)]
    pub record: Move,
    /// The tenant's slug (none when the tenant was deleted since).
    pub slug: Option<String>,
}

/// An API key as an operator may see it: never its secret nor its hash.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// Its id (what `DELETE /v1/keys/{id}` takes).
    pub id: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The outcome of one `verify` or `probe` run.
#[derive(Debug, Clone, Serialize)]
pub struct ProofRun {
    /// The service checked (none: all).
    pub service: Option<String>,
    /// `verify` or `probe`.
    pub kind: String,
    /// When it ran.
    pub ran_at: DateTime<Utc>,
    /// True when nothing failed.
    pub passed: bool,
    /// One line: how many checks passed and failed.
    pub summary: String,
    /// The whole report.
    pub report: serde_json::Value,
}

/// How many `verify` or `probe` outcomes are kept per kind and service.
const PROOF_RUNS_KEPT: i64 = 20;

/// A tenant search's filter over `directory.tenants t`: $1 slug pattern, $2 id, $3 service,
/// $4 mode, $5 cluster, $6 tier, $7 region, $8 state (each NULL: any).
const TENANT_FILTER: &str = "($1::text IS NULL OR t.slug LIKE $1 OR t.id = $2)
    AND ($6::text IS NULL OR t.tier = $6)
    AND ($7::text IS NULL OR t.region = $7)
    AND ($8::text IS NULL OR t.state = $8)
    AND ($3::text IS NULL AND $4::text IS NULL AND $5::text IS NULL
         OR EXISTS (SELECT 1 FROM directory.placements p
                    WHERE p.tenant_id = t.id AND p.state <> 'deleted'
                      AND ($3::text IS NULL OR p.service = $3)
                      AND ($4::text IS NULL OR p.mode = $4)
                      AND ($5::text IS NULL OR p.cluster = $5)))";

impl Directory {
    /// Placements per cluster and mode (deleted ones not counted).
    pub async fn placement_counts(
        &self,
    ) -> Result<BTreeMap<String, ClusterCounts>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT cluster, mode, count(*) FROM directory.placements
                 WHERE state <> 'deleted' GROUP BY cluster, mode",
                &[],
            )
            .await?;
        let mut out: BTreeMap<String, ClusterCounts> = BTreeMap::new();
        for r in rows {
            let c = out.entry(r.get(0)).or_default();
            let n: i64 = r.get(2);
            c.modes.insert(r.get(1), n);
            c.total += n;
        }
        Ok(out)
    }

    /// How many tenants there are, by state.
    pub async fn tenant_counts(&self) -> Result<BTreeMap<String, i64>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT state, count(*) FROM directory.tenants GROUP BY state",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Tenants matching `q`, one page of them by slug, with the number matching in all.
    pub async fn search_tenants(&self, q: &TenantQuery) -> Result<TenantPage, DirectoryError> {
        let limit = q.limit.clamp(1, 500);
        let offset = q.offset.max(0);
        let text = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
        // A whole id matches by id; any text matches a part of the slug, literally.
        let id = text.and_then(|t| uuid::Uuid::from_str(t).ok());
        let pattern = text.map(|t| {
            let escaped = t
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        let service = q.service.as_ref().map(|s| s.as_str());
        let mode = q.mode.map(|m| m.as_str());
        let cluster = q.cluster.as_ref().map(|c| c.as_str());
        let tier = q.tier.as_ref().map(|t| t.to_string());
        let state = q.state.map(|s| s.to_string());
        let params: [&(dyn ToSql + Sync); 10] = [
            &pattern, &id, &service, &mode, &cluster, &tier, &q.region, &state, &limit, &offset,
        ];
        let client = self.client().await?;
        let rows = client
            .query(
                // With search text, the closest matches (the shortest slugs holding it, so an
                // exact slug) come first.
                &format!(
                    "{TENANTS} t WHERE {TENANT_FILTER}
                     ORDER BY CASE WHEN $1::text IS NULL THEN 0 ELSE length(t.slug) END, t.slug
                     LIMIT $9 OFFSET $10"
                ),
                &params,
            )
            .await?;
        // The same filter counted (its eight parameters, without the page's two).
        let total: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM directory.tenants t WHERE {TENANT_FILTER}"),
                &params[..8],
            )
            .await?
            .get(0);
        let tenants = rows
            .iter()
            .map(tenant_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<uuid::Uuid> = tenants.iter().map(|t| t.id.as_uuid()).collect();
        let places = client
            .query(
                "SELECT tenant_id, service, mode, cluster, state, epoch FROM directory.placements
                 WHERE tenant_id = ANY($1) AND state <> 'deleted' ORDER BY service",
                &[&ids],
            )
            .await?;
        let mut by_tenant: BTreeMap<uuid::Uuid, Vec<PlaceSummary>> = BTreeMap::new();
        for p in places {
            by_tenant.entry(p.get(0)).or_default().push(PlaceSummary {
                service: p.get(1),
                mode: p.get(2),
                cluster: p.get(3),
                state: p.get(4),
                epoch: p.get(5),
            });
        }
        Ok(TenantPage {
            total,
            limit,
            offset,
            tenants: tenants
                .into_iter()
                .map(|tenant| TenantSummary {
                    placements: by_tenant.remove(&tenant.id.as_uuid()).unwrap_or_default(),
                    tenant,
                })
                .collect(),
        })
    }

    /// The fleet's moves, newest first: every unfinished one, then finished ones up to
    /// `limit` in all.
    pub async fn recent_moves(&self, limit: i64) -> Result<Vec<MoveSummary>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT m.*, t.slug AS tenant_slug FROM ({MOVES}) m
                     LEFT JOIN directory.tenants t ON t.id = m.tenant_id
                     ORDER BY (m.phase IN ('planned', 'provisioned', 'copying', 'copied', 'cutover')) DESC,
                              m.created_at DESC
                     LIMIT $1"
                ),
                &[&limit.clamp(1, 500)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(MoveSummary {
                    record: move_from_row(r)?,
                    slug: r.get("tenant_slug"),
                })
            })
            .collect()
    }

    /// A tenant's API keys, newest first: ids and dates only.
    pub async fn keys_of(&self, tenant: &TenantId) -> Result<Vec<KeyInfo>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, created_at, revoked_at FROM directory.tenant_keys
                 WHERE tenant_id = $1 ORDER BY created_at DESC",
                &[&tenant.as_uuid()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| KeyInfo {
                id: r.get::<_, uuid::Uuid>(0).simple().to_string(),
                created_at: r.get(1),
                revoked_at: r.get(2),
            })
            .collect())
    }

    /// Records the outcome of a `verify` or `probe` run (keeping the newest
    /// [`PROOF_RUNS_KEPT`] of its kind and service).
    pub async fn record_proof_run(
        &self,
        service: Option<&ServiceName>,
        kind: &str,
        passed: bool,
        summary: &str,
        report: &serde_json::Value,
    ) -> Result<(), DirectoryError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO directory.proof_runs (service, kind, passed, summary, report)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &service.map(|s| s.as_str()),
                    &kind,
                    &passed,
                    &summary,
                    report,
                ],
            )
            .await?;
        // Only the latest are ever shown: the table keeps the newest few of each kind and
        // service, not a report per click forever.
        client
            .execute(
                "DELETE FROM directory.proof_runs r WHERE r.kind = $1 AND r.service IS NOT DISTINCT FROM $2
                   AND r.id NOT IN (SELECT id FROM directory.proof_runs
                                    WHERE kind = $1 AND service IS NOT DISTINCT FROM $2
                                    ORDER BY ran_at DESC, id DESC LIMIT $3)",
                &[&kind, &service.map(|s| s.as_str()), &PROOF_RUNS_KEPT],
            )
            .await?;
        Ok(())
    }

    /// The latest run of each kind for each service (and for "all services").
    pub async fn latest_proof_runs(&self) -> Result<Vec<ProofRun>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT ON (kind, service) service, kind, ran_at, passed, summary, report
                 FROM directory.proof_runs ORDER BY kind, service, ran_at DESC",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ProofRun {
                service: r.get(0),
                kind: r.get(1),
                ran_at: r.get(2),
                passed: r.get(3),
                summary: r.get(4),
                report: r.get(5),
            })
            .collect())
    }
}

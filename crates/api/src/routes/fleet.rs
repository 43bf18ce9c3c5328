//! `/v1/fleet` and `/v1/gateway`: the whole fleet at a glance, for people (the console's
//! first page). Tenants are counted in the directory (one query), never listed.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use bulkhead_directory::{ClusterCounts, Service};
use serde::Serialize;
use serde_json::{json, Value};

use crate::{ApiError, ApiState};

/// One cluster: where it is, how full, whether it answers.
#[derive(Serialize)]
pub(crate) struct ClusterView {
    name: String,
    region: String,
    server_version: String,
    /// The most placements it should hold (none: unbounded).
    capacity: Option<i32>,
    /// Placements per mode.
    tenants: ClusterCounts,
    /// Answered a connection just now.
    reachable: bool,
    /// Why not, when it did not.
    error: Option<String>,
}

/// The fleet.
#[derive(Serialize)]
pub(crate) struct Fleet {
    clusters: Vec<ClusterView>,
    services: Vec<Service>,
    /// How many tenants there are, by state.
    tenants: BTreeMap<String, i64>,
    /// The gateway's figures (none when this process runs no gateway).
    gateway: Option<bulkhead_gateway::metrics::Health>,
}

pub(crate) async fn fleet(State(s): State<ApiState>) -> Result<Json<Fleet>, ApiError> {
    let clusters = s.directory.list_clusters().await?;
    let mut counts = s.directory.placement_counts().await?;
    // Every cluster is asked at once; one that does not answer costs its timeout, once.
    let probes = probe_all(&clusters).await;
    let clusters = clusters
        .into_iter()
        .zip(probes)
        .map(|(c, reach)| ClusterView {
            tenants: counts.remove(c.name.as_str()).unwrap_or_default(),
            name: c.name.to_string(),
            region: c.region.to_string(),
            server_version: c.server_version,
            capacity: c.capacity,
            reachable: reach.is_ok(),
            error: reach.err(),
        })
        .collect();
    Ok(Json(Fleet {
        clusters,
        services: s.directory.list_services().await?,
        tenants: s.directory.tenant_counts().await?,
        gateway: s.gateway.as_ref().map(|g| g.health()),
    }))
}

/// Whether each cluster answers (and still suits Bulkhead), all asked at once.
async fn probe_all(clusters: &[bulkhead_directory::Cluster]) -> Vec<Result<(), String>> {
    let tasks: Vec<_> = clusters
        .iter()
        .map(|c| {
            let (name, dsn) = (c.name.to_string(), c.admin_dsn.clone());
            tokio::spawn(async move {
                bulkhead_directory::probe_cluster(&name, &dsn)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap_or_else(|e| Err(e.to_string())));
    }
    out
}

/// `GET /v1/gateway`: clients, pools, errors and refusals, and the limits per tier.
pub(crate) async fn gateway(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let g = s
        .gateway
        .as_ref()
        .ok_or_else(|| ApiError::Internal("this server runs no gateway".into()))?;
    let limits = &g.settings.limits;
    let tier = |l: &bulkhead_gateway::limits::TierLimits| {
        json!({
            "max_transactions": l.max_transactions,
            "transactions_per_second": l.transactions_per_second,
            "statement_timeout_ms": l.statement_timeout.map(|d| d.as_millis() as u64),
        })
    };
    let tiers: BTreeMap<&str, Value> = limits
        .tiers
        .iter()
        .map(|(name, l)| (name.as_str(), tier(l)))
        .collect();
    Ok(Json(json!({
        "health": g.health(),
        "limits": { "default": tier(&limits.default), "tiers": tiers },
    })))
}

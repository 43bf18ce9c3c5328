//! `/v1/pitr`: point-in-time recovery per cluster — the recoverable window and archive lag,
//! and a base backup on demand. Rewinds are `POST /v1/tenants/{tenant}/restore?at=`.

use axum::extract::{Path, Query, State};
use axum::Json;
use bulkhead_model::ClusterName;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{ApiError, ApiState};

#[derive(Deserialize)]
pub(crate) struct StatusQuery {
    /// One cluster (default: every cluster with archiving).
    #[serde(default)]
    cluster: Option<ClusterName>,
}

/// The archiving status of one or every cluster.
pub(crate) async fn status(
    State(s): State<ApiState>,
    Query(q): Query<StatusQuery>,
) -> Result<Json<Value>, ApiError> {
    let list = match &q.cluster {
        Some(c) => vec![bulkhead_pitr::status(&s.directory, c).await?],
        None => bulkhead_pitr::status_all(&s.directory).await?,
    };
    Ok(Json(serde_json::to_value(list).unwrap_or_default()))
}

#[derive(Deserialize)]
pub(crate) struct BackupQuery {
    /// A full backup (default: incremental on the newest).
    #[serde(default)]
    full: bool,
}

/// Takes a base backup of the cluster now.
pub(crate) async fn backup(
    State(s): State<ApiState>,
    Path(cluster): Path<ClusterName>,
    Query(q): Query<BackupQuery>,
) -> Result<Json<Value>, ApiError> {
    let pitr = s
        .directory
        .cluster_pitr(&cluster)
        .await?
        .ok_or_else(|| bulkhead_pitr::PitrError::NotEnabled(cluster.to_string()))?;
    let repo = bulkhead_pitr::repo::Repo::new(&pitr.stanza, pitr.config_path.into())?;
    repo.backup(q.full).await?;
    Ok(Json(json!({ "cluster": cluster, "full": q.full })))
}

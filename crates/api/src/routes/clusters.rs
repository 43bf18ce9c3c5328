//! `/v1/clusters`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bulkhead_directory::{Cluster, NewCluster};
use bulkhead_model::ClusterName;

use crate::{ApiError, ApiState};

pub(crate) async fn list(State(s): State<ApiState>) -> Result<Json<Vec<Cluster>>, ApiError> {
    Ok(Json(s.directory.list_clusters().await?))
}

pub(crate) async fn add(
    State(s): State<ApiState>,
    body: Result<Json<NewCluster>, JsonRejection>,
) -> Result<(StatusCode, Json<Cluster>), ApiError> {
    let Json(new) = body?;
    // Registered and prepared for the gateway (its login role and password there): a
    // cluster added while the server runs serves its tenants like one from the configuration.
    Ok((
        StatusCode::CREATED,
        Json(bulkhead_provisioner::add_cluster(&s.directory, &new).await?),
    ))
}

pub(crate) async fn show(
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Cluster>, ApiError> {
    let name: ClusterName = name.parse()?;
    Ok(Json(s.directory.cluster(&name).await?))
}

pub(crate) async fn remove(
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name: ClusterName = name.parse()?;
    s.directory.remove_cluster(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

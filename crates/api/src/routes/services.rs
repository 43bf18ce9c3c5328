//! `/v1/services`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bulkhead_directory::{NewService, Service};
use bulkhead_model::ServiceName;

use crate::{ApiError, ApiState};

pub(crate) async fn list(State(s): State<ApiState>) -> Result<Json<Vec<Service>>, ApiError> {
    Ok(Json(s.directory.list_services().await?))
}

pub(crate) async fn create(
    State(s): State<ApiState>,
    body: Result<Json<NewService>, JsonRejection>,
) -> Result<(StatusCode, Json<Service>), ApiError> {
    let Json(new) = body?;
    Ok((
        StatusCode::CREATED,
        Json(s.directory.create_service(&new).await?),
    ))
}

pub(crate) async fn show(
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Service>, ApiError> {
    let name: ServiceName = name.parse()?;
    Ok(Json(s.directory.service(&name).await?))
}

pub(crate) async fn remove(
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name: ServiceName = name.parse()?;
    s.directory.remove_service(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

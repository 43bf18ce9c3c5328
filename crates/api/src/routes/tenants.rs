//! `/v1/tenants`. A tenant in a path is named by id or slug.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bulkhead_directory::{NewTenant, Placement, Tenant, TenantRef};
use bulkhead_model::TenantState;
use serde::Serialize;

use crate::{ApiError, ApiState};

/// A tenant with the places its data lives.
#[derive(Serialize)]
pub(crate) struct TenantDetail {
    #[serde(flatten)]
    tenant: Tenant,
    placements: Vec<Placement>,
}

pub(crate) async fn list(State(s): State<ApiState>) -> Result<Json<Vec<Tenant>>, ApiError> {
    Ok(Json(s.directory.list_tenants().await?))
}

pub(crate) async fn create(
    State(s): State<ApiState>,
    body: Result<Json<NewTenant>, JsonRejection>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    let Json(new) = body?;
    Ok((
        StatusCode::CREATED,
        Json(s.directory.create_tenant(&new).await?),
    ))
}

pub(crate) async fn show(
    State(s): State<ApiState>,
    Path(which): Path<String>,
) -> Result<Json<TenantDetail>, ApiError> {
    let which: TenantRef = which.parse()?;
    let tenant = s.directory.tenant(&which).await?;
    let placements = s.directory.placements_of(&tenant.id).await?;
    Ok(Json(TenantDetail { tenant, placements }))
}

pub(crate) async fn suspend(
    State(s): State<ApiState>,
    Path(which): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    set_state(s, which, TenantState::Suspended).await
}

pub(crate) async fn resume(
    State(s): State<ApiState>,
    Path(which): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    set_state(s, which, TenantState::Active).await
}

async fn set_state(
    s: ApiState,
    which: String,
    state: TenantState,
) -> Result<Json<Tenant>, ApiError> {
    let which: TenantRef = which.parse()?;
    Ok(Json(s.directory.set_tenant_state(&which, state).await?))
}

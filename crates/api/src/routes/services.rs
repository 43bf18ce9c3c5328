//! `/v1/services`: registration (which migrates the pool database), removal (which drops the
//! service's databases), migration files, fan-out and status.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bulkhead_directory::{MigrationFile, NewService, RegisterReport, Service};
use bulkhead_model::ServiceName;
use bulkhead_provisioner::migrate::{
    migrate_service, migration_status, MigrateOptions, MigrateSummary, TargetStatus,
};
use serde::Deserialize;

use crate::{ApiError, ApiState};

pub(crate) async fn list(State(s): State<ApiState>) -> Result<Json<Vec<Service>>, ApiError> {
    Ok(Json(s.directory.list_services().await?))
}

pub(crate) async fn create(
    State(s): State<ApiState>,
    body: Result<Json<NewService>, JsonRejection>,
) -> Result<(StatusCode, Json<Service>), ApiError> {
    let Json(new) = body?;
    let service = bulkhead_provisioner::create_service(&s.directory, &new).await?;
    Ok((StatusCode::CREATED, Json(service)))
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
    bulkhead_provisioner::remove_service(&s.directory, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Registers new migration files (known ones must be unchanged).
pub(crate) async fn register(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    body: Result<Json<Vec<MigrationFile>>, JsonRejection>,
) -> Result<Json<RegisterReport>, ApiError> {
    let name: ServiceName = name.parse()?;
    let Json(files) = body?;
    s.directory.service(&name).await?;
    Ok(Json(s.directory.register_migrations(&name, &files).await?))
}

/// Options of a fan-out run.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MigrateRequest {
    #[serde(default)]
    concurrency: Option<usize>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    canary: Option<usize>,
}

/// Runs the fan-out and answers with its summary when it is done.
pub(crate) async fn migrate(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    body: Result<Json<MigrateRequest>, JsonRejection>,
) -> Result<Json<MigrateSummary>, ApiError> {
    let name: ServiceName = name.parse()?;
    let Json(req) = body?;
    let opts = MigrateOptions {
        concurrency: req.concurrency,
        dry_run: req.dry_run,
        canary: req.canary,
        ..Default::default()
    };
    Ok(Json(
        migrate_service(&s.directory, &name, &opts, &()).await?,
    ))
}

pub(crate) async fn status(
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<TargetStatus>>, ApiError> {
    let name: ServiceName = name.parse()?;
    Ok(Json(migration_status(&s.directory, &name).await?))
}

/// Sets how the service's tokens are checked (HS256 secret, issuer, audience, tenant claim).
pub(crate) async fn set_auth(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    body: Result<Json<bulkhead_directory::ServiceAuth>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let name: ServiceName = name.parse()?;
    let Json(auth) = body?;
    if auth.hs256_secret.as_ref().is_some_and(|s| s.len() < 32) {
        return Err(ApiError::Body(
            "hs256_secret must have at least 32 characters".into(),
        ));
    }
    s.directory.set_service_auth(&name, &auth).await?;
    Ok(StatusCode::NO_CONTENT)
}

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
    let summary = migrate_service(&s.directory, &name, &opts, &()).await?;
    if let Some(audit) = &s.audit {
        let events = bulkhead_audit::migration_events(
            "api",
            &summary.service,
            summary
                .targets
                .iter()
                .filter_map(|t| t.tenant.map(|id| (id, t.from, t.to, t.label.clone()))),
        );
        if let Err(e) = audit.record_all(events).await {
            tracing::error!(error = %e, "recording the migration's audit events failed");
        }
    }
    Ok(Json(summary))
}

pub(crate) async fn status(
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<TargetStatus>>, ApiError> {
    let name: ServiceName = name.parse()?;
    Ok(Json(migration_status(&s.directory, &name).await?))
}

/// `?problems=N`: how many targets that are not current the summary lists (default 100).
#[derive(serde::Deserialize)]
pub(crate) struct SummaryQuery {
    #[serde(default)]
    problems: Option<usize>,
}

/// `GET /v1/services/{name}/migrations/summary`: the status of every target in counts (per
/// version, current / behind / failed) and the first targets that are not current, failed
/// first; what the console shows, in a few KiB however many targets there are.
pub(crate) async fn summary(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    axum::extract::Query(q): axum::extract::Query<SummaryQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name: ServiceName = name.parse()?;
    let targets = migration_status(&s.directory, &name).await?;
    let latest = targets.iter().map(|t| t.latest).max().unwrap_or(0);
    let mut versions = std::collections::BTreeMap::<i64, usize>::new();
    for t in &targets {
        *versions.entry(t.version).or_default() += 1;
    }
    let failed: Vec<&TargetStatus> = targets
        .iter()
        .filter(|t| t.state.starts_with("failed"))
        .collect();
    let behind: Vec<&TargetStatus> = targets
        .iter()
        .filter(|t| t.state.starts_with("behind"))
        .collect();
    let problems: Vec<&&TargetStatus> = failed
        .iter()
        .chain(behind.iter())
        .take(q.problems.unwrap_or(100))
        .collect();
    Ok(Json(serde_json::json!({
        "service": name.to_string(),
        "latest": latest,
        "targets": targets.len(),
        "current": targets.len() - failed.len() - behind.len(),
        "behind": behind.len(),
        "failed": failed.len(),
        "versions": versions,
        "problems": problems,
    })))
}

/// Sets how the service's tokens are checked (HS256 secret, issuer, audience, tenant claim).
pub(crate) async fn set_auth(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    body: Result<Json<bulkhead_directory::ServiceAuth>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let name: ServiceName = name.parse()?;
    let Json(auth) = body?;
    bulkhead_gateway::auth::validate_service_auth(&auth).map_err(ApiError::Body)?;
    s.directory.set_service_auth(&name, &auth).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new service credential: shown once.
#[derive(serde::Serialize)]
pub(crate) struct NewCredential {
    service: String,
    username: String,
    password: String,
    created_at: chrono::DateTime<chrono::Utc>,
    may_ddl: bool,
}

/// The body of a credential request.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct CredentialRequest {
    /// The user name; `<service>_svc` when absent.
    #[serde(default)]
    username: Option<String>,
    /// The migration capability: DDL through the gateway.
    #[serde(default)]
    may_ddl: bool,
}

/// Creates a SCRAM-SHA-256 credential for service logins; the password is returned once.
pub(crate) async fn create_credential(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    body: Option<Json<CredentialRequest>>,
) -> Result<(StatusCode, Json<NewCredential>), ApiError> {
    use rand::distr::{Alphanumeric, SampleString};
    let name: ServiceName = name.parse()?;
    let request = body.map(|Json(b)| b).unwrap_or_default();
    let username = request.username.unwrap_or_else(|| format!("{name}_svc"));
    let password = Alphanumeric.sample_string(&mut rand::rng(), 32);
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    let created = s
        .directory
        .create_credential(&name, &username, &verifier, request.may_ddl)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewCredential {
            service: name.to_string(),
            username,
            password,
            created_at: created.created_at,
            may_ddl: created.may_ddl,
        }),
    ))
}

/// Allow-lists a SECURITY DEFINER function for `verify`; answers the list.
pub(crate) async fn allow_definer(
    State(s): State<ApiState>,
    Path((name, function)): Path<(String, String)>,
) -> Result<Json<Vec<String>>, ApiError> {
    let name: ServiceName = name.parse()?;
    Ok(Json(
        s.directory.allow_definer(&name, &function, true).await?,
    ))
}

/// Removes a function from the allow-list; answers the list.
pub(crate) async fn disallow_definer(
    State(s): State<ApiState>,
    Path((name, function)): Path<(String, String)>,
) -> Result<Json<Vec<String>>, ApiError> {
    let name: ServiceName = name.parse()?;
    Ok(Json(
        s.directory.allow_definer(&name, &function, false).await?,
    ))
}

/// Lists a service's credentials (never their secrets).
pub(crate) async fn list_credentials(
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<bulkhead_directory::ServiceCredential>>, ApiError> {
    let name: ServiceName = name.parse()?;
    Ok(Json(s.directory.list_credentials(&name).await?))
}

/// Revokes a credential; sessions logged in with it end at their next transaction.
pub(crate) async fn revoke_credential(
    State(s): State<ApiState>,
    Path((name, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let name: ServiceName = name.parse()?;
    s.directory.revoke_credential(&name, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

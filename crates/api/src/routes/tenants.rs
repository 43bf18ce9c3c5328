//! `/v1/tenants`. A tenant in a path is named by id or slug.

use axum::extract::rejection::JsonRejection;
use axum::extract::Query;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bulkhead_audit::action;
use bulkhead_directory::{Placement, Tenant, TenantRef};
use bulkhead_model::TenantState;
use bulkhead_provisioner::{CreateTenant, TenantCreated, TenantDeleted};
use serde::{Deserialize, Serialize};
use serde_json::json;

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

/// Creates a tenant; with `service`, provisions, migrates and health-checks its placement
/// before answering.
pub(crate) async fn create(
    State(s): State<ApiState>,
    body: Result<Json<CreateTenant>, JsonRejection>,
) -> Result<(StatusCode, Json<TenantCreated>), ApiError> {
    let Json(req) = body?;
    let created = bulkhead_provisioner::create_tenant(&s.directory, &req).await?;
    s.record(action::TENANT_CREATED, created.tenant.id, created.summary())
        .await;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Deserialize)]
pub(crate) struct Confirm {
    #[serde(default)]
    confirm: bool,
}

/// Deletes a tenant's data in every mode, its roles and its record. Needs `?confirm=true`.
pub(crate) async fn delete(
    State(s): State<ApiState>,
    Path(which): Path<String>,
    Query(confirm): Query<Confirm>,
) -> Result<Json<TenantDeleted>, ApiError> {
    let which: TenantRef = which.parse()?;
    if !confirm.confirm {
        return Err(ApiError::NeedsConfirmation(
            "deleting a tenant destroys its data; repeat with ?confirm=true (CLI: --confirm)",
        ));
    }
    let deleted = bulkhead_provisioner::delete_tenant(&s.directory, &which).await?;
    s.record(
        action::TENANT_DELETED,
        deleted.tenant.id,
        json!({ "slug": deleted.tenant.slug.to_string(), "places": deleted.removed.len() }),
    )
    .await;
    Ok(Json(deleted))
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
    let tenant = s.directory.set_tenant_state(&which, state).await?;
    let what = match state {
        TenantState::Suspended => action::TENANT_SUSPENDED,
        _ => action::TENANT_RESUMED,
    };
    s.record(what, tenant.id, json!({ "slug": tenant.slug.to_string() }))
        .await;
    Ok(Json(tenant))
}

/// The body of a rename.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rename {
    /// The new slug.
    slug: bulkhead_model::Slug,
}

/// Gives a tenant a new slug; its id, data, keys and tokens stay.
pub(crate) async fn rename(
    State(s): State<ApiState>,
    Path(which): Path<String>,
    body: Result<Json<Rename>, JsonRejection>,
) -> Result<Json<Tenant>, ApiError> {
    let Json(req) = body?;
    let which: TenantRef = which.parse()?;
    let before = s.directory.tenant(&which).await?;
    let tenant = s.directory.rename_tenant(&which, &req.slug).await?;
    s.record(
        action::TENANT_RENAMED,
        tenant.id,
        json!({ "from": before.slug.to_string(), "to": tenant.slug.to_string() }),
    )
    .await;
    Ok(Json(tenant))
}

/// Issues an API key for a tenant; the key is shown in this answer only.
pub(crate) async fn issue_key(
    State(s): State<ApiState>,
    Path(which): Path<String>,
) -> Result<(StatusCode, Json<bulkhead_directory::IssuedKey>), ApiError> {
    use rand::distr::{Alphanumeric, SampleString};
    let which: TenantRef = which.parse()?;
    let tenant = s.directory.tenant(&which).await?;
    let secret = Alphanumeric.sample_string(&mut rand::rng(), 40);
    let issued = s.directory.issue_key(&tenant.id, &secret).await?;
    // The key's id only: the secret never reaches the log.
    s.record(
        action::KEY_ISSUED,
        tenant.id,
        json!({ "key_id": issued.id }),
    )
    .await;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// Revokes an API key by id.
pub(crate) async fn revoke_key(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = s.directory.revoke_key(&id).await?;
    s.record(action::KEY_REVOKED, tenant, json!({ "key_id": id }))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/tenants/search`: filters and one page, searched in the directory.
#[derive(Deserialize)]
pub(crate) struct Search {
    /// A part of the slug, or a whole id.
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

/// An empty filter value is no filter (what a form's "any" sends).
fn filter<T: std::str::FromStr<Err = bulkhead_model::ModelError>>(
    v: &Option<String>,
) -> Result<Option<T>, ApiError> {
    Ok(v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::parse)
        .transpose()?)
}

pub(crate) async fn search(
    State(s): State<ApiState>,
    Query(q): Query<Search>,
) -> Result<Json<bulkhead_directory::TenantPage>, ApiError> {
    let query = bulkhead_directory::TenantQuery {
        text: q.q.clone(),
        service: filter(&q.service)?,
        mode: filter(&q.mode)?,
        cluster: filter(&q.cluster)?,
        tier: filter(&q.tier)?,
        region: q.region.clone().filter(|r| !r.trim().is_empty()),
        state: filter(&q.state)?,
        limit: q.limit.unwrap_or(50),
        offset: q.offset.unwrap_or(0),
    };
    Ok(Json(s.directory.search_tenants(&query).await?))
}

/// `GET /v1/tenants/{tenant}/keys`: the tenant's API keys, ids and dates only.
pub(crate) async fn keys(
    State(s): State<ApiState>,
    Path(which): Path<String>,
) -> Result<Json<Vec<bulkhead_directory::KeyInfo>>, ApiError> {
    let which: TenantRef = which.parse()?;
    let tenant = s.directory.tenant(&which).await?;
    Ok(Json(s.directory.keys_of(&tenant.id).await?))
}

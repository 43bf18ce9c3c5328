//! `/v1/tenants/{tenant}/backup`, `/restore`, `/clone`, `/erase`, `/certificate`: per-tenant
//! backup and erasure. Archives travel as `application/octet-stream` bodies.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use bulkhead_audit::action;
use bulkhead_backup::{MasterKey, Restored};
use bulkhead_directory::TenantRef;
use bulkhead_model::{Mode, Slug};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{ApiError, ApiState};

fn master(s: &ApiState) -> Result<MasterKey, ApiError> {
    let dir = s.secrets_dir.as_ref().ok_or_else(|| {
        ApiError::Internal("this server has no data folder for its master key".into())
    })?;
    Ok(MasterKey::load(dir).map_err(bulkhead_backup::BackupError::from)?)
}

/// Streams a fresh backup of the tenant.
pub(crate) async fn backup(
    State(s): State<ApiState>,
    Path(tenant): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let key = master(&s)?;
    let (manifest, bytes) =
        bulkhead_backup::backup(&s.directory, &key, &tenant.parse()?, None, Vec::new(), &())
            .await?;
    if let Ok(t) = manifest.header.tenant_id.parse() {
        s.record(action::BACKED_UP, t, manifest.summary()).await;
    }
    let name = format!("attachment; filename=\"{}.bhk\"", manifest.header.slug);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        bytes,
    ))
}

#[derive(Deserialize)]
pub(crate) struct RestoreQuery {
    /// Restore another tenant's archive into a new tenant of this slug.
    #[serde(default)]
    as_new: Option<Slug>,
    /// The new tenant's mode (default: the archive's).
    #[serde(default)]
    mode: Option<Mode>,
}

/// Restores the body (an archive) into the tenant, or into a new tenant with `?as_new=`.
pub(crate) async fn restore(
    State(s): State<ApiState>,
    Path(tenant): Path<String>,
    Query(q): Query<RestoreQuery>,
    body: Bytes,
) -> Result<Json<Restored>, ApiError> {
    let key = master(&s)?;
    if let Some(slug) = &q.as_new {
        let r =
            bulkhead_backup::restore_as_new(&s.directory, &key, &body, slug, q.mode, &()).await?;
        s.record(action::CLONED, r.tenant_id, r.summary()).await;
        return Ok(Json(r));
    }
    let t = s.directory.tenant(&tenant.parse::<TenantRef>()?).await?;
    let r = bulkhead_backup::restore(&s.directory, &key, &t, &body[..], false, &()).await?;
    s.record(action::RESTORED, r.tenant_id, r.summary()).await;
    Ok(Json(r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CloneBody {
    slug: Slug,
    #[serde(default)]
    mode: Option<Mode>,
}

/// Clones the tenant into a new one.
pub(crate) async fn clone(
    State(s): State<ApiState>,
    Path(tenant): Path<String>,
    Json(b): Json<CloneBody>,
) -> Result<Json<Restored>, ApiError> {
    let key = master(&s)?;
    let r =
        bulkhead_backup::clone_tenant(&s.directory, &key, &tenant.parse()?, &b.slug, b.mode, &())
            .await?;
    s.record(action::CLONED, r.tenant_id, r.summary()).await;
    Ok(Json(r))
}

#[derive(Deserialize)]
pub(crate) struct Confirm {
    #[serde(default)]
    confirm: bool,
}

/// Erases the tenant (needs `?confirm=true`); answers with its signed certificate.
pub(crate) async fn erase(
    State(s): State<ApiState>,
    Path(tenant): Path<String>,
    Query(c): Query<Confirm>,
) -> Result<Json<Value>, ApiError> {
    if !c.confirm {
        return Err(ApiError::NeedsConfirmation(
            "erasing a tenant destroys its data and its key, and every backup of it becomes unreadable; repeat with ?confirm=true (CLI: --confirm)",
        ));
    }
    let key = master(&s)?;
    let cert = bulkhead_backup::erase(&s.directory, &key, &tenant.parse()?).await?;
    s.record(
        action::ERASED,
        cert.tenant_id,
        json!({ "slug": cert.slug, "signature": cert.signature }),
    )
    .await;
    Ok(Json(certificate_json(&cert, true)))
}

/// The tenant's deletion certificate and whether its signature holds.
pub(crate) async fn certificate(
    State(s): State<ApiState>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = master(&s)?;
    let (cert, valid) = bulkhead_backup::certificate(&s.directory, &key, &tenant).await?;
    Ok(Json(certificate_json(&cert, valid)))
}

fn certificate_json(c: &bulkhead_directory::StoredCertificate, valid: bool) -> Value {
    json!({
        "tenant_id": c.tenant_id, "slug": c.slug, "certificate": c.certificate,
        "signature": c.signature, "valid": valid,
    })
}

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
    /// Rewind to this instant from the WAL archive instead of restoring a body.
    #[serde(default)]
    at: Option<String>,
    /// With `at`: only say what would be restored.
    #[serde(default)]
    dry_run: bool,
}

/// Restores the body (an archive) into the tenant, or into a new tenant with `?as_new=`; with
/// `?at=` (and no body) rewinds the tenant to that instant.
pub(crate) async fn restore(
    State(s): State<ApiState>,
    Path(tenant): Path<String>,
    Query(q): Query<RestoreQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let key = master(&s)?;
    if let Some(at) = &q.at {
        if !body.is_empty() {
            return Err(ApiError::BadQuery(
                "a rewind (?at=) takes no body; send an archive without ?at= to restore it".into(),
            ));
        }
        let req = bulkhead_pitr::RewindRequest {
            tenant: tenant.parse()?,
            service: None,
            at: bulkhead_pitr::parse_instant(at).map_err(ApiError::BadQuery)?,
            as_new: q.as_new.clone(),
            mode: q.mode,
            dry_run: q.dry_run,
        };
        let r = bulkhead_pitr::rewind(&s.directory, &key, &req, &()).await?;
        if !r.dry_run {
            let (what, into) = match &r.restored {
                Some(x) if q.as_new.is_some() => (action::CLONED, x.tenant_id),
                _ => (action::REWOUND, r.tenant_id),
            };
            s.record(what, into, r.summary()).await;
        }
        return Ok(Json(serde_json::to_value(r).unwrap_or_default()));
    }
    if q.dry_run {
        return Err(ApiError::BadQuery("dry_run goes with at=".into()));
    }
    let restored = restore_archive(&s, &key, &tenant, &q, &body).await?;
    Ok(Json(serde_json::to_value(restored).unwrap_or_default()))
}

/// `POST /v1/tenants/{t}/backups`: takes a backup now into the server's backup folder,
/// listed and pruned like a scheduled one.
pub(crate) async fn take_now(
    State(s): State<ApiState>,
    Path(tenant): Path<String>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let schedule = s
        .schedule
        .clone()
        .ok_or_else(|| ApiError::Internal("this server keeps no backup folder".into()))?;
    let key = master(&s)?;
    let t = s.directory.tenant(&tenant.parse::<TenantRef>()?).await?;
    let b = bulkhead_pitr::schedule::take_now(&s.directory, &key, &schedule, &t).await?;
    s.record(
        action::BACKED_UP,
        t.id,
        serde_json::json!({ "path": b.path, "bytes": b.bytes, "rows": b.rows, "on_demand": true,
                             "expires_at": b.expires_at.to_rfc3339() }),
    )
    .await;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(serde_json::to_value(b).unwrap_or_default()),
    ))
}

/// The tenant's scheduled backups, newest first.
pub(crate) async fn scheduled(
    State(s): State<ApiState>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = s.directory.tenant(&tenant.parse::<TenantRef>()?).await?;
    let list = s.directory.scheduled_backups_of(&t.id).await?;
    Ok(Json(serde_json::to_value(list).unwrap_or_default()))
}

async fn restore_archive(
    s: &ApiState,
    key: &MasterKey,
    tenant: &str,
    q: &RestoreQuery,
    body: &Bytes,
) -> Result<Restored, ApiError> {
    if let Some(slug) = &q.as_new {
        let r = bulkhead_backup::restore_as_new(&s.directory, key, body, slug, q.mode, &()).await?;
        s.record(action::CLONED, r.tenant_id, r.summary()).await;
        return Ok(r);
    }
    let t = s.directory.tenant(&tenant.parse::<TenantRef>()?).await?;
    let r = bulkhead_backup::restore(&s.directory, key, &t, &body[..], false, &()).await?;
    s.record(action::RESTORED, r.tenant_id, r.summary()).await;
    Ok(r)
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

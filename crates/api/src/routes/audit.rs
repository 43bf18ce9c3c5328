//! `/v1/audit`: the audit log, and its verification.

use axum::extract::{Query, State};
use axum::Json;
use bulkhead_audit::{AuditLog, ChainReport};
use bulkhead_directory::{AuditEntry, TenantRef};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{ApiError, ApiState};

fn log(s: &ApiState) -> Result<&AuditLog, ApiError> {
    s.audit
        .as_ref()
        .ok_or_else(|| ApiError::Internal("this server keeps no audit log".into()))
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    /// The newest N instead, newest first.
    #[serde(default)]
    last: Option<i64>,
    /// Of this action only (with `last`).
    #[serde(default)]
    action: Option<String>,
}

/// A date (`2026-11-01`) or a time (RFC 3339), as UTC.
pub(crate) fn parse_time(what: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            ApiError::BadQuery(format!(
                "{what} `{text}` is not a date (2026-11-01) or an RFC 3339 time"
            ))
        })
}

fn entry_json(e: &AuditEntry) -> Value {
    json!({
        "id": e.id, "chain": e.chain, "n": e.n, "tenant_id": e.tenant_id,
        "actor": e.actor, "action": e.action, "details": e.details,
        "at": e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "hash": hex::encode(&e.hash),
    })
}

/// Events about a tenant (or all), oldest first.
pub(crate) async fn list(
    State(s): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let log = log(&s)?;
    let tenant = match &q.tenant {
        Some(t) => Some(s.directory.tenant(&t.parse::<TenantRef>()?).await?.id),
        None => None,
    };
    let since = q
        .since
        .as_deref()
        .map(|t| parse_time("since", t))
        .transpose()?;
    if let Some(last) = q.last {
        if since.is_some() {
            return Err(ApiError::BadQuery(
                "`last` lists the newest events; it does not combine with `since`".into(),
            ));
        }
        let entries = log
            .newest(tenant.as_ref(), q.action.as_deref(), last.clamp(1, 10_000))
            .await?;
        return Ok(Json(entries.iter().map(entry_json).collect()));
    }
    let limit = q.limit.unwrap_or(1_000).clamp(1, 100_000);
    let entries = log.list(tenant.as_ref(), since, limit).await?;
    Ok(Json(entries.iter().map(entry_json).collect()))
}

#[derive(Deserialize)]
pub(crate) struct VerifyQuery {
    #[serde(default)]
    tenant: Option<String>,
}

/// Verifies one tenant's chain, or every chain.
pub(crate) async fn verify(
    State(s): State<ApiState>,
    Query(q): Query<VerifyQuery>,
) -> Result<Json<Value>, ApiError> {
    let log = log(&s)?;
    let tenant = match &q.tenant {
        // An erased or deleted tenant's chain stays verifiable by id.
        Some(t) => Some(match t.parse::<bulkhead_model::TenantId>() {
            Ok(id) => id,
            Err(_) => s.directory.tenant(&t.parse::<TenantRef>()?).await?.id,
        }),
        None => None,
    };
    let reports: Vec<ChainReport> = log.verify(tenant.as_ref()).await?;
    let intact = reports.iter().all(ChainReport::intact);
    Ok(Json(json!({
        "intact": intact,
        "chains": reports.len(),
        "entries": reports.iter().map(|r| r.entries).sum::<usize>(),
        "reports": reports,
    })))
}

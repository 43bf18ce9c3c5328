//! `/v1/usage`, `/v1/usage/export`, `/v1/usage/collect`, `/v1/cost`: metering.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bulkhead_directory::{TenantRef, UsageRow};
use bulkhead_metering::{report, CostLine, UsageLine};
use bulkhead_model::TenantId;
use chrono::{DateTime, DurationRound, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit::parse_time;
use crate::{ApiError, ApiState};

#[derive(Deserialize)]
pub(crate) struct Range {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    /// `csv` or `json` (export).
    #[serde(default)]
    format: Option<String>,
    /// `metric=price,...` over the configured prices (cost).
    #[serde(default)]
    prices: Option<String>,
}

struct Window {
    tenant: Option<TenantId>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
}

/// The start of the current hour.
fn this_hour() -> DateTime<Utc> {
    let now = Utc::now();
    now.duration_trunc(chrono::Duration::hours(1))
        .unwrap_or(now)
}

async fn window(s: &ApiState, q: &Range, closed_hours: bool) -> Result<Window, ApiError> {
    let tenant = match &q.tenant {
        Some(t) => Some(s.directory.tenant(&t.parse::<TenantRef>()?).await?.id),
        None => None,
    };
    let since = match &q.since {
        Some(t) => parse_time("since", t)?,
        None => this_hour() - chrono::Duration::days(30),
    };
    let until = match &q.until {
        Some(t) => parse_time("until", t)?,
        // An export covers closed hours only, so that running it again gives the same rows.
        None if closed_hours => this_hour(),
        None => this_hour() + chrono::Duration::hours(1),
    };
    if until <= since {
        return Err(ApiError::BadQuery(format!(
            "until ({until}) must come after since ({since})"
        )));
    }
    Ok(Window {
        tenant,
        since,
        until,
    })
}

async fn rows_and_slugs(
    s: &ApiState,
    w: &Window,
) -> Result<(Vec<UsageRow>, HashMap<TenantId, String>), ApiError> {
    let rows = s
        .directory
        .usage_rollups(w.tenant.as_ref(), w.since, w.until)
        .await?;
    // One tenant's rollups need its slug only, not every tenant's.
    let tenants = match &w.tenant {
        Some(id) => vec![s.directory.tenant(&TenantRef::Id(*id)).await?],
        None => s.directory.list_tenants().await?,
    };
    let slugs = tenants
        .into_iter()
        .map(|t| (t.id, t.slug.to_string()))
        .collect();
    Ok((rows, slugs))
}

/// Totals per tenant and metric.
pub(crate) async fn usage(
    State(s): State<ApiState>,
    Query(q): Query<Range>,
) -> Result<Json<Vec<UsageLine>>, ApiError> {
    let w = window(&s, &q, false).await?;
    let (rows, slugs) = rows_and_slugs(&s, &w).await?;
    Ok(Json(report::usage(&rows, &slugs)))
}

/// Tenants ranked by cost.
pub(crate) async fn cost(
    State(s): State<ApiState>,
    Query(q): Query<Range>,
) -> Result<Json<Value>, ApiError> {
    let w = window(&s, &q, false).await?;
    let pairs: Vec<String> = q
        .prices
        .as_deref()
        .map(|p| {
            p.split(',')
                .filter(|x| !x.trim().is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let prices = s
        .prices
        .clone()
        .with_overrides(&pairs)
        .map_err(|e| ApiError::BadQuery(e.to_string()))?;
    let (rows, slugs) = rows_and_slugs(&s, &w).await?;
    let lines: Vec<CostLine> = report::cost(&rows, &prices, &slugs);
    Ok(Json(json!({ "prices": prices, "tenants": lines })))
}

/// The hourly rollups for a billing system: CSV or JSON, ordered by hour, tenant and
/// metric, closed hours only unless `until` says otherwise.
pub(crate) async fn export(
    State(s): State<ApiState>,
    Query(q): Query<Range>,
) -> Result<Response, ApiError> {
    let w = window(&s, &q, true).await?;
    let (rows, slugs) = rows_and_slugs(&s, &w).await?;
    let rows = report::export_rows(&rows, &slugs);
    match q.format.as_deref().unwrap_or("json") {
        "csv" => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            report::to_csv(&rows),
        )
            .into_response()),
        "json" => Ok(Json(rows).into_response()),
        other => Err(ApiError::BadQuery(format!(
            "format `{other}` is not csv or json"
        ))),
    }
}

/// Collects now: the gateway's counters, the outboxes, a storage sample.
pub(crate) async fn collect(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let flushed = match &s.gateway {
        Some(g) => g.flush_usage().await?,
        None => 0,
    };
    let harvest = bulkhead_metering::outbox::harvest(&s.directory).await?;
    let storage = bulkhead_metering::storage::sample(&s.directory).await?;
    Ok(Json(json!({
        "gateway_events": flushed,
        "outbox": harvest,
        "storage": storage,
    })))
}

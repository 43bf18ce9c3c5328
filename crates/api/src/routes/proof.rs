//! Proof of isolation: the policy-coverage report and the live attack suite.

use axum::extract::{Query, State};
use axum::Json;
use bulkhead_model::ServiceName;

use crate::{ApiError, ApiState};

/// Which service (all when absent).
#[derive(serde::Deserialize)]
pub(crate) struct Which {
    #[serde(default)]
    service: Option<String>,
}

/// `GET /v1/verify[?service=S]`: the coverage report.
pub(crate) async fn verify(
    State(s): State<ApiState>,
    Query(q): Query<Which>,
) -> Result<Json<bulkhead_verify::Report>, ApiError> {
    let service: Option<ServiceName> = q.service.map(|s| s.parse()).transpose()?;
    let report = bulkhead_verify::verify(&s.directory, service.as_ref())
        .await
        .map_err(|e| match e {
            bulkhead_verify::VerifyError::Directory(d) => ApiError::from(d),
            other => ApiError::Internal(other.to_string()),
        })?;
    let failures = report.failures();
    let checked: usize = report.checked.values().sum();
    let summary = format!(
        "{checked} objects checked by {} checks, {failures} failures, {} warnings",
        report.checked.len(),
        report.findings.len() - failures
    );
    remember(
        &s,
        service.as_ref(),
        "verify",
        failures == 0,
        &summary,
        &report,
    )
    .await;
    Ok(Json(report))
}

/// Keeps the outcome for `/v1/proof` (a failure to keep it is logged: the run happened).
async fn remember(
    s: &ApiState,
    service: Option<&ServiceName>,
    kind: &str,
    passed: bool,
    summary: &str,
    report: &impl serde::Serialize,
) {
    let report = serde_json::to_value(report).unwrap_or_default();
    if let Err(e) = s
        .directory
        .record_proof_run(service, kind, passed, summary, &report)
        .await
    {
        tracing::warn!(error = %e, kind, "the outcome of a proof run was not kept");
    }
}

/// `GET /v1/proof`: the latest `verify` and `probe` outcome per service (all services: no
/// service), with their reports.
pub(crate) async fn latest(
    State(s): State<ApiState>,
) -> Result<Json<Vec<bulkhead_directory::ProofRun>>, ApiError> {
    Ok(Json(s.directory.latest_proof_runs().await?))
}

/// `POST /v1/probe[?service=S]`: attacks throwaway tenants through this server's gateway.
pub(crate) async fn probe(
    State(s): State<ApiState>,
    Query(q): Query<Which>,
) -> Result<Json<bulkhead_probe::ProbeReport>, ApiError> {
    let service: Option<ServiceName> = q.service.map(|s| s.parse()).transpose()?;
    let addr = s
        .gateway_addr
        .ok_or_else(|| ApiError::Internal("this server runs no gateway to probe".into()))?;
    let progress = |step: &str| tracing::info!(step, "probe");
    let report = bulkhead_probe::probe(&s.directory, addr, service.as_ref(), &progress)
        .await
        .map_err(|e| match e {
            bulkhead_probe::ProbeError::Directory(d) => ApiError::from(d),
            other => ApiError::Internal(other.to_string()),
        })?;
    let (leaks, unsure) = (report.leaks(), report.inconclusive());
    let summary = format!(
        "{} attacks, {} blocked, {leaks} leaked, {unsure} inconclusive",
        report.rows.len(),
        report.rows.len() - leaks - unsure
    );
    remember(
        &s,
        service.as_ref(),
        "probe",
        leaks == 0 && unsure == 0,
        &summary,
        &report,
    )
    .await;
    Ok(Json(report))
}

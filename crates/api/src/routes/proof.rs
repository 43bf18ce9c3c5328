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
    bulkhead_verify::verify(&s.directory, service.as_ref())
        .await
        .map(Json)
        .map_err(|e| match e {
            bulkhead_verify::VerifyError::Directory(d) => d.into(),
            other => ApiError::Internal(other.to_string()),
        })
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
    bulkhead_probe::probe(&s.directory, addr, service.as_ref(), &progress)
        .await
        .map(Json)
        .map_err(|e| match e {
            bulkhead_probe::ProbeError::Directory(d) => d.into(),
            other => ApiError::Internal(other.to_string()),
        })
}

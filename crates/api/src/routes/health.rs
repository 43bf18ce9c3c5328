//! `/health` and `/version`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::{ApiState, VERSION};

/// 200 when the control database answers, 503 otherwise.
pub(crate) async fn health(State(state): State<ApiState>) -> (StatusCode, Json<Value>) {
    match state.directory.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "control_database": "ok" })),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "control_database": e.to_string() })),
        ),
    }
}

pub(crate) async fn version() -> Json<Value> {
    Json(json!({ "name": "bulkhead", "version": VERSION }))
}

/// Prometheus text: the gateway's counters (empty when no gateway runs in this process).
pub(crate) async fn metrics(State(state): State<ApiState>) -> impl axum::response::IntoResponse {
    let body = state
        .gateway
        .as_ref()
        .map(|g| g.render_metrics())
        .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}

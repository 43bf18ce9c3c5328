//! `/v1/tenants/{tenant}/move…`: online moves between modes and clusters. A move runs in
//! the request (answering when it switched, with its pause and parity); its phases live in
//! the directory, so a request that was cut off is resumed by sending it again.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::Json;
use bulkhead_audit::{action, move_details};
use bulkhead_directory::{Move, TenantRef};
use bulkhead_model::{ClusterName, Mode, ServiceName};
use bulkhead_mover::{MoveOptions, MoveRequest};
use serde::Deserialize;

use crate::{ApiError, ApiState};

/// The body of `POST /v1/tenants/{tenant}/move`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MoveBody {
    to: Mode,
    #[serde(default)]
    cluster: Option<ClusterName>,
    #[serde(default)]
    service: Option<ServiceName>,
    /// Seconds the cutover waits for the tenant's open transactions (default 5).
    #[serde(default)]
    drain_seconds: Option<u64>,
}

/// The body of finalize and rollback.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Which {
    #[serde(default)]
    service: Option<ServiceName>,
}

fn options(drain: Option<u64>) -> MoveOptions {
    MoveOptions {
        drain_bound: std::time::Duration::from_secs(drain.unwrap_or(5)),
        ..Default::default()
    }
}

/// Starts (or resumes) a move and runs it to the switch.
pub(crate) async fn start(
    State(s): State<ApiState>,
    Path(tenant): Path<String>,
    body: Result<Json<MoveBody>, JsonRejection>,
) -> Result<Json<Move>, ApiError> {
    let Json(b) = body?;
    let req = MoveRequest {
        tenant: tenant.parse::<TenantRef>()?,
        service: b.service,
        to: b.to,
        cluster: b.cluster,
    };
    let m = bulkhead_mover::start(&s.directory, &req, &options(b.drain_seconds), &()).await?;
    s.record(action::MOVED, m.tenant_id, move_details(&m)).await;
    Ok(Json(m))
}

/// Removes the kept source of the tenant's last move.
pub(crate) async fn finalize(
    State(s): State<ApiState>,
    Path(tenant): Path<String>,
    body: Option<Json<Which>>,
) -> Result<Json<Move>, ApiError> {
    let which = body.map(|b| b.0).unwrap_or_default();
    let m =
        bulkhead_mover::finalize(&s.directory, &tenant.parse()?, which.service.as_ref()).await?;
    s.record(action::MOVE_FINALIZED, m.tenant_id, move_details(&m))
        .await;
    Ok(Json(m))
}

/// Rolls the tenant's last move back (aborts one under way, moves a switched one back).
pub(crate) async fn rollback(
    State(s): State<ApiState>,
    Path(tenant): Path<String>,
    body: Option<Json<Which>>,
) -> Result<Json<Move>, ApiError> {
    let which = body.map(|b| b.0).unwrap_or_default();
    let m = bulkhead_mover::rollback(
        &s.directory,
        &tenant.parse()?,
        which.service.as_ref(),
        &options(None),
        &(),
    )
    .await?;
    s.record(action::MOVE_ROLLED_BACK, m.tenant_id, move_details(&m))
        .await;
    Ok(Json(m))
}

/// The tenant's moves, newest first.
pub(crate) async fn list(
    State(s): State<ApiState>,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<Move>>, ApiError> {
    Ok(Json(
        bulkhead_mover::moves_of(&s.directory, &tenant.parse()?, None).await?,
    ))
}

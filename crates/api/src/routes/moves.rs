//! `/v1/tenants/{tenant}/move…`: online moves between modes and clusters. A move runs in
//! the request (answering when it switched, with its pause and parity), or, with
//! `?wait=false`, in the background (answering 202 at once; `/v1/moves` shows its progress);
//! its phases live in the directory, so a request that was cut off is resumed by sending it
//! again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bulkhead_audit::{action, move_details};
use bulkhead_directory::{Move, MoveSummary, TenantRef};
use bulkhead_model::{ClusterName, Mode, ServiceName, TenantId};
use bulkhead_mover::{Event, MoveOptions, MoveProgress, MoveRequest};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{ApiError, ApiState};

/// What a move running in this process last said, beyond what the directory records: the
/// table being copied and its rate, the replication lag, an error that ended it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveMove {
    /// Still running in this process.
    pub running: bool,
    /// The table being copied.
    pub table: Option<String>,
    /// Its bytes so far.
    pub bytes: u64,
    /// The copy's rate, bytes per second.
    pub bytes_per_second: f64,
    /// Changes replayed so far.
    pub applied: u64,
    /// WAL not yet replayed, in bytes.
    pub lag_bytes: Option<i64>,
    /// Why it stopped, when it failed.
    pub error: Option<String>,
    /// When this was last updated.
    pub updated_at: Option<DateTime<Utc>>,
}

/// The moves running (or run) in this process, by tenant.
pub type LiveMoves = Arc<Mutex<HashMap<TenantId, LiveMove>>>;

/// Keeps a tenant's [`LiveMove`] up to date from the mover's events.
struct Live {
    tenant: TenantId,
    moves: LiveMoves,
}

impl Live {
    fn update(&self, f: impl FnOnce(&mut LiveMove)) {
        let mut moves = match self.moves.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let m = moves.entry(self.tenant).or_default();
        f(m);
        m.updated_at = Some(Utc::now());
    }
}

impl MoveProgress for Live {
    fn event(&self, event: &Event) {
        self.update(|m| match event {
            Event::Copying {
                table,
                bytes,
                bytes_per_second,
                ..
            } => {
                m.table = Some(table.clone());
                m.bytes = *bytes;
                m.bytes_per_second = *bytes_per_second;
            }
            Event::CatchingUp { applied, lag_bytes } => {
                m.applied = *applied;
                m.lag_bytes = Some(*lag_bytes);
            }
            Event::Phase(_) | Event::Copied { .. } | Event::Switched { .. } => {}
        });
    }
}

/// `?wait=false`: answer at once and run in the background.
#[derive(Deserialize, Default)]
pub(crate) struct Wait {
    #[serde(default)]
    wait: Option<bool>,
}

/// Runs `work` (a move or a rollback of `tenant`) in the request, or in the background when
/// `wait` is false; records `what` in the audit log when it ends well.
async fn run<F, Fut>(
    s: ApiState,
    tenant: TenantRef,
    wait: Wait,
    what: &'static str,
    work: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(ApiState, Arc<Live>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Move, bulkhead_mover::MoveError>> + Send,
{
    let id = s.directory.tenant(&tenant).await?.id;
    let live = Arc::new(Live {
        tenant: id,
        moves: s.live_moves.clone(),
    });
    live.update(|m| {
        *m = LiveMove {
            running: true,
            ..Default::default()
        }
    });
    let finish = |live: &Live, r: &Result<Move, bulkhead_mover::MoveError>| {
        live.update(|m| {
            m.running = false;
            m.error = r.as_ref().err().map(|e| e.to_string());
        })
    };
    if wait.wait.unwrap_or(true) {
        let r = work(s.clone(), live.clone()).await;
        finish(&live, &r);
        let m = r?;
        s.record(what, m.tenant_id, move_details(&m)).await;
        return Ok(Json(m).into_response());
    }
    tokio::spawn(async move {
        let r = work(s.clone(), live.clone()).await;
        finish(&live, &r);
        match r {
            Ok(m) => s.record(what, m.tenant_id, move_details(&m)).await,
            Err(e) => tracing::warn!(tenant = %id, error = %e, "a background move stopped"),
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "tenant_id": id, "running": true, "progress": "/v1/moves" })),
    )
        .into_response())
}

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
    Query(wait): Query<Wait>,
    body: Result<Json<MoveBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    let req = MoveRequest {
        tenant: tenant.parse::<TenantRef>()?,
        service: b.service,
        to: b.to,
        cluster: b.cluster,
    };
    let opts = options(b.drain_seconds);
    run(
        s,
        req.tenant.clone(),
        wait,
        action::MOVED,
        move |s, live| async move {
            bulkhead_mover::start(&s.directory, &req, &opts, live.as_ref()).await
        },
    )
    .await
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
    Query(wait): Query<Wait>,
    body: Option<Json<Which>>,
) -> Result<Response, ApiError> {
    let which = body.map(|b| b.0).unwrap_or_default();
    let tenant: TenantRef = tenant.parse()?;
    let t = tenant.clone();
    run(
        s,
        tenant,
        wait,
        action::MOVE_ROLLED_BACK,
        move |s, live| async move {
            bulkhead_mover::rollback(
                &s.directory,
                &t,
                which.service.as_ref(),
                &options(None),
                live.as_ref(),
            )
            .await
        },
    )
    .await
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

/// `?limit=N`: how many moves `/v1/moves` lists.
#[derive(Deserialize)]
pub(crate) struct Recent {
    #[serde(default)]
    limit: Option<i64>,
}

/// A fleet-wide move, with what this process knows of it live.
#[derive(Serialize)]
pub(crate) struct MoveView {
    #[serde(flatten)]
    summary: MoveSummary,
    /// Present while (or after) the move ran in this process.
    live: Option<LiveMove>,
}

/// `GET /v1/moves`: every unfinished move, then the most recent ones (50 unless `limit`).
pub(crate) async fn recent(
    State(s): State<ApiState>,
    Query(q): Query<Recent>,
) -> Result<Json<Vec<MoveView>>, ApiError> {
    let moves = s.directory.recent_moves(q.limit.unwrap_or(50)).await?;
    let live = match s.live_moves.lock() {
        Ok(l) => l.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    let mut seen = std::collections::HashSet::new();
    Ok(Json(
        moves
            .into_iter()
            .map(|summary| {
                // The live figures belong to the tenant's newest move only.
                let first = seen.insert(summary.record.tenant_id);
                let live = first
                    .then(|| live.get(&summary.record.tenant_id).cloned())
                    .flatten();
                MoveView { summary, live }
            })
            .collect(),
    ))
}

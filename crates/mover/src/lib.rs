//! Online moves of a tenant between isolation modes and clusters, with the same tenant id.
//!
//! A move provisions the target at the source's migration version, creates a publication of
//! the tenant's tables (row-filtered on `tenant_id` when they are shared) and a logical
//! replication slot at the source, copies the tenant's rows table by table, replays the
//! changes made meanwhile from the slot, and cuts over: the gateways hold that tenant's new
//! transactions (no one else's), its open ones finish (or are ended past a bound), its source
//! is fenced, the last changes are replayed, parity is checked per table (row counts and an
//! order-independent hash), sequences are carried over, and the placement switches
//! (epoch + 1), which releases the held transactions to the new place. The source is kept,
//! fenced, until [`finalize`]; [`rollback`] moves the tenant back into it meanwhile.
//!
//! Every phase is recorded in the directory (`directory.moves`); a mover stopped anywhere
//! resumes from there ([`start`] with the same target, or [`resume`]), or gives up with
//! [`rollback`], which leaves the tenant where it was.

mod copy;
mod cutover;
mod error;
pub mod fault;
mod parity;
pub mod pgoutput;
pub mod place;
mod replay;
mod run;
pub mod sequences;

use std::time::Duration;

use bulkhead_directory::{Directory, Move, MovePhase, NewMove, TenantRef};
use bulkhead_model::{ClusterName, Mode, PlacementState, ServiceName};
use bulkhead_provisioner::migrate::plans_for;
use bulkhead_provisioner::naming::Naming;
use bulkhead_provisioner::TenantPlace;

pub use error::MoveError;
pub use parity::TableParity;
pub use run::release_abandoned;

use place::Side;

/// What to move where.
#[derive(Debug, Clone)]
pub struct MoveRequest {
    /// The tenant.
    pub tenant: TenantRef,
    /// The service (default: the tenant's only one).
    pub service: Option<ServiceName>,
    /// The mode to move to.
    pub to: Mode,
    /// The cluster to move to (default: where it is).
    pub cluster: Option<ClusterName>,
}

/// How to move.
#[derive(Debug, Clone)]
pub struct MoveOptions {
    /// How long the cutover waits for the tenant's open transactions before ending them.
    pub drain_bound: Duration,
    /// Stop (as if the mover died) once this phase is done: crash tests.
    pub halt_after: Option<MovePhase>,
}

impl Default for MoveOptions {
    fn default() -> Self {
        Self {
            drain_bound: Duration::from_secs(5),
            halt_after: None,
        }
    }
}

/// Progress of a move, as it happens.
#[derive(Debug, Clone)]
pub enum Event {
    /// A phase starts (or the move ended in it).
    Phase(MovePhase),
    /// A table is being copied.
    Copying {
        /// The table.
        table: String,
        /// Bytes so far.
        bytes: u64,
        /// The tenant's rows in it.
        rows_expected: u64,
        /// The rate so far.
        bytes_per_second: f64,
    },
    /// A table is copied.
    Copied {
        /// The table.
        table: String,
        /// Its rows.
        rows: u64,
        /// How long it took.
        seconds: f64,
    },
    /// Replaying changes.
    CatchingUp {
        /// Changes applied so far.
        applied: u64,
        /// WAL not yet replayed, in bytes.
        lag_bytes: i64,
    },
    /// The placement switched.
    Switched {
        /// How long the tenant's new transactions were held.
        pause_ms: u64,
        /// Sessions ended because their transactions outlasted the drain bound.
        sessions_ended: usize,
    },
}

/// Told about a move's progress.
pub trait MoveProgress: Send + Sync {
    /// Something happened.
    fn event(&self, event: &Event);
}

impl MoveProgress for () {
    fn event(&self, _: &Event) {}
}

/// Starts a move (after its pre-checks) and runs it to the switch; when a move of the
/// tenant to the same place is already under way (a mover stopped), resumes it instead.
pub async fn start(
    dir: &Directory,
    req: &MoveRequest,
    opts: &MoveOptions,
    progress: &dyn MoveProgress,
) -> Result<Move, MoveError> {
    let tenant = dir.tenant(&req.tenant).await?;
    let service = service_of(dir, req.service.as_ref(), &tenant).await?;
    let placement = dir.placement(&service, &tenant.id).await?.ok_or_else(|| {
        MoveError::Invalid(format!(
            "tenant {} has no place in service {service}",
            tenant.slug
        ))
    })?;
    let to_cluster = req
        .cluster
        .clone()
        .unwrap_or_else(|| placement.cluster.clone());
    let moves = dir.moves_of(&service, &tenant.id).await?;
    if let Some(open) = moves.iter().find(|m| m.phase.is_open()) {
        if open.to_mode == req.to && open.to_cluster == to_cluster && open.rollback_of.is_none() {
            return run::run(dir, open.clone(), opts, progress).await;
        }
        return Err(MoveError::Refused(format!(
            "a move of tenant {} to {} on cluster {} is under way ({}); run that move again to resume it, or roll it back",
            tenant.slug, open.to_mode, open.to_cluster, open.phase
        )));
    }
    if let Some(kept) = moves.iter().find(|m| m.phase == MovePhase::Switched) {
        return Err(MoveError::Refused(format!(
            "the last move of tenant {} (to {}) keeps its source until `bulkhead tenant move {} --finalize` (or `--rollback`)",
            tenant.slug, kept.to_mode, tenant.slug
        )));
    }
    if placement.state != PlacementState::Active {
        return Err(MoveError::Refused(format!(
            "tenant {} is {} in service {service}; only an active tenant moves",
            tenant.slug, placement.state
        )));
    }
    if placement.mode == req.to && placement.cluster == to_cluster {
        return Err(MoveError::Invalid(format!(
            "tenant {} is already in {} mode on cluster {to_cluster}",
            tenant.slug, req.to
        )));
    }
    let naming = Naming::of(dir).await?;
    let svc = dir.service(&service).await?;
    let source = Side {
        cluster: dir.cluster(&placement.cluster).await?,
        place: TenantPlace::new(&naming, &svc, tenant.id, placement.mode),
    };
    let target_cluster = dir.cluster(&to_cluster).await?;
    precheck(
        dir,
        &svc,
        &tenant,
        &placement,
        &source,
        &target_cluster,
        req.to,
    )
    .await?;
    let m = dir
        .create_move(&NewMove {
            service,
            tenant_id: tenant.id,
            from_mode: placement.mode,
            from_cluster: placement.cluster.clone(),
            to_mode: req.to,
            to_cluster,
            version: placement.schema_version,
            rollback_of: None,
        })
        .await?;
    tracing::info!(tenant = %tenant.id, from = %m.from_mode, to = %m.to_mode, "move started");
    run::run(dir, m, opts, progress).await
}

/// Everything that would stop a move halfway, refused before anything is copied.
async fn precheck(
    dir: &Directory,
    svc: &bulkhead_directory::Service,
    tenant: &bulkhead_directory::Tenant,
    placement: &bulkhead_directory::Placement,
    source: &Side,
    target: &bulkhead_directory::Cluster,
    to: Mode,
) -> Result<(), MoveError> {
    if let Some(region) = &tenant.region {
        if *region != target.region {
            return Err(MoveError::Refused(format!(
                "tenant {} is pinned to region {region}, cluster {} is in {}",
                tenant.slug, target.name, target.region
            )));
        }
    }
    if target.name != placement.cluster {
        if let Some(cap) = target.capacity {
            if target.placements >= i64::from(cap) {
                return Err(MoveError::Refused(format!(
                    "cluster {} is full ({cap} placements)",
                    target.name
                )));
            }
        }
    }
    let latest = plans_for(dir, svc)
        .await?
        .last()
        .map(|p| p.version)
        .unwrap_or(0);
    if placement.schema_version != latest {
        return Err(MoveError::Refused(format!(
            "tenant {} is at migration version {} and service {} at {latest}; run `bulkhead migrate {}` first",
            tenant.slug, placement.schema_version, svc.name, svc.name
        )));
    }
    let client = source.connect().await?;
    let row = client
        .query_one(
            "SELECT current_setting('wal_level'),
                    current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots)::int,
                    current_setting('server_version_num')::int / 10000",
            &[],
        )
        .await
        .map_err(MoveError::sql("reading the source's replication settings"))?;
    client.release();
    let (wal_level, free_slots, major): (String, i32, i32) = (row.get(0), row.get(1), row.get(2));
    if wal_level != "logical" {
        return Err(MoveError::Refused(format!(
            "cluster {} runs with wal_level = {wal_level}; moves need logical replication: run `ALTER SYSTEM SET wal_level = logical` there and restart it",
            source.cluster.name
        )));
    }
    if free_slots < 1 {
        return Err(MoveError::Refused(format!(
            "cluster {} has no free replication slot; raise max_replication_slots (and restart) or drop unused slots",
            source.cluster.name
        )));
    }
    if target.name != source.cluster.name {
        let tc = bulkhead_provisioner::admin_connect(target, "postgres").await?;
        let tmajor: i32 = tc
            .query_one(
                "SELECT current_setting('server_version_num')::int / 10000",
                &[],
            )
            .await
            .map_err(MoveError::sql("reading the target's server version"))?
            .get(0);
        tc.release();
        if tmajor != major {
            return Err(MoveError::Refused(format!(
                "cluster {} runs PostgreSQL {major} and cluster {} runs {tmajor}; moves copy in binary format between equal major versions",
                source.cluster.name, target.name
            )));
        }
    }
    if to == Mode::Shared {
        let foreign = source.foreign_rows(&tenant.id).await?;
        if !foreign.is_empty() {
            let list: Vec<String> = foreign.iter().map(|(t, n)| format!("{t} ({n})")).collect();
            return Err(MoveError::Refused(format!(
                "tenant {} has rows whose tenant_id is not its own in {}; in shared tables they would belong to another tenant: correct or delete them first",
                tenant.slug,
                list.join(", ")
            )));
        }
    }
    let tables = source.tables().await?;
    let refused: Vec<String> = tables
        .iter()
        .filter_map(|t| t.accept(source.is_shared()).err())
        .collect();
    if !refused.is_empty() {
        return Err(MoveError::Refused(refused.join("; ")));
    }
    Ok(())
}

async fn service_of(
    dir: &Directory,
    asked: Option<&ServiceName>,
    tenant: &bulkhead_directory::Tenant,
) -> Result<ServiceName, MoveError> {
    if let Some(s) = asked {
        return Ok(s.clone());
    }
    let placements = dir.placements_of(&tenant.id).await?;
    match placements.as_slice() {
        [one] => Ok(one.service.clone()),
        [] => Err(MoveError::Invalid(format!(
            "tenant {} has no place in any service",
            tenant.slug
        ))),
        _ => Err(MoveError::Invalid(format!(
            "tenant {} lives in several services; name one with --service",
            tenant.slug
        ))),
    }
}

/// Resumes the tenant's move under way (its mover stopped) from its recorded phase.
pub async fn resume(
    dir: &Directory,
    tenant: &TenantRef,
    service: Option<&ServiceName>,
    opts: &MoveOptions,
    progress: &dyn MoveProgress,
) -> Result<Move, MoveError> {
    let tenant = dir.tenant(tenant).await?;
    let service = service_of(dir, service, &tenant).await?;
    let open = dir
        .moves_of(&service, &tenant.id)
        .await?
        .into_iter()
        .find(|m| m.phase.is_open())
        .ok_or_else(|| {
            MoveError::Invalid(format!("tenant {} has no move under way", tenant.slug))
        })?;
    run::run(dir, open, opts, progress).await
}

/// Removes the kept source of the tenant's last move.
pub async fn finalize(
    dir: &Directory,
    tenant: &TenantRef,
    service: Option<&ServiceName>,
) -> Result<Move, MoveError> {
    let tenant = dir.tenant(tenant).await?;
    let service = service_of(dir, service, &tenant).await?;
    let m = dir
        .moves_of(&service, &tenant.id)
        .await?
        .into_iter()
        .find(|m| m.phase == MovePhase::Switched)
        .ok_or_else(|| {
            MoveError::Invalid(format!(
                "tenant {} has no switched move to finalize",
                tenant.slug
            ))
        })?;
    let opts = MoveOptions::default();
    let ctx = run::Ctx::load(dir, &m, &opts, &()).await?;
    run::finalize_with(&ctx, &m).await?;
    Ok(dir.get_move(m.id).await?)
}

/// Undoes the tenant's last move: one under way is aborted (the tenant stays at its
/// source); a switched one is moved back into its kept source, with every write made since.
pub async fn rollback(
    dir: &Directory,
    tenant: &TenantRef,
    service: Option<&ServiceName>,
    opts: &MoveOptions,
    progress: &dyn MoveProgress,
) -> Result<Move, MoveError> {
    let tenant = dir.tenant(tenant).await?;
    let service = service_of(dir, service, &tenant).await?;
    let moves = dir.moves_of(&service, &tenant.id).await?;
    if let Some(open) = moves.iter().find(|m| m.phase.is_open()) {
        if open.rollback_of.is_some() {
            // A rollback that stopped: finish it (going back is the way out).
            return run::run(dir, open.clone(), opts, progress).await;
        }
        let ctx = run::Ctx::load(dir, open, opts, progress).await?;
        run::abort(&ctx, open, "rolled back before the switch").await?;
        return Ok(dir.get_move(open.id).await?);
    }
    let m = moves
        .iter()
        .find(|m| m.phase == MovePhase::Switched)
        .ok_or_else(|| {
            MoveError::Invalid(format!(
                "tenant {} has no move to roll back (a finalized move has no source left)",
                tenant.slug
            ))
        })?;
    let placement = dir
        .placement(&service, &tenant.id)
        .await?
        .ok_or_else(|| MoveError::Invalid(format!("tenant {} has no place", tenant.slug)))?;
    let back = dir
        .create_move(&NewMove {
            service,
            tenant_id: tenant.id,
            from_mode: m.to_mode,
            from_cluster: m.to_cluster.clone(),
            to_mode: m.from_mode,
            to_cluster: m.from_cluster.clone(),
            version: placement.schema_version,
            rollback_of: Some(m.id),
        })
        .await?;
    run::run(dir, back, opts, progress).await
}

/// The tenant's moves, newest first.
pub async fn moves_of(
    dir: &Directory,
    tenant: &TenantRef,
    service: Option<&ServiceName>,
) -> Result<Vec<Move>, MoveError> {
    let tenant = dir.tenant(tenant).await?;
    let service = service_of(dir, service, &tenant).await?;
    Ok(dir.moves_of(&service, &tenant.id).await?)
}

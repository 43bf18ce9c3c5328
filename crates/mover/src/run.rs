//! A move's phases, driven from what the directory records: each phase is written once it
//! is done, so a mover that stops anywhere picks up at the first phase not recorded, and
//! every phase tolerates being run again.

use std::time::Instant;

use bulkhead_directory::{Directory, Move, MovePhase, PlaceRecord, Service, Tenant, TenantRef};
use bulkhead_provisioner::migrate::{moves_lock_key, plans_for};
use bulkhead_provisioner::naming::Naming;
use bulkhead_provisioner::{build, drop_place_with, migrate_place, TenantPlace};

use crate::place::{Side, Table};
use crate::{copy, cutover, parity, replay, sequences};
use crate::{Event, MoveError, MoveOptions, MoveProgress};

/// How long a move waits for a migration of its service to finish before it starts.
const MIGRATION_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Everything a phase needs.
pub(crate) struct Ctx<'a> {
    pub dir: &'a Directory,
    pub service: Service,
    pub tenant: Tenant,
    pub source: Side,
    pub target: Side,
    pub opts: &'a MoveOptions,
    pub progress: &'a dyn MoveProgress,
}

impl<'a> Ctx<'a> {
    pub(crate) async fn load(
        dir: &'a Directory,
        m: &Move,
        opts: &'a MoveOptions,
        progress: &'a dyn MoveProgress,
    ) -> Result<Ctx<'a>, MoveError> {
        let naming = Naming::of(dir).await?;
        let service = dir.service(&m.service).await?;
        let tenant = dir.tenant(&TenantRef::Id(m.tenant_id)).await?;
        let source = Side {
            cluster: dir.cluster(&m.from_cluster).await?,
            place: TenantPlace::new(&naming, &service, m.tenant_id, m.from_mode),
        };
        let target = Side {
            cluster: dir.cluster(&m.to_cluster).await?,
            place: TenantPlace::new(&naming, &service, m.tenant_id, m.to_mode),
        };
        Ok(Ctx {
            dir,
            service,
            tenant,
            source,
            target,
            opts,
            progress,
        })
    }

    fn same_cluster(&self) -> bool {
        self.source.cluster.name == self.target.cluster.name
    }

    /// The tenant's tables at the source, as the pre-checks accepted them.
    pub(crate) async fn source_tables(&self) -> Result<Vec<Table>, MoveError> {
        let shared = self.source.is_shared();
        let raw = self.source.tables().await?;
        let mut refused = Vec::new();
        let mut tables = Vec::new();
        for t in &raw {
            match t.accept(shared) {
                Ok(t) => tables.push(t),
                Err(why) => refused.push(why),
            }
        }
        if !refused.is_empty() {
            return Err(MoveError::Refused(refused.join("; ")));
        }
        Ok(tables)
    }
}

/// Runs `m` from its recorded phase to `switched` (a rollback move on to `finalized`).
pub(crate) async fn run(
    dir: &Directory,
    m: Move,
    opts: &MoveOptions,
    progress: &dyn MoveProgress,
) -> Result<Move, MoveError> {
    let _shared = dir
        .lock_shared(&moves_lock_key(&m.service), MIGRATION_WAIT)
        .await?;
    // Held while this mover lives: others can tell it from a dead one (see
    // `release_abandoned`), and a second mover of the same move is refused.
    let _alive = dir
        .try_lock(&mover_lock_key(m.id))
        .await?
        .ok_or_else(|| {
            MoveError::Invalid(format!(
                "another process is running move {} of this tenant right now; wait for it, or stop it first",
                m.id
            ))
        })?;
    let ctx = Ctx::load(dir, &m, opts, progress).await?;
    let tables = ctx.source_tables().await?;
    let m = catch_up_migrations(&ctx, m, &tables).await?;
    let mut m = m;
    while m.phase.is_open() {
        progress.event(&Event::Phase(m.phase));
        crate::fault::point(m.phase.as_str()).await;
        let result = match m.phase {
            MovePhase::Planned => provision(&ctx, &m, &tables).await,
            MovePhase::Provisioned => start_stream(&ctx, &m, &tables).await,
            MovePhase::Copying => copy_tables(&ctx, &m, &tables).await,
            MovePhase::Copied => catch_up(&ctx, &m, &tables).await,
            MovePhase::Cutover => cut_over(&ctx, &m, &tables).await,
            _ => Ok(()),
        };
        match result {
            Ok(()) => {}
            Err(MoveError::Parity(why)) => {
                abort(&ctx, &m, &why).await?;
                return Err(MoveError::Parity(why));
            }
            Err(e) => {
                let _ = dir.set_move_error(m.id, &e.to_string()).await;
                return Err(e);
            }
        }
        let done = m.phase;
        m = dir.get_move(m.id).await?;
        if opts.halt_after == Some(done) {
            return Err(MoveError::Halted(done.as_str()));
        }
    }
    if m.phase == MovePhase::Switched && m.rollback_of.is_some() {
        // A rollback keeps nothing of the place it left.
        finalize_with(&ctx, &m).await?;
        m = dir.get_move(m.id).await?;
    }
    progress.event(&Event::Phase(m.phase));
    Ok(m)
}

/// A migration that ran while this move's mover was stopped reached the source only (a
/// running mover holds migrations off): bring the target to the source's version, and when
/// the tenant's set of tables changed, start the stream and the copy over.
async fn catch_up_migrations(ctx: &Ctx<'_>, m: Move, tables: &[Table]) -> Result<Move, MoveError> {
    if m.phase < MovePhase::Provisioned {
        return Ok(m);
    }
    // Applies only what the target lacks against the source (nothing, mostly).
    let version = ctx.source.applied_version().await?;
    let plans = plans_up_to(ctx, version).await?;
    let label = format!("tenant {} ({})", ctx.tenant.slug, ctx.target.place.mode);
    migrate_place(&ctx.target.cluster, &ctx.target.place, &plans, &label).await?;
    if version != m.version {
        ctx.dir.set_move_version(m.id, version).await?;
    }
    if m.phase >= MovePhase::Copying {
        let published = published_tables(ctx, &m).await?;
        let mut now: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
        now.sort();
        if published != now {
            replay::drop(&ctx.source, &m.slot_name, &m.publication).await?;
            ctx.dir.reset_copied_tables(m.id).await?;
            ctx.dir
                .set_move_phase(m.id, MovePhase::Provisioned, None)
                .await?;
            tracing::info!(tenant = %m.tenant_id, "a migration changed the tenant's tables during the move: copying again");
        }
    }
    Ok(ctx.dir.get_move(m.id).await?)
}

/// The service's migrations up to `version`.
async fn plans_up_to(
    ctx: &Ctx<'_>,
    version: i64,
) -> Result<Vec<bulkhead_provisioner::migrate::MigrationPlan>, MoveError> {
    Ok(plans_for(ctx.dir, &ctx.service)
        .await?
        .into_iter()
        .filter(|p| p.version <= version)
        .collect())
}

/// The tables in the move's publication, sorted.
async fn published_tables(ctx: &Ctx<'_>, m: &Move) -> Result<Vec<String>, MoveError> {
    let client = ctx.source.connect().await?;
    let rows = client
        .query(
            "SELECT tablename::text FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1",
            &[&m.publication],
        )
        .await
        .map_err(MoveError::sql("reading the move's publication"))?;
    client.release();
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Planned → provisioned: the target place at the source's version, with the same tables.
async fn provision(ctx: &Ctx<'_>, m: &Move, tables: &[Table]) -> Result<(), MoveError> {
    // The target is built at the source's version, not at a migration registered since
    // (which waits for this move, then reaches the new place).
    let plans = plans_up_to(ctx, m.version).await?;
    if m.rollback_of.is_some() {
        // The kept source of the move being rolled back: bring it to the current version.
        let label = format!("tenant {} ({})", ctx.tenant.slug, ctx.target.place.mode);
        migrate_place(&ctx.target.cluster, &ctx.target.place, &plans, &label).await?;
    } else {
        // Whatever an interrupted attempt left is removed first.
        if ctx.target.place.mode != ctx.source.place.mode || !ctx.same_cluster() {
            drop_place_with(&ctx.target.cluster, &ctx.target.place, !ctx.same_cluster()).await?;
        }
        build(
            ctx.dir,
            &ctx.service,
            &ctx.tenant,
            &ctx.target.cluster,
            &ctx.target.place,
            &plans,
        )
        .await?;
    }
    let target_tables = ctx.target.tables().await?;
    for t in tables {
        let Some(other) = target_tables.iter().find(|o| o.name == t.name) else {
            return Err(MoveError::Refused(format!(
                "table {} is missing at the target ({}); source and target differ in their migrations",
                t.name,
                ctx.target.describe()
            )));
        };
        let mut a = t.columns.clone();
        let mut b = other.columns.clone();
        a.sort();
        b.sort();
        if a != b {
            return Err(MoveError::Refused(format!(
                "table {} has columns {:?} at the source and {:?} at the target",
                t.name, t.columns, other.columns
            )));
        }
    }
    ctx.dir
        .set_move_phase(m.id, MovePhase::Provisioned, None)
        .await?;
    Ok(())
}

/// Provisioned → copying: publication and slot at the source.
async fn start_stream(ctx: &Ctx<'_>, m: &Move, tables: &[Table]) -> Result<(), MoveError> {
    let lsn = replay::create(&ctx.source, tables, &m.slot_name, &m.publication).await?;
    ctx.dir.set_move_start(m.id, &lsn).await?;
    ctx.dir
        .set_move_phase(m.id, MovePhase::Copying, None)
        .await?;
    Ok(())
}

/// Copying → copied: every table not copied yet, one by one (a resumed copy skips the done).
async fn copy_tables(ctx: &Ctx<'_>, m: &Move, tables: &[Table]) -> Result<(), MoveError> {
    let mut copied_now = 0;
    for t in tables {
        if m.tables_copied.contains(&t.name) {
            continue;
        }
        if copied_now > 0 && ctx.opts.halt_after == Some(MovePhase::Copying) {
            // Crash tests: stop between tables.
            return Err(MoveError::Halted("copying (between tables)"));
        }
        let rows =
            copy::copy_table(&ctx.source, &ctx.target, t, &ctx.tenant.id, ctx.progress).await?;
        ctx.dir
            .add_copied_table(m.id, &t.name, i64::try_from(rows).unwrap_or(i64::MAX))
            .await?;
        copied_now += 1;
    }
    ctx.dir
        .set_move_phase(m.id, MovePhase::Copied, None)
        .await?;
    Ok(())
}

/// Rows copied within one cluster above which the mover asks for a checkpoint.
const CHECKPOINT_AFTER_ROWS: i64 = 50_000;

async fn checkpoint(side: &Side) -> Result<(), MoveError> {
    let client = side.connect().await?;
    client
        .batch_execute("CHECKPOINT")
        .await
        .map_err(MoveError::sql(
            "asking the source for a checkpoint after the copy",
        ))?;
    client.release();
    Ok(())
}

/// Changes left in a replay step below which the move cuts over.
const CUTOVER_REMAINDER: u64 = 500;

/// Copied → cutover: replay until a step finds little left.
async fn catch_up(ctx: &Ctx<'_>, m: &Move, tables: &[Table]) -> Result<(), MoveError> {
    let mut applier = replay::Applier::new(
        &ctx.source,
        &ctx.target,
        ctx.tenant.id,
        &m.slot_name,
        &m.publication,
        tables,
    );
    if ctx.same_cluster() && m.rows_copied >= CHECKPOINT_AFTER_ROWS {
        // The copy's own WAL sits between the slot's restart point and now, and every read
        // of the slot decodes from there until PostgreSQL logs a running-transactions record
        // past it (every 15 s, or at a checkpoint): ask for the checkpoint now, so the reads
        // at cutover stay short.
        checkpoint(&ctx.source).await?;
    }
    let mut applied = 0u64;
    loop {
        let step = applier.step(None).await?;
        applied += step.changes;
        let lag = replay::lag_bytes(&ctx.source, &m.slot_name).await?;
        ctx.progress.event(&Event::CatchingUp {
            applied,
            lag_bytes: lag,
        });
        // Close enough when a step finds little left: the writes keep coming, and the
        // cutover replays the remainder while the tenant is held.
        if step.changes < CUTOVER_REMAINDER {
            break;
        }
    }
    ctx.dir
        .set_move_phase(m.id, MovePhase::Cutover, None)
        .await?;
    Ok(())
}

/// Cutover → switched: hold, drain, fence, final replay, parity, sequences, switch.
async fn cut_over(ctx: &Ctx<'_>, m: &Move, tables: &[Table]) -> Result<(), MoveError> {
    let tenant = ctx.tenant.id;
    let hows = parity::plan(&ctx.source, tables).await?;
    let started = Instant::now();
    let mut steps = Steps {
        done: Vec::new(),
        last: started,
    };
    ctx.dir.hold_placement(&m.service, &tenant, true).await?;
    steps.mark("hold").await;
    let ended = cutover::drain(&ctx.source, &tenant, ctx.opts.drain_bound).await?;
    steps.mark("drain").await;
    ctx.source.fence(true).await?;
    // A transaction that began between the drain and the fence can no longer write; end it.
    let ended = ended + cutover::drain(&ctx.source, &tenant, ctx.opts.drain_bound).await?;
    steps.mark("fence").await;
    let upto = cutover::flushed_lsn(&ctx.source).await?;
    let mut applier = replay::Applier::new(
        &ctx.source,
        &ctx.target,
        tenant,
        &m.slot_name,
        &m.publication,
        tables,
    );
    while applier.step(Some(&upto)).await?.transactions > 0 {}
    steps.mark("replay").await;
    if ctx.opts.halt_after == Some(MovePhase::Cutover) {
        // Crash tests: stop held and fenced, before the switch.
        return Err(MoveError::Halted(
            "cutover (held and fenced, before the switch)",
        ));
    }
    let parity = parity::compare(&ctx.source, &ctx.target, tables, &hows, &tenant).await?;
    let differing: Vec<String> = parity
        .iter()
        .filter(|p| !p.matches())
        .map(|p| {
            format!(
                "{}: {} rows at the source, {} at the target",
                p.table, p.source_rows, p.target_rows
            )
        })
        .collect();
    if !differing.is_empty() {
        return Err(MoveError::Parity(differing.join("; ")));
    }
    steps.mark("parity").await;
    let carried = sequences::carry(&ctx.source, &ctx.target, tables, &tenant).await?;
    ctx.target.fence(false).await?;
    steps.mark("sequences").await;
    let record = PlaceRecord {
        mode: ctx.target.place.mode,
        cluster: ctx.target.cluster.name.clone(),
        database: ctx.target.place.database.clone(),
        schema: ctx.target.place.schema.clone(),
        role: ctx.target.place.role.clone(),
    };
    let summary = serde_json::json!({
        "tables": parity, "sequences": carried, "sessions_ended": ended, "cutover_ms": steps.done,
    });
    let pause = started.elapsed();
    ctx.dir
        .switch_move(m, &record, &summary, pause.as_millis() as i64)
        .await?;
    ctx.progress.event(&Event::Switched {
        pause_ms: pause.as_millis() as u64,
        sessions_ended: ended,
    });
    crate::fault::point("switched").await;
    // The slot would keep WAL at the source forever: it goes now; the source stays, fenced.
    if let Err(e) = replay::drop(&ctx.source, &m.slot_name, &m.publication).await {
        tracing::warn!(tenant = %m.tenant_id, error = %e, "dropping the move's slot after the switch failed; drop slot {} by hand", m.slot_name);
    }
    Ok(())
}

/// Milliseconds each cutover step took, in order.
struct Steps {
    done: Vec<(&'static str, u64)>,
    last: Instant,
}

impl Steps {
    /// Records `step` as done (and is the fault point `cutover:<step>`, see `fault`).
    async fn mark(&mut self, step: &'static str) {
        self.done
            .push((step, self.last.elapsed().as_millis() as u64));
        self.last = Instant::now();
        crate::fault::point(&format!("cutover:{step}")).await;
    }
}

/// Gives up an open move: the tenant is released where it was, with nothing lost, and what
/// the move built is removed (a rollback's target, the kept source of an earlier move, is
/// fenced again instead).
pub(crate) async fn abort(ctx: &Ctx<'_>, m: &Move, why: &str) -> Result<(), MoveError> {
    if m.phase >= MovePhase::Cutover {
        ctx.source.fence(false).await?;
    }
    ctx.dir
        .hold_placement(&m.service, &ctx.tenant.id, false)
        .await?;
    replay::drop(&ctx.source, &m.slot_name, &m.publication).await?;
    if m.rollback_of.is_some() {
        ctx.target.fence(true).await?;
    } else {
        remove_place(&ctx.target, !ctx.same_cluster()).await?;
    }
    ctx.dir
        .set_move_phase(m.id, MovePhase::Aborted, Some(why))
        .await?;
    ctx.progress.event(&Event::Phase(MovePhase::Aborted));
    Ok(())
}

/// Removes a place the tenant no longer uses, fenced first so that a runtime role shared
/// with the live place (same cluster) loses its way in.
async fn remove_place(side: &Side, drop_role: bool) -> Result<(), MoveError> {
    if let Err(e) = side.fence(true).await {
        tracing::debug!(tenant = %side.place.tenant, error = %e, "fencing a place being removed (it may not exist)");
    }
    drop_place_with(&side.cluster, &side.place, drop_role).await?;
    Ok(())
}

/// Switched → finalized: the kept source is removed.
pub(crate) async fn finalize_with(ctx: &Ctx<'_>, m: &Move) -> Result<(), MoveError> {
    // A mover that died right after the switch left its slot, which would keep WAL at the
    // source forever: it goes now (nothing when it went already).
    replay::drop(&ctx.source, &m.slot_name, &m.publication).await?;
    remove_place(&ctx.source, !ctx.same_cluster()).await?;
    ctx.dir
        .set_move_phase(m.id, MovePhase::Finalized, None)
        .await?;
    Ok(())
}

/// The advisory lock a live mover of move `id` holds.
pub(crate) fn mover_lock_key(id: uuid::Uuid) -> String {
    format!("bulkhead.move.{id}")
}

/// Moves whose mover died during the cutover hold their tenant at every gateway until
/// someone acts: each one found (its phase `cutover`, its mover's lock free) is aborted
/// here, which releases the tenant at its source with nothing lost. Returns those aborted.
pub async fn release_abandoned(dir: &Directory) -> Result<Vec<Move>, MoveError> {
    let mut released = Vec::new();
    for m in dir.unfinished_moves().await? {
        if m.phase != MovePhase::Cutover {
            continue;
        }
        // Held for the abort, so that a mover started meanwhile waits for it.
        let Some(_lock) = dir.try_lock(&mover_lock_key(m.id)).await? else {
            continue;
        };
        // Read again under the lock: a mover may have finished in between.
        let m = dir.get_move(m.id).await?;
        if m.phase != MovePhase::Cutover {
            continue;
        }
        let opts = MoveOptions::default();
        let ctx = Ctx::load(dir, &m, &opts, &()).await?;
        abort(
            &ctx,
            &m,
            "its mover stopped during the cutover; the tenant was released where it was (run the move again to retry)",
        )
        .await?;
        released.push(dir.get_move(m.id).await?);
    }
    Ok(released)
}

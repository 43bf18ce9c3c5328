//! Fan-out: every pool database and template of the service first (tenant schemas may read
//! their reference data), then every schema and database tenant with bounded concurrency.
//! A failing target is recorded and reported while the others go on; `canary` migrates a
//! few tenants first and stops the rollout if any of them fails; `dry_run` only reads what
//! each target has applied. Re-running applies only what is missing.
//!
//! Workers keep one connection per database, so a thousand schema tenants in one pool
//! database cost a handful of connections, not a thousand.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bulkhead_directory::{Directory, Service, ServiceDatabaseKind};
use bulkhead_model::{Mode, PlacementState, ServiceName};
use serde::Serialize;

use super::apply::{applied_versions, apply_pending, pending, ApplySettings};
use super::batch::{apply_batch, BATCH_SIZE};
use super::plan::MigrationPlan;
use super::plans_for;
use super::target::{Target, TargetKind};
use crate::connect::{admin_connect, AdminConn};
use crate::modes::TenantPlace;
use crate::naming::Naming;
use crate::service_db::{service_target, HELPERS_SQL};
use crate::ProvisionError;

/// How to migrate.
#[derive(Debug, Clone, Default)]
pub struct MigrateOptions {
    /// Targets migrated at once; default fitted to the clusters' `max_connections`.
    pub concurrency: Option<usize>,
    /// Only report what would run.
    pub dry_run: bool,
    /// Migrate this many tenants first and stop if any fails.
    pub canary: Option<usize>,
    /// Lock timeout and retries.
    pub apply: ApplySettings,
}

/// Told about progress as targets finish.
pub trait Progress: Send + Sync {
    /// The run has `total` targets.
    fn started(&self, total: usize);
    /// One target finished.
    fn finished(&self, outcome: &TargetOutcome);
}

impl Progress for () {
    fn started(&self, _: usize) {}
    fn finished(&self, _: &TargetOutcome) {}
}

/// How one target ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    /// Migrated (possibly nothing to do).
    Migrated,
    /// Dry run: these versions would be applied.
    WouldApply(Vec<i64>),
    /// Failed, with the reason.
    Failed(String),
    /// Not attempted (canary failed, or its pool database failed).
    Skipped(String),
}

/// One target's result.
#[derive(Debug, Clone, Serialize)]
pub struct TargetOutcome {
    /// How it is shown.
    pub label: String,
    /// Its kind.
    pub kind: TargetKind,
    /// Its cluster.
    pub cluster: String,
    /// The tenant, for a tenant's place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<bulkhead_model::TenantId>,
    /// Version before.
    pub from: i64,
    /// Version after.
    pub to: i64,
    /// What happened.
    pub outcome: Outcome,
    /// How long it took.
    pub millis: u64,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateSummary {
    /// The service.
    pub service: String,
    /// Its newest migration version.
    pub latest: i64,
    /// The concurrency used.
    pub concurrency: usize,
    /// Every target.
    pub targets: Vec<TargetOutcome>,
    /// True when the canary failed and the rollout stopped.
    pub canary_stopped: bool,
    /// Wall-clock time.
    pub millis: u64,
}

impl MigrateSummary {
    /// How many targets failed.
    pub fn failed(&self) -> usize {
        self.targets
            .iter()
            .filter(|t| matches!(t.outcome, Outcome::Failed(_)))
            .count()
    }
}

struct Job {
    target: Target,
    record: Record,
}

#[derive(Clone)]
enum Record {
    ServiceDb(ServiceDatabaseKind),
    Placement(bulkhead_model::TenantId),
}

/// Migrates every target of `service`.
pub async fn migrate_service(
    dir: &Directory,
    service_name: &ServiceName,
    opts: &MigrateOptions,
    progress: &dyn Progress,
) -> Result<MigrateSummary, ProvisionError> {
    let started = Instant::now();
    // Moves of this service's tenants hold this lock shared while they copy and cut over: a
    // migration waits for them, so a source and its target never end at different versions.
    let _moves = dir.lock(&moves_lock_key(service_name), MOVES_WAIT).await?;
    let service = dir.service(service_name).await?;
    let plans = Arc::new(plans_for(dir, &service).await?);
    let latest = plans.last().map(|p| p.version).unwrap_or(0);
    let (services_dbs, tenants) = targets(dir, &service).await?;
    let concurrency = match opts.concurrency {
        Some(n) => n.max(1),
        None => default_concurrency(&services_dbs).await,
    };
    progress.started(services_dbs.len() + tenants.len());
    let mut summary = MigrateSummary {
        service: service.name.to_string(),
        latest,
        concurrency,
        targets: Vec::new(),
        canary_stopped: false,
        millis: 0,
    };
    // Phase 1: pool databases and templates, one after another.
    let first = run_jobs(dir, services_dbs, &plans, opts, 1, progress).await;
    let failed_pools: Vec<(String, String)> = first
        .iter()
        .filter(|t| t.kind == TargetKind::Pool && matches!(t.outcome, Outcome::Failed(_)))
        .map(|t| (t.cluster.clone(), t.label.clone()))
        .collect();
    summary.targets.extend(first);
    // Schema tenants of a pool that failed are not attempted.
    let (blocked, tenants): (Vec<Job>, Vec<Job>) = tenants.into_iter().partition(|j| {
        j.target.kind == TargetKind::Schema
            && failed_pools
                .iter()
                .any(|(c, _)| *c == j.target.cluster.name.as_str())
    });
    for job in blocked {
        let outcome = skipped(&job.target, "its pool database failed to migrate");
        progress.finished(&outcome);
        summary.targets.push(outcome);
    }
    // Phase 2: tenants, canary first.
    let mut rest: VecDeque<Job> = tenants.into();
    if let Some(n) = opts.canary.filter(|n| *n > 0) {
        let canary: Vec<Job> = (0..n.min(rest.len()))
            .filter_map(|_| rest.pop_front())
            .collect();
        let results = run_jobs(dir, canary, &plans, opts, concurrency, progress).await;
        let canary_failed = results
            .iter()
            .any(|t| matches!(t.outcome, Outcome::Failed(_)));
        summary.targets.extend(results);
        if canary_failed {
            summary.canary_stopped = true;
            for job in rest.drain(..) {
                let outcome = skipped(&job.target, "the canary failed, rollout stopped");
                progress.finished(&outcome);
                summary.targets.push(outcome);
            }
        }
    }
    let results = run_jobs(dir, rest.into(), &plans, opts, concurrency, progress).await;
    summary.targets.extend(results);
    summary.millis = started.elapsed().as_millis() as u64;
    Ok(summary)
}

/// The advisory lock a service's migrations take and its moves share.
pub fn moves_lock_key(service: &ServiceName) -> String {
    format!("moves/{service}")
}

/// How long a migration waits for the moves under way in its service.
const MOVES_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

fn skipped(target: &Target, why: &str) -> TargetOutcome {
    TargetOutcome {
        label: target.label.clone(),
        kind: target.kind,
        cluster: target.cluster.name.to_string(),
        tenant: target.tenant,
        from: 0,
        to: 0,
        outcome: Outcome::Skipped(why.into()),
        millis: 0,
    }
}

async fn targets(
    dir: &Directory,
    service: &Service,
) -> Result<(Vec<Job>, Vec<Job>), ProvisionError> {
    let clusters = dir.list_clusters().await?;
    let cluster = |name: &str| clusters.iter().find(|c| c.name.as_str() == name).cloned();
    let mut dbs = Vec::new();
    for sd in dir.service_databases(&service.name).await? {
        if let Some(c) = cluster(sd.cluster.as_str()) {
            dbs.push(Job {
                target: service_target(service, &c, sd.kind),
                record: Record::ServiceDb(sd.kind),
            });
        }
    }
    // Pools before templates.
    dbs.sort_by_key(|j| matches!(j.record, Record::ServiceDb(ServiceDatabaseKind::Template)));
    let slugs: HashMap<_, _> = dir
        .list_tenants()
        .await?
        .into_iter()
        .map(|t| (t.id, t.slug))
        .collect();
    let naming = Naming::of(dir).await?;
    let mut tenants = Vec::new();
    for p in dir.placements_of_service(&service.name).await? {
        let live = matches!(
            p.state,
            PlacementState::Active | PlacementState::Suspended | PlacementState::Moving
        );
        if p.mode == Mode::Shared || !live {
            continue;
        }
        let Some(c) = cluster(p.cluster.as_str()) else {
            continue;
        };
        let place = TenantPlace::new(&naming, service, p.tenant_id, p.mode);
        let slug = slugs
            .get(&p.tenant_id)
            .map(|s| s.to_string())
            .unwrap_or_else(|| p.tenant_id.to_string());
        if let Some(target) = place.target(&c, format!("tenant {slug} ({})", p.mode)) {
            tenants.push(Job {
                target,
                record: Record::Placement(p.tenant_id),
            });
        }
    }
    // Group by database so workers reuse connections.
    tenants.sort_by(|a, b| {
        (&a.target.cluster.name, &a.target.database)
            .cmp(&(&b.target.cluster.name, &b.target.database))
    });
    Ok((dbs, tenants))
}

/// The smallest `max_connections` / 25 among the service's clusters, between 2 and 8: enough to overlap round trips, few enough to leave the clusters room for traffic.
async fn default_concurrency(dbs: &[Job]) -> usize {
    let mut best = 8usize;
    for job in dbs {
        if let Ok(client) = admin_connect(&job.target.cluster, "postgres").await {
            if let Ok(row) = client
                .query_one("SELECT current_setting('max_connections')::int", &[])
                .await
            {
                let max: i32 = row.get(0);
                best = best.min(((max.max(0) as usize) / 25).max(2));
            }
            client.release();
        }
    }
    best
}

async fn run_jobs(
    dir: &Directory,
    jobs: Vec<Job>,
    plans: &Arc<Vec<MigrationPlan>>,
    opts: &MigrateOptions,
    concurrency: usize,
    progress: &dyn Progress,
) -> Vec<TargetOutcome> {
    if jobs.is_empty() {
        return Vec::new();
    }
    let queue = Arc::new(Mutex::new(VecDeque::from(jobs)));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let workers = concurrency
        .min(queue.lock().map(|q| q.len()).unwrap_or(1))
        .max(1);
    for _ in 0..workers {
        let queue = queue.clone();
        let plans = plans.clone();
        let tx = tx.clone();
        let dir = dir.clone();
        let opts = opts.clone();
        tokio::spawn(async move {
            let mut connections: HashMap<(String, String), AdminConn> = HashMap::new();
            loop {
                let jobs = match queue.lock() {
                    Ok(mut q) => take_batch(&mut q, opts.dry_run),
                    Err(_) => Vec::new(),
                };
                if jobs.is_empty() {
                    break;
                }
                let outcomes = if jobs.len() == 1 {
                    vec![run_one(&dir, &jobs[0], &plans, &opts, &mut connections).await]
                } else {
                    run_batch_jobs(&dir, &jobs, &plans, &opts, &mut connections).await
                };
                if outcomes.into_iter().any(|o| tx.send(o).is_err()) {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut outcomes = Vec::new();
    while let Some(outcome) = rx.recv().await {
        progress.finished(&outcome);
        outcomes.push(outcome);
    }
    outcomes
}

/// The next job, plus the schema tenants of the same database right behind it (up to
/// [`BATCH_SIZE`]), which are migrated together in one transaction.
fn take_batch(queue: &mut VecDeque<Job>, dry_run: bool) -> Vec<Job> {
    let Some(first) = queue.pop_front() else {
        return Vec::new();
    };
    let batchable = |j: &Job| j.target.kind == TargetKind::Schema && !dry_run;
    let mut jobs = vec![first];
    while jobs.len() < BATCH_SIZE && batchable(&jobs[0]) {
        let same_db = queue.front().is_some_and(|next| {
            batchable(next)
                && next.target.cluster.name == jobs[0].target.cluster.name
                && next.target.database == jobs[0].target.database
        });
        match queue.pop_front() {
            Some(next) if same_db => jobs.push(next),
            Some(other) => {
                queue.push_front(other);
                break;
            }
            None => break,
        }
    }
    jobs
}

/// A cached connection to the target's database, opened if needed.
async fn connection<'c>(
    connections: &'c mut HashMap<(String, String), AdminConn>,
    target: &Target,
) -> Result<&'c mut AdminConn, String> {
    let key = (target.cluster.name.to_string(), target.database.clone());
    if connections.get(&key).is_none_or(|c| c.is_closed()) {
        let c = admin_connect(&target.cluster, &target.database)
            .await
            .map_err(|e| e.to_string())?;
        connections.insert(key.clone(), c);
    }
    connections
        .get_mut(&key)
        .ok_or_else(|| "no connection".to_string())
}

async fn run_batch_jobs(
    dir: &Directory,
    jobs: &[Job],
    plans: &[MigrationPlan],
    opts: &MigrateOptions,
    connections: &mut HashMap<(String, String), AdminConn>,
) -> Vec<TargetOutcome> {
    let started = Instant::now();
    let targets: Vec<&Target> = jobs.iter().map(|j| &j.target).collect();
    let results = match connection(connections, targets[0]).await {
        Ok(client) => apply_batch(client, &targets, plans, opts.apply).await,
        Err(message) => targets
            .iter()
            .map(|_| {
                Err(super::apply::ApplyFailure {
                    version: None,
                    at: 0,
                    message: message.clone(),
                })
            })
            .collect(),
    };
    let millis = started.elapsed().as_millis() as u64 / jobs.len().max(1) as u64;
    let mut outcomes = Vec::new();
    let mut records = Vec::new();
    for (job, result) in jobs.iter().zip(results) {
        let (from, to, outcome) = match result {
            Ok(a) => (a.from, a.to, Outcome::Migrated),
            Err(f) => (f.at, f.at, Outcome::Failed(f.message)),
        };
        if let Record::Placement(tenant) = &job.record {
            let error = match &outcome {
                Outcome::Failed(e) => Some(e.clone()),
                _ => None,
            };
            records.push((*tenant, to, error));
        }
        outcomes.push(TargetOutcome {
            label: job.target.label.clone(),
            kind: job.target.kind,
            cluster: job.target.cluster.name.to_string(),
            tenant: job.target.tenant,
            from,
            to,
            outcome,
            millis,
        });
    }
    // One directory write per batch.
    if let Err(e) = dir
        .set_placement_migrations(&jobs[0].target.service, &records)
        .await
    {
        tracing::error!(error = %e, "recording migration outcomes failed");
    }
    outcomes
}

async fn run_one(
    dir: &Directory,
    job: &Job,
    plans: &[MigrationPlan],
    opts: &MigrateOptions,
    connections: &mut HashMap<(String, String), AdminConn>,
) -> TargetOutcome {
    let started = Instant::now();
    let target = &job.target;
    let key = (target.cluster.name.to_string(), target.database.clone());
    let mut result = TargetOutcome {
        label: target.label.clone(),
        kind: target.kind,
        cluster: target.cluster.name.to_string(),
        tenant: target.tenant,
        from: 0,
        to: 0,
        outcome: Outcome::Migrated,
        millis: 0,
    };
    let client = match connection(connections, target).await {
        Ok(client) => client,
        Err(message) => {
            result.outcome = Outcome::Failed(message);
            record(dir, job, &result).await;
            return result;
        }
    };
    if opts.dry_run {
        match applied_versions(client, target).await.and_then(|a| {
            let from = a.last().map(|x| x.0).unwrap_or(0);
            pending(&a, plans).map(|p| (from, p.iter().map(|m| m.version).collect::<Vec<_>>()))
        }) {
            Ok((from, todo)) => {
                result.from = from;
                result.to = from;
                result.outcome = Outcome::WouldApply(todo);
            }
            Err(e) => result.outcome = Outcome::Failed(e),
        }
    } else {
        if matches!(
            target.kind,
            TargetKind::Pool | TargetKind::Template | TargetKind::Database
        ) {
            // Newer Bulkhead helpers reach existing databases on the next migration run.
            if let Err(e) = client.batch_execute(HELPERS_SQL).await {
                result.outcome = Outcome::Failed(crate::error::describe(&e));
            } else if target.kind == TargetKind::Pool {
                // A pool database made before signed contexts gets its key.
                let group = crate::naming::runtime_group(&target.service);
                let keyed = match dir.gateway_role().await {
                    Ok(gw) => crate::service_db::ensure_context_key(client, &group, &gw)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(message) = keyed {
                    result.outcome = Outcome::Failed(message);
                }
            }
        }
        if result.outcome == Outcome::Migrated {
            match apply_pending(client, target, plans, opts.apply).await {
                Ok(applied) => {
                    result.from = applied.from;
                    result.to = applied.to;
                }
                Err(f) => {
                    result.from = f.at;
                    result.to = f.at;
                    result.outcome = Outcome::Failed(f.message);
                }
            }
        }
        record(dir, job, &result).await;
    }
    if target.kind == TargetKind::Template {
        // CREATE DATABASE ... TEMPLATE needs the template free of connections.
        connections.remove(&key);
    }
    result.millis = started.elapsed().as_millis() as u64;
    result
}

async fn record(dir: &Directory, job: &Job, result: &TargetOutcome) {
    let error = match &result.outcome {
        Outcome::Failed(e) => Some(e.as_str()),
        _ => None,
    };
    let target = &job.target;
    let recorded = match &job.record {
        Record::ServiceDb(kind) => {
            dir.set_service_database_version(
                &target.service,
                &target.cluster.name,
                *kind,
                result.to,
                error,
            )
            .await
        }
        Record::Placement(tenant) => {
            dir.set_placement_migration(&target.service, tenant, result.to, error)
                .await
        }
    };
    if let Err(e) = recorded {
        tracing::error!(target = %result.label, error = %e, "recording a migration outcome failed");
    }
}

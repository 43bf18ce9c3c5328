//! Applying pending migrations to one target over one connection: one transaction per
//! migration (statement by statement when a statement cannot run in a transaction block),
//! under a `lock_timeout` with bounded retries so a migration never queues behind a long
//! transaction and stalls the tenant's traffic.

use std::time::Duration;

use tokio_postgres::Client;

use super::plan::{MigrationPlan, PlannedStatement};
use super::target::Target;
use crate::error::describe;

/// How to apply.
#[derive(Debug, Clone, Copy)]
pub struct ApplySettings {
    /// `lock_timeout` for every statement.
    pub lock_timeout: Duration,
    /// How many times a migration that hit the lock timeout is retried.
    pub lock_retries: u32,
}

impl Default for ApplySettings {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(2),
            lock_retries: 5,
        }
    }
}

/// What applying did to one target.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Version before.
    pub from: i64,
    /// Version after.
    pub to: i64,
    /// Versions applied now.
    pub versions: Vec<i64>,
}

/// Why a target could not be migrated.
#[derive(Debug, Clone)]
pub struct ApplyFailure {
    /// The version that failed, if one did.
    pub version: Option<i64>,
    /// The version the target is at.
    pub at: i64,
    /// What went wrong.
    pub message: String,
}

/// The migrations applied at a target and their checksums.
pub async fn applied_versions(
    client: &Client,
    target: &Target,
) -> Result<Vec<(i64, String)>, String> {
    let rows = client
        .query(
            "SELECT version, checksum FROM bulkhead.applied_migrations WHERE target = $1 ORDER BY version",
            &[&target.key()],
        )
        .await
        .map_err(|e| describe(&e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The plans not yet applied at a target; refuses a target whose applied migrations differ
/// from the registered ones.
pub fn pending<'a>(
    applied: &[(i64, String)],
    plans: &'a [MigrationPlan],
) -> Result<Vec<&'a MigrationPlan>, String> {
    for (version, checksum) in applied {
        match plans.iter().find(|p| p.version == *version) {
            Some(p) if p.checksum == *checksum => {}
            Some(p) => {
                return Err(format!(
                    "V{}__{} was applied here with different content (checksum {checksum}, registered {})",
                    p.version, p.name, p.checksum
                ))
            }
            None => return Err(format!("V{version} is applied here but is not registered for the service")),
        }
    }
    Ok(plans
        .iter()
        .filter(|p| !applied.iter().any(|(v, _)| *v == p.version))
        .collect())
}

/// Applies every pending migration to `target`, in order; stops at the first failure.
pub async fn apply_pending(
    client: &mut Client,
    target: &Target,
    plans: &[MigrationPlan],
    settings: ApplySettings,
) -> Result<Applied, ApplyFailure> {
    let applied = applied_versions(client, target)
        .await
        .map_err(|message| ApplyFailure {
            version: None,
            at: 0,
            message,
        })?;
    let from = applied.last().map(|a| a.0).unwrap_or(0);
    let todo = pending(&applied, plans).map_err(|message| ApplyFailure {
        version: None,
        at: from,
        message,
    })?;
    let mut result = Applied {
        from,
        to: from,
        versions: Vec::new(),
    };
    for plan in todo {
        let mut attempt = 0;
        loop {
            match apply_one(client, target, plan, settings).await {
                Ok(()) => break,
                Err((message, true)) if attempt < settings.lock_retries => {
                    attempt += 1;
                    tracing::info!(target = %target.label, version = plan.version, attempt, "lock timeout, retrying: {message}");
                    tokio::time::sleep(Duration::from_millis(100 * (1 << attempt.min(5)))).await;
                }
                Err((message, _)) => {
                    return Err(ApplyFailure {
                        version: Some(plan.version),
                        at: result.to,
                        message: format!("V{}__{}: {message}", plan.version, plan.name),
                    })
                }
            }
        }
        result.to = plan.version;
        result.versions.push(plan.version);
    }
    Ok(result)
}

/// Applies one migration. On failure returns the message and whether it was a lock timeout.
async fn apply_one(
    client: &mut Client,
    target: &Target,
    plan: &MigrationPlan,
    settings: ApplySettings,
) -> Result<(), (String, bool)> {
    let fail = |e: tokio_postgres::Error| {
        let lock = e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE);
        (describe(&e), lock)
    };
    let lock_ms = settings.lock_timeout.as_millis();
    let statements: Vec<(&PlannedStatement, String)> = plan
        .statements
        .iter()
        .filter_map(|s| target.search_path(s.class).map(|path| (s, path)))
        .collect();
    if plan.transactional {
        let tx = client.transaction().await.map_err(fail)?;
        tx.batch_execute(&format!("SET LOCAL lock_timeout = '{lock_ms}ms'"))
            .await
            .map_err(fail)?;
        for (stmt, path) in &statements {
            tx.batch_execute(&format!("SET LOCAL search_path = {path}; {}", stmt.sql))
                .await
                .map_err(fail)?;
        }
        seal(tx, target, plan).await?;
    } else {
        for (stmt, path) in &statements {
            client
                .batch_execute(&format!(
                    "SET lock_timeout = '{lock_ms}ms'; SET search_path = {path}"
                ))
                .await
                .map_err(fail)?;
            let run = client.batch_execute(&stmt.sql).await;
            let _ = client
                .batch_execute("RESET lock_timeout; RESET search_path")
                .await;
            run.map_err(fail)?;
        }
        let tx = client.transaction().await.map_err(fail)?;
        seal(tx, target, plan).await?;
    }
    Ok(())
}

/// Ends a migration's transaction: privileges brought in line when needed, the version
/// recorded, committed.
async fn seal(
    tx: tokio_postgres::Transaction<'_>,
    target: &Target,
    plan: &MigrationPlan,
) -> Result<(), (String, bool)> {
    let fail = |e: tokio_postgres::Error| {
        let lock = e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE);
        (describe(&e), lock)
    };
    if needs_securing(target, plan) {
        target
            .secure(&tx)
            .await
            .map_err(|e| (e.to_string(), false))?;
    }
    record(&tx, target, plan).await.map_err(fail)?;
    tx.commit().await.map_err(fail)
}

/// Pool, template and database targets are always re-secured (their check is one cheap
/// query); schema tenants only when the migration could have changed their privileges.
fn needs_securing(target: &Target, plan: &MigrationPlan) -> bool {
    target.kind != super::target::TargetKind::Schema || plan.changes_privileges
}

async fn record(
    tx: &tokio_postgres::Transaction<'_>,
    target: &Target,
    plan: &MigrationPlan,
) -> Result<u64, tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO bulkhead.applied_migrations (target, version, name, checksum) VALUES ($1, $2, $3, $4)",
        &[&target.key(), &plan.version, &plan.name, &plan.checksum],
    )
    .await
}

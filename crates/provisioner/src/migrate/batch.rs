//! Many schema tenants of one pool database in one transaction: a savepoint per tenant, so a
//! failing tenant is rolled back alone and reported while the others commit. One round trip
//! per tenant, one commit, one version read and one privilege check per batch, instead of
//! several round trips and a commit per tenant.
//!
//! A batch holds the locks of all its tenants until it commits, so batches are small
//! (`max_locks_per_transaction` bounds how many schemas one transaction may touch). Tenants
//! that hit the lock timeout, and any tenant of a batch that fails as a whole, are retried
//! one by one with [`apply_pending`], which retries lock timeouts with backoff.

use std::collections::HashMap;

use tokio_postgres::Client;

use super::apply::{apply_pending, pending, Applied, ApplyFailure, ApplySettings};
use super::plan::MigrationPlan;
use super::target::{secure_schemas, Target};
use crate::error::describe;

/// How many schema tenants one transaction migrates.
pub const BATCH_SIZE: usize = 32;

/// Applies pending migrations to schema `targets` (all in the database `client` is connected
/// to). Returns one result per target, in order.
pub async fn apply_batch(
    client: &mut Client,
    targets: &[&Target],
    plans: &[MigrationPlan],
    settings: ApplySettings,
) -> Vec<Result<Applied, ApplyFailure>> {
    let mut results: Vec<Option<Result<Applied, ApplyFailure>>> = vec![None; targets.len()];
    let mut one_by_one: Vec<usize> = Vec::new();
    match plan_batch(client, targets, plans).await {
        Err(_) => one_by_one.extend(0..targets.len()),
        Ok(work) => {
            let mut batch = Vec::new();
            for (i, item) in work.into_iter().enumerate() {
                match item {
                    Err(failure) => results[i] = Some(Err(failure)),
                    Ok((from, todo)) if todo.is_empty() => {
                        results[i] = Some(Ok(Applied {
                            from,
                            to: from,
                            versions: Vec::new(),
                        }))
                    }
                    Ok((_, todo)) if todo.iter().any(|p| !p.transactional) => one_by_one.push(i),
                    Ok((from, todo)) => batch.push((i, from, todo)),
                }
            }
            match run_batch(client, targets, &batch, settings).await {
                Ok(outcome) => {
                    for (i, r) in outcome.done {
                        results[i] = Some(r);
                    }
                    one_by_one.extend(outcome.retry);
                }
                Err(reason) => {
                    tracing::warn!(%reason, tenants = batch.len(), "batched migration rolled back; migrating its tenants one by one");
                    one_by_one.extend(batch.iter().map(|b| b.0));
                }
            }
        }
    }
    for i in one_by_one {
        results[i] = Some(apply_pending(client, targets[i], plans, settings).await);
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(ApplyFailure {
                    version: None,
                    at: 0,
                    message: "not attempted".into(),
                })
            })
        })
        .collect()
}

type Work<'a> = Vec<Result<(i64, Vec<&'a MigrationPlan>), ApplyFailure>>;

/// Reads what every target has applied, in one query, and works out what each still needs.
async fn plan_batch<'a>(
    client: &Client,
    targets: &[&Target],
    plans: &'a [MigrationPlan],
) -> Result<Work<'a>, String> {
    let keys: Vec<&str> = targets.iter().map(|t| t.key()).collect();
    let rows = client
        .query(
            "SELECT target, version, checksum FROM bulkhead.applied_migrations WHERE target = ANY($1) ORDER BY version",
            &[&keys],
        )
        .await
        .map_err(|e| describe(&e))?;
    let mut applied: HashMap<String, Vec<(i64, String)>> = HashMap::new();
    for r in rows {
        applied
            .entry(r.get(0))
            .or_default()
            .push((r.get(1), r.get(2)));
    }
    Ok(keys
        .iter()
        .map(|k| {
            let mine = applied.remove(*k).unwrap_or_default();
            let from = mine.last().map(|a| a.0).unwrap_or(0);
            pending(&mine, plans)
                .map(|todo| (from, todo))
                .map_err(|message| ApplyFailure {
                    version: None,
                    at: from,
                    message,
                })
        })
        .collect())
}

struct BatchOutcome {
    done: Vec<(usize, Result<Applied, ApplyFailure>)>,
    retry: Vec<usize>,
}

/// Runs the batch in one transaction. `Err(reason)` means the transaction as a whole failed
/// and nothing of it was committed.
async fn run_batch(
    client: &mut Client,
    targets: &[&Target],
    batch: &[(usize, i64, Vec<&MigrationPlan>)],
    settings: ApplySettings,
) -> Result<BatchOutcome, String> {
    let mut outcome = BatchOutcome {
        done: Vec::new(),
        retry: Vec::new(),
    };
    if batch.is_empty() {
        return Ok(outcome);
    }
    let lock_ms = settings.lock_timeout.as_millis();
    if let Err(e) = client
        .batch_execute(&format!("BEGIN; SET LOCAL lock_timeout = '{lock_ms}ms'"))
        .await
    {
        return abort(client, describe(&e)).await;
    }
    let mut succeeded = Vec::new();
    for (i, from, todo) in batch {
        let target = targets[*i];
        let mut sql = String::from("SAVEPOINT bulkhead_target;\n");
        for plan in todo {
            for stmt in &plan.statements {
                if let Some(path) = target.search_path(stmt.class) {
                    sql.push_str(&format!("SET LOCAL search_path = {path};\n{};\n", stmt.sql));
                }
            }
        }
        sql.push_str("RELEASE SAVEPOINT bulkhead_target");
        match client.batch_execute(&sql).await {
            Ok(()) => succeeded.push((*i, *from, todo)),
            Err(e) => {
                if let Err(e) = client
                    .batch_execute(
                        "ROLLBACK TO SAVEPOINT bulkhead_target; RELEASE SAVEPOINT bulkhead_target",
                    )
                    .await
                {
                    return abort(client, describe(&e)).await;
                }
                if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
                    outcome.retry.push(*i);
                } else {
                    let failed = todo.first().map(|p| (p.version, p.name.as_str()));
                    outcome.done.push((
                        *i,
                        Err(ApplyFailure {
                            version: failed.map(|f| f.0),
                            at: *from,
                            message: match failed {
                                Some((v, n)) if todo.len() == 1 => {
                                    format!("V{v}__{n}: {}", describe(&e))
                                }
                                _ => format!("{}: {}", versions(todo), describe(&e)),
                            },
                        }),
                    ));
                }
            }
        }
    }
    // Listing a schema's relations scans pg_class, which grows with every tenant: only do
    // it when a migration of the batch could have changed what the tenants may touch.
    let secured: Vec<&Target> = succeeded
        .iter()
        .filter(|(_, _, todo)| todo.iter().any(|p| p.changes_privileges))
        .map(|(i, _, _)| targets[*i])
        .collect();
    if let Err(e) = secure_schemas(&*client, &secured).await {
        return abort(client, e.to_string()).await;
    }
    let (mut keys, mut versions_col, mut names, mut sums) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, _, todo) in &succeeded {
        for plan in todo.iter() {
            keys.push(targets[*i].key());
            versions_col.push(plan.version);
            names.push(plan.name.as_str());
            sums.push(plan.checksum.as_str());
        }
    }
    let recorded = client
        .execute(
            "INSERT INTO bulkhead.applied_migrations (target, version, name, checksum)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[])",
            &[&keys, &versions_col, &names, &sums],
        )
        .await;
    if let Err(e) = recorded {
        return abort(client, describe(&e)).await;
    }
    if let Err(e) = client.batch_execute("COMMIT").await {
        return abort(client, describe(&e)).await;
    }
    for (i, from, todo) in succeeded {
        outcome.done.push((
            i,
            Ok(Applied {
                from,
                to: todo.last().map(|p| p.version).unwrap_or(from),
                versions: todo.iter().map(|p| p.version).collect(),
            }),
        ));
    }
    Ok(outcome)
}

fn versions(todo: &[&MigrationPlan]) -> String {
    todo.iter()
        .map(|p| format!("V{}__{}", p.version, p.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rolls the batch's transaction back; the caller retries its tenants one by one.
async fn abort(client: &Client, reason: String) -> Result<BatchOutcome, String> {
    let _ = client.batch_execute("ROLLBACK").await;
    Err(reason)
}

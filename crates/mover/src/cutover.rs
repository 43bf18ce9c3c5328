//! The cutover's drain: with the tenant's new transactions held at the gateways, wait for
//! its transactions still open at the source to end, and past the bound end them.
//!
//! The gateway begins `application_name` of every backend session holding a tenant's context
//! with the tenant's (opaque) runtime role (see `bulkhead_provisioner::naming::session_tag`),
//! so the source's `pg_stat_activity` shows which of them are inside a transaction. In database mode every session of the tenant's database is
//! the tenant's.

use std::time::{Duration, Instant};

use bulkhead_model::{Mode, TenantId};

use bulkhead_provisioner::naming::session_tag;

use crate::place::Side;
use crate::MoveError;

/// The tenant's sessions at `side` inside a transaction: (pid, state).
async fn open_transactions(side: &Side) -> Result<Vec<i32>, MoveError> {
    let client = side.connect().await?;
    let whole_database = side.place.mode == Mode::Database;
    let rows = client
        .query(
            "SELECT pid FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'
                AND state IS DISTINCT FROM 'idle' AND xact_start IS NOT NULL
                AND ($2 OR starts_with(application_name, $3))",
            &[
                &side.place.database,
                &whole_database,
                &session_tag(&side.place.role),
            ],
        )
        .await
        .map_err(MoveError::sql("looking for the tenant's open transactions"))?;
    client.release();
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Waits up to `bound` for the tenant's open transactions at `side` to end, then
/// terminates the sessions of those still open; returns how many were ended that way.
pub async fn drain(side: &Side, tenant: &TenantId, bound: Duration) -> Result<usize, MoveError> {
    let started = Instant::now();
    let mut nap = Duration::from_millis(2);
    loop {
        let open = open_transactions(side).await?;
        if open.is_empty() {
            return Ok(0);
        }
        if started.elapsed() >= bound {
            let client = side.connect().await?;
            client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid",
                    &[&open],
                )
                .await
                .map_err(MoveError::sql(
                    "ending the tenant's transactions past the bound",
                ))?;
            client.release();
            tracing::warn!(%tenant, sessions = open.len(), "cutover ended transactions that outlasted the drain bound");
            // Wait for them to be gone, so their locks and writes are settled.
            while !open_transactions(side).await?.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            return Ok(open.len());
        }
        tokio::time::sleep(nap).await;
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

/// A WAL position at the source before which every transaction committed so far is
/// flushed, so logical decoding (which reads flushed WAL only) can see it. With
/// `synchronous_commit = off` a commit may sit unflushed for a while; a transaction that
/// writes WAL (a logical message, which the move's decoding does not ask for) and commits
/// synchronously flushes everything before it. (A transaction that wrote no WAL commits
/// without a flush, whatever `synchronous_commit` says.)
pub async fn flushed_lsn(side: &Side) -> Result<String, MoveError> {
    let client = side.connect().await?;
    client
        .batch_execute(
            "BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_catalog.pg_logical_emit_message(true, 'bulkhead', 'cutover'); COMMIT;",
        )
        .await
        .map_err(MoveError::sql("flushing the source's WAL"))?;
    let lsn: String = client
        .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
        .await
        .map_err(MoveError::sql("reading the source's WAL position"))?
        .get(0);
    client.release();
    Ok(lsn)
}

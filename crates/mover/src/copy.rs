//! The snapshot copy of one table: the tenant's rows stream from the source's `COPY ... TO
//! STDOUT` straight into the target's `COPY ... FROM STDIN` (binary format, never whole in
//! memory), replacing whatever an interrupted earlier copy left at the target, in one target
//! transaction: a table is either copied whole or not at all.

use std::time::Instant;

use bulkhead_model::TenantId;
use bulkhead_provisioner::naming::ident;
use futures_util::{SinkExt, StreamExt};

use crate::place::{Side, Table};
use crate::{Event, MoveError, MoveProgress};

/// How often the copy reports progress.
const REPORT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Copies one table's rows of `tenant`; returns the number of rows.
pub async fn copy_table(
    source: &Side,
    target: &Side,
    table: &Table,
    tenant: &TenantId,
    progress: &dyn MoveProgress,
) -> Result<u64, MoveError> {
    let started = Instant::now();
    // Into shared tables only rows under the tenant's own id go, whatever the source holds
    // (a row under another id left out makes parity fail: the move stops, nothing leaks).
    let source_filter = if target.is_shared() {
        format!(" WHERE tenant_id = '{tenant}'")
    } else {
        source.tenant_filter(tenant)
    };
    let columns = table
        .columns
        .iter()
        .map(|c| ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let src = source.connect().await?;
    let expected: i64 = src
        .query_one(
            &format!(
                "SELECT count(*) FROM {}{}",
                source.qualified(&table.name),
                source_filter
            ),
            &[],
        )
        .await
        .map_err(MoveError::sql(format!("counting rows of {}", table.name)))?
        .get(0);
    let mut dst = target.connect().await?;
    let tx = dst
        .transaction()
        .await
        .map_err(MoveError::sql("starting the target's copy transaction"))?;
    tx.batch_execute(&format!(
        "SET LOCAL session_replication_role = replica; DELETE FROM {}{}",
        target.qualified(&table.name),
        target.tenant_filter(tenant)
    ))
    .await
    .map_err(MoveError::sql(format!(
        "clearing {} at the target",
        table.name
    )))?;
    let out = src
        .copy_out(&format!(
            "COPY (SELECT {columns} FROM {}{}) TO STDOUT (FORMAT binary)",
            source.qualified(&table.name),
            source_filter
        ))
        .await
        .map_err(MoveError::sql(format!(
            "reading {} at the source",
            table.name
        )))?;
    let sink = tx
        .copy_in(&format!(
            "COPY {} ({columns}) FROM STDIN (FORMAT binary)",
            target.qualified(&table.name)
        ))
        .await
        .map_err(MoveError::sql(format!(
            "writing {} at the target",
            table.name
        )))?;
    futures_util::pin_mut!(out);
    futures_util::pin_mut!(sink);
    let (mut bytes, mut last) = (0u64, Instant::now());
    while let Some(chunk) = out.next().await {
        let chunk = chunk.map_err(MoveError::sql(format!(
            "reading {} at the source",
            table.name
        )))?;
        bytes += chunk.len() as u64;
        sink.send(chunk).await.map_err(MoveError::sql(format!(
            "writing {} at the target",
            table.name
        )))?;
        if last.elapsed() >= REPORT_EVERY {
            last = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            progress.event(&Event::Copying {
                table: table.name.clone(),
                bytes,
                rows_expected: expected as u64,
                bytes_per_second: bytes as f64 / secs,
            });
        }
    }
    let rows = sink.finish().await.map_err(MoveError::sql(format!(
        "writing {} at the target",
        table.name
    )))?;
    tx.commit().await.map_err(MoveError::sql(format!(
        "committing {} at the target",
        table.name
    )))?;
    src.release();
    dst.release();
    let secs = started.elapsed().as_secs_f64();
    progress.event(&Event::Copied {
        table: table.name.clone(),
        rows,
        seconds: secs,
    });
    Ok(rows)
}

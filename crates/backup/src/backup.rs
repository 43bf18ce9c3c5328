//! Taking a backup: the tenant's tables in one consistent snapshot (a REPEATABLE READ, READ
//! ONLY transaction at its place), each streamed with binary COPY into the archive. Only the
//! tenant's rows are read (shared tables through `WHERE tenant_id = ...`).

use std::io::Write;
use std::time::Instant;

use bulkhead_directory::{Directory, Tenant, TenantRef};
use bulkhead_model::ServiceName;
use bulkhead_mover::place::Side;
use bulkhead_provisioner::naming::ident;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::archive::{Header, Manifest, TableEntry, TableStart, Writer};
use crate::keys::{data_key, MasterKey};
use crate::{BackupError, Event, Progress};

/// Plain bytes per data frame.
const CHUNK: usize = 1 << 20;

/// Writes a backup of the tenant to `out`; returns the manifest.
pub async fn backup<W: Write>(
    dir: &Directory,
    master: &MasterKey,
    tenant: &TenantRef,
    service: Option<&ServiceName>,
    out: W,
    progress: &dyn Progress,
) -> Result<(Manifest, W), BackupError> {
    let tenant = dir.tenant(tenant).await?;
    if dir.erasure(&tenant.id.to_string()).await?.is_some() {
        return Err(BackupError::Refused(format!(
            "tenant {} was erased",
            tenant.slug
        )));
    }
    let (service, _, side) = crate::place::current(dir, &tenant, service).await?;
    backup_from(dir, master, &tenant, &service.name, &side, out, progress).await
}

/// Writes a backup of the tenant's rows at `side` to `out`: its place now, or the place it
/// had in a server restored to a point in time (point-in-time recovery reads it there).
pub async fn backup_from<W: Write>(
    dir: &Directory,
    master: &MasterKey,
    tenant: &Tenant,
    service: &ServiceName,
    side: &Side,
    out: W,
    progress: &dyn Progress,
) -> Result<(Manifest, W), BackupError> {
    let key = data_key(dir, master, &tenant.id).await?;
    let version = side.applied_version().await?;
    let header = Header {
        format: 1,
        tenant_id: tenant.id.to_string(),
        slug: tenant.slug.to_string(),
        service: service.to_string(),
        version,
        mode: side.place.mode.to_string(),
        created_at: chrono::Utc::now().to_rfc3339(),
    };
    let tables = side.tables().await?;
    let mut writer = Writer::new(out, &key, &header)?;
    let mut client = side.connect().await?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(BackupError::sql("starting the backup's snapshot"))?;
    let mut entries = Vec::new();
    for t in &tables {
        let started = Instant::now();
        let columns = t
            .columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        // A tenant may write any tenant_id in its own schema or database; restored into
        // shared tables such rows would belong to another tenant, so a backup never
        // carries them (checked inside the snapshot, so none slips in meanwhile).
        let foreign = if !side.is_shared() && t.columns.iter().any(|c| c == "tenant_id") {
            format!(
                "count(*) FILTER (WHERE tenant_id IS DISTINCT FROM '{}')",
                tenant.id
            )
        } else {
            "0::bigint".to_string()
        };
        let counted = tx
            .query_one(
                &format!(
                    "SELECT count(*), {foreign} FROM {}{}",
                    side.qualified(&t.name),
                    side.tenant_filter(&tenant.id)
                ),
                &[],
            )
            .await
            .map_err(BackupError::sql(format!("counting {}", t.name)))?;
        let (rows, foreign): (i64, i64) = (counted.get(0), counted.get(1));
        if foreign > 0 {
            return Err(BackupError::Refused(format!(
                "table {} has {foreign} rows whose tenant_id is not its own (tenant {}'s); correct or delete them before backing it up",
                t.name, tenant.slug
            )));
        }
        writer.table(&TableStart {
            name: t.name.clone(),
            columns: t.columns.clone(),
        })?;
        let stream = tx
            .copy_out(&format!(
                "COPY (SELECT {columns} FROM {}{}) TO STDOUT (FORMAT binary)",
                side.qualified(&t.name),
                side.tenant_filter(&tenant.id)
            ))
            .await
            .map_err(BackupError::sql(format!("reading {}", t.name)))?;
        futures_util::pin_mut!(stream);
        let (mut sha, mut buf, mut bytes) = (Sha256::new(), Vec::with_capacity(CHUNK), 0u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(BackupError::sql(format!("reading {}", t.name)))?;
            sha.update(&chunk);
            bytes += chunk.len() as u64;
            buf.extend_from_slice(&chunk);
            if buf.len() >= CHUNK {
                writer.data(&buf)?;
                buf.clear();
            }
        }
        if !buf.is_empty() {
            writer.data(&buf)?;
        }
        writer.end_table()?;
        progress.event(&Event::Table {
            table: t.name.clone(),
            rows: rows as u64,
            seconds: started.elapsed().as_secs_f64(),
        });
        entries.push(TableEntry {
            name: t.name.clone(),
            columns: t.columns.clone(),
            rows: rows as u64,
            bytes,
            sha256: hex::encode(sha.finalize()),
        });
    }
    tx.commit()
        .await
        .map_err(BackupError::sql("ending the backup's snapshot"))?;
    client.release();
    let manifest = Manifest {
        header,
        tables: entries,
        finished_at: chrono::Utc::now().to_rfc3339(),
    };
    let out = writer.finish(&manifest)?;
    tracing::info!(tenant = %tenant.id, tables = manifest.tables.len(), "tenant backed up");
    Ok((manifest, out))
}

//! Restoring: the archive replaces the tenant's rows at its current place (whatever its mode
//! now) in one transaction there, committed only after every frame authenticated and every
//! table's row count and SHA-256 matched the manifest; anything wrong rolls it back and the
//! old rows stay. Rows of another tenant's archive (a clone, `--as-new`) get the new tenant's
//! id on the way in.

use std::collections::HashMap;
use std::io::Read;
use std::pin::Pin;
use std::time::Instant;

use bulkhead_directory::{Directory, Tenant};
use bulkhead_model::{Mode, TenantId};
use bulkhead_mover::place::Side;
use bulkhead_provisioner::naming::ident;
use futures_util::SinkExt;
use sha2::{Digest, Sha256};
use tokio_postgres::{CopyInSink, Transaction};

use crate::archive::{read_header, Frame, Header, Reader, TableStart};
use crate::keys::{existing_data_key, MasterKey};
use crate::{BackupError, Event, Progress};

/// What a restore did, per table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    /// The tenant restored into.
    pub tenant_id: TenantId,
    /// Its mode now.
    pub mode: Mode,
    /// The archive's tenant.
    pub from_tenant: String,
    /// The archive's version.
    pub version: i64,
    /// (table, rows).
    pub tables: Vec<(String, u64)>,
}

impl Restored {
    /// What the audit log keeps of it.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "mode": self.mode.to_string(), "from_tenant": self.from_tenant, "version": self.version,
            "rows": self.tables.iter().map(|(_, n)| n).sum::<u64>(),
        })
    }
}

/// Reads the archive's header (to find its tenant before choosing where it goes).
pub fn header_of(input: &mut impl Read) -> Result<Header, BackupError> {
    Ok(read_header(input)?.0)
}

struct Current {
    name: String,
    sink: Pin<Box<CopyInSink<bytes::Bytes>>>,
    sha: Sha256,
    via_temp: Option<String>,
    columns: Vec<String>,
    started: Instant,
}

/// Restores `input` into `tenant`'s current place. `allow_other`: the archive may be another
/// tenant's (a clone); otherwise it must be this tenant's own.
pub async fn restore(
    dir: &Directory,
    master: &MasterKey,
    tenant: &Tenant,
    mut input: impl Read,
    allow_other: bool,
    progress: &dyn Progress,
) -> Result<Restored, BackupError> {
    let (header, header_hash) = read_header(&mut input)?;
    let from: TenantId = header
        .tenant_id
        .parse()
        .map_err(|_| BackupError::Corrupt("its header names no tenant".into()))?;
    if from != tenant.id && !allow_other {
        return Err(BackupError::Refused(format!(
            "this is a backup of tenant {} ({}), not of {}; restore it as a new tenant with --as-new SLUG",
            header.slug, header.tenant_id, tenant.slug
        )));
    }
    let service: bulkhead_model::ServiceName = header
        .service
        .parse()
        .map_err(|_| BackupError::Corrupt("its header names no service".into()))?;
    let (_, placement, side) = crate::place::current(dir, tenant, Some(&service)).await?;
    let now = side.applied_version().await?;
    if header.version > now {
        return Err(BackupError::Refused(format!(
            "the backup is at migration version {} and tenant {} at {now}: migrate the service first (`bulkhead migrate {service}`)",
            header.version, tenant.slug
        )));
    }
    let key = existing_data_key(dir, master, &from).await?;
    let mut reader = Reader::new(input, &key, header_hash);
    let current_tables: HashMap<String, Vec<String>> = side
        .tables()
        .await?
        .into_iter()
        .map(|t| (t.name, t.columns))
        .collect();
    let mut client = side.connect().await?;
    let tx = client
        .transaction()
        .await
        .map_err(BackupError::sql("starting the restore"))?;
    tx.batch_execute(&clear_sql(&side, &tenant.id, current_tables.keys()))
        .await
        .map_err(BackupError::sql(
            "clearing the tenant's rows for the restore",
        ))?;
    // An archive older than the place: its rows go into a scratch schema made at the
    // archive's version, the newer migrations run there over them, and the result moves in.
    let scratch = if header.version < now {
        let svc = dir.service(&service).await?;
        let plans = bulkhead_provisioner::migrate::plans_for(dir, &svc).await?;
        let newer: Vec<_> = plans
            .iter()
            .filter(|p| p.version > header.version && p.version <= now)
            .collect();
        if let Some(p) = newer.iter().find(|p| !p.transactional) {
            return Err(BackupError::Refused(format!(
                "the backup is at version {} and migration V{}__{} cannot run inside the restore's transaction (CREATE INDEX CONCURRENTLY or similar), so its rows cannot be migrated forward",
                header.version, p.version, p.name
            )));
        }
        let mut sql = format!("CREATE SCHEMA {SCRATCH}; SET LOCAL search_path = {SCRATCH}, ref;");
        for p in plans.iter().filter(|p| p.version <= header.version) {
            push_tenant_statements(&mut sql, p);
        }
        tx.batch_execute(&sql)
            .await
            .map_err(BackupError::sql(format!(
                "making the archive's version {} in a scratch schema",
                header.version
            )))?;
        let mut forward = format!("SET LOCAL search_path = {SCRATCH}, ref;");
        for p in newer {
            push_tenant_statements(&mut forward, p);
        }
        Some(forward)
    } else {
        None
    };
    let mut current: Option<Current> = None;
    let mut done: Vec<(String, u64, String)> = Vec::new();
    loop {
        match reader.next_frame()? {
            Frame::Table(start) => {
                if current.is_some() {
                    return Err(BackupError::Corrupt("a table starts inside another".into()));
                }
                // At the place's version the archive's tables and columns must be there; an
                // older archive is checked by its own version's tables in the scratch schema.
                if scratch.is_none() {
                    let Some(columns_now) = current_tables.get(&start.name) else {
                        return Err(BackupError::Refused(format!(
                            "the backup has table {}, which the tenant's place no longer has",
                            start.name
                        )));
                    };
                    if let Some(missing) = start.columns.iter().find(|c| !columns_now.contains(c)) {
                        return Err(BackupError::Refused(format!(
                            "the backup's table {} has column {missing}, which the tenant's place no longer has",
                            start.name
                        )));
                    }
                }
                current = Some(
                    begin_table(&tx, &side, &start, from != tenant.id, scratch.is_some()).await?,
                );
            }
            Frame::Data(raw) => {
                let c = current
                    .as_mut()
                    .ok_or_else(|| BackupError::Corrupt("rows outside a table".into()))?;
                c.sha.update(&raw);
                c.sink
                    .send(bytes::Bytes::from(raw))
                    .await
                    .map_err(BackupError::sql(format!("writing {}", c.name)))?;
            }
            Frame::End => {
                let c = current.take().ok_or_else(|| {
                    BackupError::Corrupt("a table ends that did not start".into())
                })?;
                end_table(&tx, &side, c, &tenant.id, &mut done, progress).await?;
            }
            Frame::Manifest(m) => {
                if current.is_some() {
                    return Err(BackupError::Corrupt(
                        "the manifest comes inside a table".into(),
                    ));
                }
                if m.header != header {
                    return Err(BackupError::Corrupt(
                        "the manifest does not match the header".into(),
                    ));
                }
                let listed: Vec<(String, u64, String)> = m
                    .tables
                    .iter()
                    .map(|t| (t.name.clone(), t.rows, t.sha256.clone()))
                    .collect();
                if listed != done {
                    return Err(BackupError::Corrupt(
                        "rows or checksums differ from the manifest".into(),
                    ));
                }
            }
            Frame::Finish => break,
        }
    }
    if done.is_empty() && !current_tables.is_empty() {
        return Err(BackupError::Corrupt("it holds no table".into()));
    }
    if let Some(forward) = &scratch {
        tx.batch_execute(forward)
            .await
            .map_err(BackupError::sql("migrating the archive's rows forward"))?;
        let mut sql = String::new();
        for (name, columns) in &current_tables {
            let cols = columns
                .iter()
                .map(|c| ident(c))
                .collect::<Vec<_>>()
                .join(", ");
            let select = columns
                .iter()
                .map(|c| {
                    if c == "tenant_id" {
                        format!("'{}'::uuid", tenant.id)
                    } else {
                        ident(c)
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            sql.push_str(&format!(
                "INSERT INTO {} ({cols}) OVERRIDING SYSTEM VALUE SELECT {select} FROM {SCRATCH}.{};",
                side.qualified(name),
                ident(name)
            ));
        }
        sql.push_str(&format!("DROP SCHEMA {SCRATCH} CASCADE;"));
        tx.batch_execute(&sql)
            .await
            .map_err(BackupError::sql("moving the migrated rows into place"))?;
    }
    tx.commit()
        .await
        .map_err(BackupError::sql("committing the restore"))?;
    client.release();
    let names: Vec<String> = done.iter().map(|d| d.0.clone()).collect();
    bulkhead_mover::sequences::advance_past_rows(&side, &names, &tenant.id).await?;
    tracing::info!(tenant = %tenant.id, from = %from, tables = done.len(), "tenant restored");
    Ok(Restored {
        tenant_id: tenant.id,
        mode: placement.mode,
        from_tenant: header.tenant_id,
        version: header.version,
        tables: done.into_iter().map(|(n, r, _)| (n, r)).collect(),
    })
}

/// The scratch schema of a restore from an older archive (inside the restore's transaction).
const SCRATCH: &str = "bh_restore_scratch";

fn push_tenant_statements(sql: &mut String, plan: &bulkhead_provisioner::migrate::MigrationPlan) {
    for st in &plan.statements {
        if st.class == bulkhead_provisioner::migrate::StatementClass::Tenant {
            sql.push_str(&st.sql);
            sql.push_str(";\n");
        }
    }
}

/// Removes the tenant's rows from every table of its place (shared: its rows; schema and
/// database: all, in one TRUNCATE so foreign keys between them do not stand in the way).
fn clear_sql<'a>(
    side: &Side,
    tenant: &TenantId,
    tables: impl Iterator<Item = &'a String>,
) -> String {
    let mut sql = String::from("SET LOCAL session_replication_role = replica;");
    let names: Vec<String> = tables.map(|t| side.qualified(t)).collect();
    if names.is_empty() {
        return sql;
    }
    if side.is_shared() {
        for n in &names {
            sql.push_str(&format!(" DELETE FROM {n}{};", side.tenant_filter(tenant)));
        }
    } else {
        sql.push_str(&format!(" TRUNCATE {};", names.join(", ")));
    }
    sql
}

async fn begin_table(
    tx: &Transaction<'_>,
    side: &Side,
    start: &TableStart,
    rename: bool,
    scratch: bool,
) -> Result<Current, BackupError> {
    let cols = start
        .columns
        .iter()
        .map(|c| ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let (into, via_temp) = if scratch {
        // An older archive: into the scratch schema at its version (moved over after the
        // newer migrations ran there, see `forward`).
        (format!("{SCRATCH}.{}", ident(&start.name)), None)
    } else if rename {
        // Another tenant's rows: through a temporary table, to give them this tenant's id.
        tx.batch_execute(&format!(
            "CREATE TEMPORARY TABLE bh_restore ON COMMIT DROP AS SELECT {cols} FROM {} WITH NO DATA",
            side.qualified(&start.name)
        ))
        .await
        .map_err(BackupError::sql(format!("preparing {}", start.name)))?;
        ("bh_restore".to_string(), Some("bh_restore".to_string()))
    } else {
        (side.qualified(&start.name), None)
    };
    let sink = tx
        .copy_in(&format!("COPY {into} ({cols}) FROM STDIN (FORMAT binary)"))
        .await
        .map_err(BackupError::sql(format!("writing {}", start.name)))?;
    Ok(Current {
        name: start.name.clone(),
        sink: Box::pin(sink),
        sha: Sha256::new(),
        via_temp,
        columns: start.columns.clone(),
        started: Instant::now(),
    })
}

async fn end_table(
    tx: &Transaction<'_>,
    side: &Side,
    mut c: Current,
    tenant: &TenantId,
    done: &mut Vec<(String, u64, String)>,
    progress: &dyn Progress,
) -> Result<(), BackupError> {
    let rows = c
        .sink
        .as_mut()
        .finish()
        .await
        .map_err(BackupError::sql(format!("writing {}", c.name)))?;
    if let Some(temp) = &c.via_temp {
        let cols = c
            .columns
            .iter()
            .map(|x| ident(x))
            .collect::<Vec<_>>()
            .join(", ");
        let select = c
            .columns
            .iter()
            .map(|x| {
                if x == "tenant_id" {
                    format!("'{tenant}'::uuid")
                } else {
                    ident(x)
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        tx.batch_execute(&format!(
            "INSERT INTO {} ({cols}) OVERRIDING SYSTEM VALUE SELECT {select} FROM {temp}; DROP TABLE {temp};",
            side.qualified(&c.name)
        ))
        .await
        .map_err(BackupError::sql(format!("writing {}", c.name)))?;
    }
    progress.event(&Event::Table {
        table: c.name.clone(),
        rows,
        seconds: c.started.elapsed().as_secs_f64(),
    });
    done.push((c.name, rows, hex::encode(c.sha.finalize())));
    Ok(())
}

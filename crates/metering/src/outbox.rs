//! Harvesting the applications' own usage events.
//!
//! `SELECT bulkhead.usage('emails_sent', 1, 'order-42')` inserts into the outbox table
//! `bulkhead.usage_outbox` of the tenant's database, inside the caller's transaction: the
//! event commits or rolls back with the business write. Row-level security lets a tenant
//! insert only under its own id (the id `bulkhead.current_tenant()` vouches for), and the
//! primary key (tenant, key) drops a repeated key at once.
//!
//! The harvest reads outbox rows, records them as usage events keyed
//! `app:<tenant>:<key>` (idempotent), and only then deletes them from the outbox: a crash in
//! between harvests them again, and the keys keep them from counting twice. A row under a
//! tenant that is not placed in that database is never counted (it stays, and is reported).
//! A database made before the outbox existed gets it (and `bulkhead.usage()`) at its first
//! harvest.

use std::collections::HashSet;

use bulkhead_directory::{Directory, UsageEvent, UsageSource};
use bulkhead_model::TenantId;
use bulkhead_provisioner::admin_connect;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::places::{databases, Database};
use crate::MeteringError;

/// Rows taken per round trip.
const CHUNK: i64 = 5_000;

/// What a harvest did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Harvest {
    /// Databases visited.
    pub databases: usize,
    /// Outbox rows read.
    pub rows: u64,
    /// Of those, newly counted (the rest were counted before).
    pub counted: u64,
    /// Rows left in place because their tenant does not live in that database.
    pub refused: u64,
    /// Databases that had no outbox (made before it existed): it was installed.
    pub outboxes_installed: usize,
}

/// Harvests every tenant database's outbox.
pub async fn harvest(dir: &Directory) -> Result<Harvest, MeteringError> {
    let mut h = Harvest::default();
    for db in databases(dir).await? {
        h.databases += 1;
        harvest_one(dir, &db, &mut h).await?;
    }
    Ok(h)
}

async fn harvest_one(dir: &Directory, db: &Database, h: &mut Harvest) -> Result<(), MeteringError> {
    let here: HashSet<TenantId> = db.placements.iter().map(|p| p.tenant_id).collect();
    let here_ids: Vec<uuid::Uuid> = here.iter().map(|t| t.as_uuid()).collect();
    let client = admin_connect(&db.cluster, &db.name).await?;
    let context = || format!("the usage outbox of {}@{}", db.name, db.cluster.name);
    let refused: i64 = match client
        .query_one(
            "SELECT count(*) FROM bulkhead.usage_outbox WHERE tenant_id <> ALL ($1::uuid[])",
            &[&here_ids],
        )
        .await
    {
        Ok(r) => r.get(0),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
            client
                .batch_execute(bulkhead_provisioner::USAGE_OUTBOX_SQL)
                .await
                .map_err(MeteringError::sql(format!("installing {}", context())))?;
            tracing::info!(database = %db.name, cluster = %db.cluster.name, "installed the usage outbox");
            h.outboxes_installed += 1;
            client.release();
            return Ok(());
        }
        Err(e) => return Err(MeteringError::sql(context())(e)),
    };
    if refused > 0 {
        tracing::warn!(database = %db.name, cluster = %db.cluster.name, rows = refused,
            "usage outbox rows under tenants that do not live in this database were not counted");
        h.refused += refused as u64;
    }
    loop {
        let rows = client
            .query(
                "SELECT tenant_id, metric, quantity, idempotency_key, recorded_at
                   FROM bulkhead.usage_outbox WHERE tenant_id = ANY ($1::uuid[])
                  ORDER BY recorded_at, tenant_id, idempotency_key LIMIT $2",
                &[&here_ids, &CHUNK],
            )
            .await
            .map_err(MeteringError::sql(context()))?;
        if rows.is_empty() {
            break;
        }
        let mut events = Vec::with_capacity(rows.len());
        let (mut tenants, mut keys) = (Vec::new(), Vec::new());
        for r in &rows {
            let tenant = TenantId::from(r.get::<_, uuid::Uuid>(0));
            let key: String = r.get(3);
            events.push(UsageEvent {
                key: format!("app:{tenant}:{key}"),
                tenant,
                metric: r.get(1),
                quantity: r.get(2),
                at: r.get::<_, DateTime<Utc>>(4),
                source: UsageSource::App,
            });
            tenants.push(tenant.as_uuid());
            keys.push(key);
        }
        h.rows += rows.len() as u64;
        h.counted += dir.record_usage(&events).await?;
        client
            .execute(
                "DELETE FROM bulkhead.usage_outbox o USING unnest($1::uuid[], $2::text[]) AS d(t, k)
                  WHERE o.tenant_id = d.t AND o.idempotency_key = d.k",
                &[&tenants, &keys],
            )
            .await
            .map_err(MeteringError::sql(context()))?;
        if (rows.len() as i64) < CHUNK {
            break;
        }
    }
    client.release();
    Ok(())
}

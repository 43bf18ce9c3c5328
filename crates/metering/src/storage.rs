//! Storage per tenant, sampled per mode:
//! - shared: each shared table's total size (heap, indexes, TOAST) times the tenant's share
//!   of its rows (counted exactly up to [`EXACT_ROWS`] rows; above, estimated from a block
//!   sample of about that many rows, so a sample never scans a large table whole);
//! - schema: the total size of every table and materialized view in the tenant's schema;
//! - database: the database's size.
//!
//! Each sample is its hour's `storage_bytes` (a later sample in the same hour replaces it).

use std::collections::HashMap;

use bulkhead_directory::Directory;
use bulkhead_model::{Mode, TenantId};
use bulkhead_provisioner::admin_connect;
use chrono::Utc;
use serde::Serialize;

use crate::places::{databases, Database};
use crate::MeteringError;

/// Tables estimated to hold more rows than this have their tenant shares sampled.
pub const EXACT_ROWS: f64 = 1_000_000.0;

/// One tenant's sample.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StorageSample {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its mode there.
    pub mode: Mode,
    /// Bytes.
    pub bytes: i64,
}

/// Samples every tenant and records the samples.
pub async fn sample(dir: &Directory) -> Result<Vec<StorageSample>, MeteringError> {
    let mut samples: Vec<StorageSample> = Vec::new();
    for db in databases(dir).await? {
        sample_database(&db, &mut samples).await?;
    }
    // A tenant in several services is the sum of its places.
    let mut total: HashMap<TenantId, i64> = HashMap::new();
    for s in &samples {
        *total.entry(s.tenant_id).or_default() += s.bytes;
    }
    let mut rows: Vec<(TenantId, i64)> = total.into_iter().collect();
    rows.sort();
    dir.record_storage(&rows, Utc::now()).await?;
    Ok(samples)
}

async fn sample_database(db: &Database, out: &mut Vec<StorageSample>) -> Result<(), MeteringError> {
    let client = admin_connect(&db.cluster, &db.name).await?;
    let context = |what: &str| format!("sampling {what} in {}@{}", db.name, db.cluster.name);
    let shared: Vec<TenantId> = db
        .placements
        .iter()
        .filter(|p| p.mode == Mode::Shared)
        .map(|p| p.tenant_id)
        .collect();
    if !shared.is_empty() {
        let mut bytes: HashMap<TenantId, f64> = HashMap::new();
        let tables = client
            .query(
                "SELECT c.oid::regclass::text, pg_total_relation_size(c.oid), c.reltuples::float8
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
                  WHERE n.nspname = 'public' AND c.relkind = 'r'",
                &[],
            )
            .await
            .map_err(MeteringError::sql(context("shared tables")))?;
        for t in &tables {
            let (name, size, estimate): (String, i64, f64) = (t.get(0), t.get(1), t.get(2));
            // `name` is regclass output: already quoted as needed.
            let sample = if estimate > EXACT_ROWS {
                format!(" TABLESAMPLE SYSTEM ({:.6})", 100.0 * EXACT_ROWS / estimate)
            } else {
                String::new()
            };
            let counts = client
                .query(
                    &format!("SELECT tenant_id, count(*) FROM {name}{sample} GROUP BY 1"),
                    &[],
                )
                .await
                .map_err(MeteringError::sql(context(&name)))?;
            let all: i64 = counts.iter().map(|r| r.get::<_, i64>(1)).sum();
            if all == 0 {
                continue;
            }
            for r in &counts {
                if let Some(u) = r.get::<_, Option<uuid::Uuid>>(0) {
                    let share = size as f64 * r.get::<_, i64>(1) as f64 / all as f64;
                    *bytes.entry(TenantId::from(u)).or_default() += share;
                }
            }
        }
        for t in shared {
            out.push(StorageSample {
                tenant_id: t,
                mode: Mode::Shared,
                bytes: bytes.get(&t).copied().unwrap_or(0.0).round() as i64,
            });
        }
    }
    for p in db.placements.iter().filter(|p| p.mode != Mode::Shared) {
        let bytes: i64 = match (&p.mode, &p.schema) {
            (Mode::Schema, Some(schema)) => client
                .query_one(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')",
                    &[schema],
                )
                .await
                .map_err(MeteringError::sql(context(schema)))?
                .get(0),
            _ => client
                .query_one("SELECT pg_database_size($1)", &[&db.name])
                .await
                .map_err(MeteringError::sql(context("the database's size")))?
                .get(0),
        };
        out.push(StorageSample {
            tenant_id: p.tenant_id,
            mode: p.mode,
            bytes,
        });
    }
    client.release();
    Ok(())
}

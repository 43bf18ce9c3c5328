//! Metering's storage: usage events keyed for idempotency, and their rollups per hour.
//!
//! Invariant: an hourly rollup grows only by events inserted in the same transaction, and an
//! event whose key is already stored is not inserted again, so writing the same events twice
//! (a flush retried after a crash, an outbox harvested twice) counts them once.

use bulkhead_model::TenantId;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Directory, DirectoryError};

/// Where a usage event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageSource {
    /// The gateway's counts.
    Gateway,
    /// An application's `bulkhead.usage()` call.
    App,
}

impl UsageSource {
    fn as_str(self) -> &'static str {
        match self {
            UsageSource::Gateway => "gateway",
            UsageSource::App => "app",
        }
    }
}

/// One usage event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEvent {
    /// Stable across retries of the same event.
    pub key: String,
    /// The tenant.
    pub tenant: TenantId,
    /// The metric (`transactions`, `emails_sent`, ...).
    pub metric: String,
    /// How much (a count, bytes or microseconds).
    pub quantity: i64,
    /// When it happened (decides its hour).
    pub at: DateTime<Utc>,
    /// Where it came from.
    pub source: UsageSource,
}

/// One hourly rollup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The metric.
    pub metric: String,
    /// The hour's start.
    pub hour: DateTime<Utc>,
    /// The hour's total (for `storage_bytes`, the hour's last sample).
    pub quantity: i64,
}

/// The metric storage samples are kept under: a gauge, the hour's last sample.
pub const STORAGE_METRIC: &str = "storage_bytes";

impl Directory {
    /// Records `events`; returns how many were new (the others' keys were already stored,
    /// and they were not counted again).
    pub async fn record_usage(&self, events: &[UsageEvent]) -> Result<u64, DirectoryError> {
        if events.is_empty() {
            return Ok(0);
        }
        let keys: Vec<&str> = events.iter().map(|e| e.key.as_str()).collect();
        let tenants: Vec<uuid::Uuid> = events.iter().map(|e| e.tenant.as_uuid()).collect();
        let metrics: Vec<&str> = events.iter().map(|e| e.metric.as_str()).collect();
        let quantities: Vec<i64> = events.iter().map(|e| e.quantity).collect();
        let at: Vec<DateTime<Utc>> = events.iter().map(|e| e.at).collect();
        let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
        let client = self.client().await?;
        let row = client
            .query_one(
                "WITH new AS (
                     INSERT INTO metering.usage_events (idempotency_key, tenant_id, metric, quantity, at, source)
                     SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::bigint[], $5::timestamptz[], $6::text[])
                     ON CONFLICT (idempotency_key) DO NOTHING
                     RETURNING tenant_id, metric, quantity, at
                 ), rolled AS (
                     INSERT INTO metering.usage_hourly AS h (tenant_id, metric, hour, quantity)
                     SELECT tenant_id, metric, date_trunc('hour', at, 'UTC'), sum(quantity)::bigint
                       FROM new GROUP BY 1, 2, 3
                     ON CONFLICT (tenant_id, metric, hour) DO UPDATE SET quantity = h.quantity + excluded.quantity
                     RETURNING 1
                 )
                 SELECT (SELECT count(*) FROM new), (SELECT count(*) FROM rolled)",
                &[&keys, &tenants, &metrics, &quantities, &at, &sources],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Records a gateway flush: adds each (tenant, metric, quantity) of `rows` to the hour of
    /// `at`, unless a batch named `key` was recorded before (a flush retried after a crash or
    /// a lost COMMIT reply), in one statement. Returns how many rollups it added to (0 for a
    /// batch already recorded).
    pub async fn record_gateway_batch(
        &self,
        key: &str,
        at: DateTime<Utc>,
        rows: &[(TenantId, &str, i64)],
    ) -> Result<u64, DirectoryError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let tenants: Vec<uuid::Uuid> = rows.iter().map(|r| r.0.as_uuid()).collect();
        let metrics: Vec<&str> = rows.iter().map(|r| r.1).collect();
        let quantities: Vec<i64> = rows.iter().map(|r| r.2).collect();
        let client = self.client().await?;
        let row = client
            .query_one(
                "WITH claimed AS (
                     INSERT INTO metering.gateway_batches (batch_key, at) VALUES ($1, $2)
                     ON CONFLICT (batch_key) DO NOTHING
                     RETURNING 1
                 ), rolled AS (
                     INSERT INTO metering.usage_hourly AS h (tenant_id, metric, hour, quantity)
                     SELECT t, m, date_trunc('hour', $2::timestamptz, 'UTC'), sum(q)::bigint
                       FROM unnest($3::uuid[], $4::text[], $5::bigint[]) AS u(t, m, q)
                      WHERE EXISTS (SELECT 1 FROM claimed)
                      GROUP BY 1, 2, 3
                     ON CONFLICT (tenant_id, metric, hour) DO UPDATE SET quantity = h.quantity + excluded.quantity
                     RETURNING 1
                 )
                 SELECT count(*) FROM rolled",
                &[&key, &at, &tenants, &metrics, &quantities],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Removes the gateway's batch keys (and events of older versions) older than `before`:
    /// they only guard against a retried flush, which happens within seconds; the rollups
    /// keep the counts.
    /// Applications' events are kept (their keys deduplicate retries for as long as they
    /// exist). Returns how many were removed.
    pub async fn prune_gateway_usage(&self, before: DateTime<Utc>) -> Result<u64, DirectoryError> {
        let client = self.client().await?;
        let batches = client
            .execute(
                "DELETE FROM metering.gateway_batches WHERE at < $1",
                &[&before],
            )
            .await?;
        // Events a gateway of an older version stored one per tenant and metric.
        let events = client
            .execute(
                "DELETE FROM metering.usage_events WHERE source = 'gateway' AND at < $1",
                &[&before],
            )
            .await?;
        Ok(batches + events)
    }

    /// Stores storage samples taken `at`: each is its hour's value of `storage_bytes` (a later
    /// sample in the same hour replaces it).
    pub async fn record_storage(
        &self,
        samples: &[(TenantId, i64)],
        at: DateTime<Utc>,
    ) -> Result<(), DirectoryError> {
        if samples.is_empty() {
            return Ok(());
        }
        let tenants: Vec<uuid::Uuid> = samples.iter().map(|(t, _)| t.as_uuid()).collect();
        let bytes: Vec<i64> = samples.iter().map(|(_, b)| *b).collect();
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO metering.usage_hourly AS h (tenant_id, metric, hour, quantity)
                 SELECT t, $3, date_trunc('hour', $4::timestamptz, 'UTC'), b FROM unnest($1::uuid[], $2::bigint[]) AS s(t, b)
                 ON CONFLICT (tenant_id, metric, hour) DO UPDATE SET quantity = excluded.quantity",
                &[&tenants, &bytes, &STORAGE_METRIC, &at],
            )
            .await?;
        Ok(())
    }

    /// The hourly rollups of `tenant` (every tenant when None) for hours starting in
    /// `[since, until)`, ordered by hour, tenant and metric.
    pub async fn usage_rollups(
        &self,
        tenant: Option<&TenantId>,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<UsageRow>, DirectoryError> {
        let client = self.client().await?;
        let t = tenant.map(|t| t.as_uuid());
        let rows = client
            .query(
                "SELECT tenant_id, metric, hour, quantity FROM metering.usage_hourly
                  WHERE hour >= $1 AND hour < $2 AND ($3::uuid IS NULL OR tenant_id = $3)
                  ORDER BY hour, tenant_id, metric",
                &[&since, &until, &t],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| UsageRow {
                tenant_id: TenantId::from(r.get::<_, uuid::Uuid>(0)),
                metric: r.get(1),
                hour: r.get(2),
                quantity: r.get(3),
            })
            .collect())
    }
}

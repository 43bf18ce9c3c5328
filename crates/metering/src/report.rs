//! Reports over the hourly rollups: usage per tenant and metric, cost per tenant, and the
//! export a billing system reads.
//!
//! Every metric is a sum over its hours except `storage_bytes`, a gauge: usage shows its
//! latest hour's sample, and cost prices it per GiB-hour (each hour's sample counts for that
//! hour).

use std::collections::{BTreeMap, HashMap};

use bulkhead_directory::{UsageRow, STORAGE_METRIC};
use bulkhead_model::TenantId;
use serde::Serialize;

use crate::MeteringError;

/// One tenant's total of one metric.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UsageLine {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its slug, when it still exists.
    pub slug: Option<String>,
    /// The metric.
    pub metric: String,
    /// The total (for `storage_bytes`, the latest sample).
    pub quantity: i64,
}

/// Totals per tenant and metric, ordered by slug (or id) and metric.
pub fn usage(rows: &[UsageRow], slugs: &HashMap<TenantId, String>) -> Vec<UsageLine> {
    let mut totals: BTreeMap<(TenantId, String), i64> = BTreeMap::new();
    for r in rows {
        let slot = totals.entry((r.tenant_id, r.metric.clone())).or_default();
        if r.metric == STORAGE_METRIC {
            // Rows come in hour order: the last one is the latest sample.
            *slot = r.quantity;
        } else {
            *slot = slot.saturating_add(r.quantity);
        }
    }
    let mut out: Vec<UsageLine> = totals
        .into_iter()
        .map(|((tenant_id, metric), quantity)| UsageLine {
            tenant_id,
            slug: slugs.get(&tenant_id).cloned(),
            metric,
            quantity,
        })
        .collect();
    out.sort_by(|a, b| {
        (a.slug.as_deref(), a.tenant_id, &a.metric).cmp(&(
            b.slug.as_deref(),
            b.tenant_id,
            &b.metric,
        ))
    });
    out
}

/// Prices per unit of each metric (per GiB-hour for `storage_bytes`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Prices(pub BTreeMap<String, f64>);

impl Prices {
    /// Adds `metric=price` pairs over these prices.
    pub fn with_overrides(mut self, pairs: &[String]) -> Result<Self, MeteringError> {
        for p in pairs {
            let (metric, price) = p.split_once('=').ok_or_else(|| {
                MeteringError::Invalid(format!("price `{p}` is not METRIC=PRICE"))
            })?;
            let price: f64 = price
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    MeteringError::Invalid(format!(
                        "price `{p}`: `{price}` is not a number of at least 0"
                    ))
                })?;
            self.0.insert(metric.trim().to_string(), price);
        }
        Ok(self)
    }
}

/// One metric's part of a tenant's cost.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CostItem {
    /// The metric.
    pub metric: String,
    /// Units priced (GiB-hours for storage).
    pub units: f64,
    /// The price per unit.
    pub price: f64,
    /// `units * price`.
    pub amount: f64,
}

/// One tenant's cost.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CostLine {
    /// Rank, from 1 (the most expensive).
    pub rank: usize,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its slug.
    pub slug: Option<String>,
    /// The total.
    pub cost: f64,
    /// Per priced metric.
    pub items: Vec<CostItem>,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Tenants ranked by cost (metrics without a price cost nothing and are left out).
pub fn cost(
    rows: &[UsageRow],
    prices: &Prices,
    slugs: &HashMap<TenantId, String>,
) -> Vec<CostLine> {
    let mut units: BTreeMap<TenantId, BTreeMap<String, f64>> = BTreeMap::new();
    for r in rows {
        if !prices.0.contains_key(&r.metric) {
            continue;
        }
        let u = if r.metric == STORAGE_METRIC {
            r.quantity as f64 / GIB
        } else {
            r.quantity as f64
        };
        *units
            .entry(r.tenant_id)
            .or_default()
            .entry(r.metric.clone())
            .or_default() += u;
    }
    let mut lines: Vec<CostLine> = units
        .into_iter()
        .map(|(tenant_id, metrics)| {
            let items: Vec<CostItem> = metrics
                .into_iter()
                .map(|(metric, units)| {
                    let price = prices.0.get(&metric).copied().unwrap_or(0.0);
                    CostItem {
                        amount: units * price,
                        metric,
                        units,
                        price,
                    }
                })
                .collect();
            CostLine {
                rank: 0,
                tenant_id,
                slug: slugs.get(&tenant_id).cloned(),
                cost: items.iter().map(|i| i.amount).sum(),
                items,
            }
        })
        .collect();
    lines.sort_by(|a, b| {
        b.cost
            .total_cmp(&a.cost)
            .then_with(|| a.tenant_id.cmp(&b.tenant_id))
    });
    for (i, l) in lines.iter_mut().enumerate() {
        l.rank = i + 1;
    }
    lines
}

/// One exported rollup.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExportRow {
    /// The hour's start, RFC 3339 UTC.
    pub hour: String,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its slug.
    pub slug: Option<String>,
    /// The metric.
    pub metric: String,
    /// The hour's quantity.
    pub quantity: i64,
}

/// The rollups as export rows, in the rollups' order (hour, tenant, metric).
pub fn export_rows(rows: &[UsageRow], slugs: &HashMap<TenantId, String>) -> Vec<ExportRow> {
    rows.iter()
        .map(|r| ExportRow {
            hour: r.hour.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            tenant_id: r.tenant_id,
            slug: slugs.get(&r.tenant_id).cloned(),
            metric: r.metric.clone(),
            quantity: r.quantity,
        })
        .collect()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The export as CSV with a header line.
pub fn to_csv(rows: &[ExportRow]) -> String {
    let mut out = String::from("hour,tenant_id,slug,metric,quantity\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{}\n",
            r.hour,
            r.tenant_id,
            csv_field(r.slug.as_deref().unwrap_or("")),
            csv_field(&r.metric),
            r.quantity
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn row(t: TenantId, metric: &str, hour: u32, q: i64) -> UsageRow {
        UsageRow {
            tenant_id: t,
            metric: metric.into(),
            hour: chrono::Utc
                .with_ymd_and_hms(2026, 11, 1, hour, 0, 0)
                .single()
                .unwrap_or_default(),
            quantity: q,
        }
    }

    #[test]
    fn sums_counters_and_keeps_the_latest_storage_sample() {
        let t = TenantId::random();
        let rows = vec![
            row(t, "statements", 1, 5),
            row(t, STORAGE_METRIC, 1, 100),
            row(t, "statements", 2, 7),
            row(t, STORAGE_METRIC, 2, 300),
        ];
        let u = usage(&rows, &HashMap::new());
        assert_eq!(u.len(), 2);
        assert_eq!((u[0].metric.as_str(), u[0].quantity), ("statements", 12));
        assert_eq!((u[1].metric.as_str(), u[1].quantity), (STORAGE_METRIC, 300));
    }

    #[test]
    fn ranks_by_cost_and_prices_storage_per_gib_hour() {
        let (a, b) = (TenantId::random(), TenantId::random());
        let rows = vec![
            row(a, "emails_sent", 1, 10),
            row(b, "emails_sent", 1, 30),
            row(a, STORAGE_METRIC, 1, 2 * 1024 * 1024 * 1024),
            row(a, STORAGE_METRIC, 2, 2 * 1024 * 1024 * 1024),
            row(b, "unpriced", 1, 1_000_000),
        ];
        let prices = Prices::default()
            .with_overrides(&["emails_sent=0.5".into(), "storage_bytes=1".into()])
            .unwrap_or_default();
        let c = cost(&rows, &prices, &HashMap::new());
        assert_eq!(c[0].tenant_id, b);
        assert_eq!(c[0].cost, 15.0);
        assert_eq!(c[1].cost, 5.0 + 4.0, "10 emails and 4 GiB-hours");
        assert!(Prices::default().with_overrides(&["x".into()]).is_err());
        assert!(Prices::default().with_overrides(&["x=-1".into()]).is_err());
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let t = TenantId::random();
        let rows = export_rows(&[row(t, "a,b", 3, 1)], &HashMap::new());
        let csv = to_csv(&rows);
        assert_eq!(
            csv,
            format!("hour,tenant_id,slug,metric,quantity\n2026-11-01T03:00:00Z,{t},,\"a,b\",1\n")
        );
    }
}

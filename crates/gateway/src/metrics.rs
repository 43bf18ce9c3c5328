//! Gateway metrics in Prometheus text format: clients, queries (a simple Query or an
//! extended-protocol batch up to Sync) per service with a latency histogram, errors per kind,
//! refusals per guard rule, pool connections and checkout timeouts per cluster, and usage
//! per tenant for the [`TOP_TENANTS`] busiest tenants only (everyone else summed under
//! `tenant="other"`), so cardinality stays bounded however many tenants there are.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 5.0,
];

/// One service's queries: a count and a latency histogram, kept in atomics so that a session
/// records a query without a lock.
#[derive(Default)]
pub struct ServiceStats {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl ServiceStats {
    /// Records one query that took `took`.
    pub fn query(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// The gateway's counters.
#[derive(Default)]
pub struct Metrics {
    clients_connected: AtomicU64,
    clients_total: AtomicU64,
    checkout_timeouts: AtomicU64,
    /// name → label value → count. Looked up by borrowed keys: no allocation per query.
    counters: Mutex<BTreeMap<&'static str, BTreeMap<String, u64>>>,
    services: Mutex<BTreeMap<String, std::sync::Arc<ServiceStats>>>,
}

impl Metrics {
    pub(crate) fn client_connected(&self) {
        self.clients_connected.fetch_add(1, Ordering::Relaxed);
        self.clients_total.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn client_disconnected(&self) {
        self.clients_connected.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn checkout_timeout(&self) {
        self.checkout_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds one to the counter `name` with label value `label`.
    pub(crate) fn count(&self, name: &'static str, label: &str) {
        if let Ok(mut c) = self.counters.lock() {
            let labels = c.entry(name).or_default();
            match labels.get_mut(label) {
                Some(v) => *v += 1,
                None => {
                    labels.insert(label.to_string(), 1);
                }
            }
        }
    }

    /// The query statistics of `service` (a session takes them once, at login).
    pub(crate) fn service(&self, service: &str) -> std::sync::Arc<ServiceStats> {
        let mut services = match self.services.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(stats) = services.get(service) {
            return stats.clone();
        }
        services.entry(service.to_string()).or_default().clone()
    }

    /// Renders everything, with the pool figures given by the caller.
    pub fn render(&self, pools: &[(String, usize, usize)]) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE bulkhead_gateway_clients gauge");
        let _ = writeln!(
            out,
            "bulkhead_gateway_clients {}",
            self.clients_connected.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE bulkhead_gateway_clients_total counter");
        let _ = writeln!(
            out,
            "bulkhead_gateway_clients_total {}",
            self.clients_total.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE bulkhead_gateway_checkout_timeouts_total counter"
        );
        let _ = writeln!(
            out,
            "bulkhead_gateway_checkout_timeouts_total {}",
            self.checkout_timeouts.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE bulkhead_gateway_backend_connections gauge");
        for (cluster, idle, used) in pools {
            let _ = writeln!(out, "bulkhead_gateway_backend_connections{{cluster=\"{cluster}\",state=\"idle\"}} {idle}");
            let _ = writeln!(out, "bulkhead_gateway_backend_connections{{cluster=\"{cluster}\",state=\"used\"}} {used}");
        }
        if let Ok(c) = self.counters.lock() {
            for (name, labels) in c.iter() {
                let _ = writeln!(out, "# TYPE {name} counter");
                let key = label_of(name);
                for (label, v) in labels {
                    let _ = writeln!(out, "{name}{{{key}=\"{label}\"}} {v}");
                }
            }
        }
        if let Ok(l) = self.services.lock() {
            let _ = writeln!(out, "# TYPE bulkhead_gateway_queries_total counter");
            for (service, h) in l.iter() {
                let _ = writeln!(
                    out,
                    "bulkhead_gateway_queries_total{{service=\"{service}\"}} {}",
                    h.count.load(Ordering::Relaxed)
                );
            }
            let _ = writeln!(out, "# TYPE bulkhead_gateway_query_seconds histogram");
            for (service, h) in l.iter() {
                let count = h.count.load(Ordering::Relaxed);
                let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "bulkhead_gateway_query_seconds_bucket{{service=\"{service}\",le=\"{bound}\"}} {}",
                        h.counts[i].load(Ordering::Relaxed)
                    );
                }
                let _ = writeln!(
                    out,
                    "bulkhead_gateway_query_seconds_bucket{{service=\"{service}\",le=\"+Inf\"}} {count}"
                );
                let _ = writeln!(
                    out,
                    "bulkhead_gateway_query_seconds_sum{{service=\"{service}\"}} {sum}"
                );
                let _ = writeln!(
                    out,
                    "bulkhead_gateway_query_seconds_count{{service=\"{service}\"}} {count}"
                );
            }
        }
        out
    }
}

/// What a counter's label names: the guard rule of a refusal, the kind of an error, else
/// the service.
fn label_of(counter: &str) -> &'static str {
    if counter.ends_with("refusals_total") {
        "rule"
    } else if counter.ends_with("errors_total") {
        "kind"
    } else {
        "service"
    }
}

/// One backend pool's connections, as `/v1/gateway` shows them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PoolHealth {
    /// The cluster.
    pub cluster: String,
    /// Connections waiting for a transaction.
    pub idle: usize,
    /// Connections serving one.
    pub used: usize,
}

/// One service's queries in short.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceHealth {
    /// The service.
    pub service: String,
    /// Queries since the gateway started.
    pub queries: u64,
    /// Their mean latency, in milliseconds.
    pub mean_ms: f64,
}

/// The gateway's figures as JSON, for people (the console) rather than Prometheus.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    /// Clients connected now.
    pub clients: u64,
    /// Clients since start.
    pub clients_total: u64,
    /// Transactions that waited for a backend connection past the checkout timeout.
    pub checkout_timeouts: u64,
    /// Backend connections per cluster.
    pub pools: Vec<PoolHealth>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Guard refusals by rule.
    pub refusals: BTreeMap<String, u64>,
    /// Queries per service.
    pub services: Vec<ServiceHealth>,
}

impl Metrics {
    /// The figures now, with the pool figures given by the caller.
    pub fn health(&self, pools: &[(String, usize, usize)]) -> Health {
        let (mut errors, mut refusals) = (BTreeMap::new(), BTreeMap::new());
        if let Ok(c) = self.counters.lock() {
            for (name, labels) in c.iter() {
                let into = match label_of(name) {
                    "rule" => &mut refusals,
                    "kind" => &mut errors,
                    _ => continue,
                };
                for (label, v) in labels {
                    *into.entry(label.clone()).or_insert(0) += v;
                }
            }
        }
        let services = self
            .services
            .lock()
            .map(|l| {
                l.iter()
                    .map(|(service, h)| {
                        let queries = h.count.load(Ordering::Relaxed);
                        let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e3;
                        ServiceHealth {
                            service: service.clone(),
                            queries,
                            mean_ms: if queries == 0 {
                                0.0
                            } else {
                                sum / queries as f64
                            },
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Health {
            clients: self.clients_connected.load(Ordering::Relaxed),
            clients_total: self.clients_total.load(Ordering::Relaxed),
            checkout_timeouts: self.checkout_timeouts.load(Ordering::Relaxed),
            pools: pools
                .iter()
                .map(|(cluster, idle, used)| PoolHealth {
                    cluster: cluster.clone(),
                    idle: *idle,
                    used: *used,
                })
                .collect(),
            errors,
            refusals,
            services,
        }
    }
}

/// How many tenants get series of their own in `/metrics`.
pub const TOP_TENANTS: usize = 20;

/// Appends the usage counters of the busiest tenants (by transactions since start).
pub fn render_tenants(out: &mut String, meters: &bulkhead_metering::Meters) {
    let (top, rest) = meters.top(TOP_TENANTS);
    for (i, metric) in bulkhead_metering::GATEWAY_METRICS.iter().enumerate() {
        let name = format!("bulkhead_tenant_{metric}_total");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (tenant, c) in &top {
            let _ = writeln!(out, "{name}{{tenant=\"{tenant}\"}} {}", c.values()[i]);
        }
        if !rest.is_empty() {
            let _ = writeln!(out, "{name}{{tenant=\"other\"}} {}", rest.values()[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.client_connected();
        m.service("billing").query(Duration::from_millis(2));
        m.count("bulkhead_gateway_refusals_total", "context_setting");
        let text = m.render(&[("local".into(), 3, 1)]);
        assert!(text.contains("bulkhead_gateway_clients 1"));
        assert!(text.contains("bulkhead_gateway_queries_total{service=\"billing\"} 1"));
        assert!(text.contains("bulkhead_gateway_refusals_total{rule=\"context_setting\"} 1"));
        assert!(text.contains(
            "bulkhead_gateway_query_seconds_bucket{service=\"billing\",le=\"0.0025\"} 1"
        ));
        assert!(text
            .contains("bulkhead_gateway_query_seconds_bucket{service=\"billing\",le=\"0.001\"} 0"));
        assert!(text
            .contains("bulkhead_gateway_backend_connections{cluster=\"local\",state=\"idle\"} 3"));
    }

    #[test]
    fn tenant_series_are_bounded() {
        let meters = bulkhead_metering::Meters::default();
        let mut busiest = None;
        for i in 0..(TOP_TENANTS as u64 + 30) {
            let t = bulkhead_model::TenantId::random();
            meters.tenant(t).add(&bulkhead_metering::Counts {
                transactions: i + 1,
                ..Default::default()
            });
            busiest = Some(t);
        }
        let mut text = String::new();
        render_tenants(&mut text, &meters);
        let series = text
            .lines()
            .filter(|l| l.starts_with("bulkhead_tenant_transactions_total{"))
            .count();
        assert_eq!(series, TOP_TENANTS + 1, "the top tenants and `other`");
        let top = busiest.map(|t| t.to_string()).unwrap_or_default();
        assert!(text.contains(&format!(
            "bulkhead_tenant_transactions_total{{tenant=\"{top}\"}} 50"
        )));
        // The 30 quietest: 1 + 2 + ... + 30.
        assert!(text.contains("bulkhead_tenant_transactions_total{tenant=\"other\"} 465"));
    }
}

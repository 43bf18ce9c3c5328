//! Configuration: an optional TOML file plus environment overrides, validated at start with
//! errors that name the key. Without a `control.dsn` (from the file or BULKHEAD_CONTROL_DSN)
//! Bulkhead runs its embedded PostgreSQL.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;

use bulkhead_model::{ClusterName, Region};
use serde::Deserialize;

use crate::ServerError;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTP admin API.
    #[serde(default)]
    pub api: ApiConfig,
    /// The gateway (PostgreSQL wire protocol).
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// The control database; absent means embedded.
    #[serde(default)]
    pub control: Option<ControlConfig>,
    /// PostgreSQL servers to register (updated on every start).
    #[serde(default)]
    pub clusters: Vec<ClusterConfig>,
    /// Per-tenant limits by tier.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Usage metering.
    #[serde(default)]
    pub metering: MeteringConfig,
    /// Continuous WAL archiving of the embedded cluster (point-in-time recovery).
    #[serde(default)]
    pub pitr: PitrConfig,
    /// Scheduled logical backups of tenants.
    #[serde(default)]
    pub backups: BackupsConfig,
}

/// `[pitr]`: continuous archiving of the embedded cluster with pgBackRest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PitrConfig {
    /// Archive the embedded cluster's WAL; default true (off, or without pgbackrest
    /// installed, no tenant can be rewound).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// A new full base backup when the newest is this old; default `1d`.
    #[serde(default = "default_full_every")]
    pub full_every: String,
    /// Full base backups kept (with the WAL they need); default 2. The recoverable window
    /// reaches back to the oldest one kept.
    #[serde(default = "default_keep_full")]
    pub keep_full: u32,
}

impl Default for PitrConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            full_every: default_full_every(),
            keep_full: default_keep_full(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_full_every() -> String {
    "1d".into()
}

fn default_keep_full() -> u32 {
    2
}

/// `[backups]`: logical tenant backups (`.bhk`) taken on schedule by `bulkhead up`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupsConfig {
    /// Where they go; default `<data dir>/backups`.
    #[serde(default)]
    pub folder: Option<std::path::PathBuf>,
    /// Seconds between passes of the schedule; default 60.
    #[serde(default)]
    pub check_seconds: Option<u64>,
    /// By tier: `[backups.tiers.enterprise] every = "1h", keep = "30d"`.
    #[serde(default)]
    pub tiers: std::collections::BTreeMap<String, BackupPolicyConfig>,
    /// By tenant slug, over its tier's.
    #[serde(default)]
    pub tenants: std::collections::BTreeMap<String, BackupPolicyConfig>,
}

/// How often and how long.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupPolicyConfig {
    /// Interval, e.g. `1h`.
    pub every: String,
    /// Retention, e.g. `30d`.
    pub keep: String,
}

impl BackupsConfig {
    /// The schedule, into `folder` unless configured.
    pub fn to_schedule(&self, folder: &Path) -> Result<bulkhead_pitr::schedule::Schedule, String> {
        use bulkhead_pitr::schedule::{parse_duration, Policy};
        let policy = |key: &str, p: &BackupPolicyConfig| -> Result<Policy, String> {
            Ok(Policy {
                every: parse_duration(&p.every).map_err(|e| format!("{key}.every: {e}"))?,
                keep: parse_duration(&p.keep).map_err(|e| format!("{key}.keep: {e}"))?,
            })
        };
        let mut schedule = bulkhead_pitr::schedule::Schedule {
            folder: self.folder.clone().unwrap_or_else(|| folder.to_path_buf()),
            ..Default::default()
        };
        for (tier, p) in &self.tiers {
            schedule
                .tiers
                .insert(tier.clone(), policy(&format!("backups.tiers.{tier}"), p)?);
        }
        for (slug, p) in &self.tenants {
            schedule
                .tenants
                .insert(slug.clone(), policy(&format!("backups.tenants.{slug}"), p)?);
        }
        Ok(schedule)
    }
}

/// `[metering]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeteringConfig {
    /// Seconds between flushes of the gateway's usage counters; default 10.
    #[serde(default = "default_flush_seconds")]
    pub flush_seconds: u64,
    /// Seconds between harvests of the usage outboxes and storage samples; default 300.
    #[serde(default = "default_collect_seconds")]
    pub collect_seconds: u64,
    /// Price per unit of each metric (per GiB-hour for `storage_bytes`), for `bulkhead cost`.
    #[serde(default)]
    pub prices: std::collections::BTreeMap<String, f64>,
}

impl Default for MeteringConfig {
    fn default() -> Self {
        Self {
            flush_seconds: default_flush_seconds(),
            collect_seconds: default_collect_seconds(),
            prices: Default::default(),
        }
    }
}

fn default_flush_seconds() -> u64 {
    10
}

fn default_collect_seconds() -> u64 {
    300
}

/// `[limits]`: `[limits.default]` for every tier, `[limits.tiers.<tier>]` for one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// For tiers without a section of their own.
    #[serde(default)]
    pub default: TierLimitsConfig,
    /// By tier name.
    #[serde(default)]
    pub tiers: std::collections::BTreeMap<String, TierLimitsConfig>,
}

/// One tier's limits; an absent key means no limit.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierLimitsConfig {
    /// Transactions of one tenant running at once (past it: 53300).
    pub max_transactions: Option<usize>,
    /// Transactions of one tenant started per second (past it: 53300).
    pub transactions_per_second: Option<u32>,
    /// How long one query may run, in milliseconds (past it: cancelled, 57014).
    pub statement_timeout_ms: Option<u64>,
}

impl TierLimitsConfig {
    fn check(&self, key: &str) -> Result<(), String> {
        if self.max_transactions == Some(0) {
            return Err(format!(
                "{key}.max_transactions must be at least 1 (leave it out for no limit)"
            ));
        }
        if self.transactions_per_second == Some(0) {
            return Err(format!(
                "{key}.transactions_per_second must be at least 1 (leave it out for no limit)"
            ));
        }
        if self.statement_timeout_ms == Some(0) {
            return Err(format!(
                "{key}.statement_timeout_ms must be at least 1 (leave it out for no limit)"
            ));
        }
        Ok(())
    }

    /// As the gateway takes them.
    pub fn to_limits(&self) -> bulkhead_gateway::limits::TierLimits {
        bulkhead_gateway::limits::TierLimits {
            max_transactions: self.max_transactions,
            transactions_per_second: self.transactions_per_second,
            statement_timeout: self
                .statement_timeout_ms
                .map(std::time::Duration::from_millis),
        }
    }
}

impl LimitsConfig {
    /// As the gateway takes them.
    pub fn to_limits(&self) -> bulkhead_gateway::limits::Limits {
        bulkhead_gateway::limits::Limits {
            default: self.default.to_limits(),
            tiers: self
                .tiers
                .iter()
                .map(|(k, v)| (k.clone(), v.to_limits()))
                .collect(),
        }
    }
}

/// `[api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address; default 127.0.0.1:8080.
    #[serde(default = "default_api_listen")]
    pub listen: String,
    /// Fixed admin token; generated into the data folder when absent.
    #[serde(default)]
    pub token: Option<String>,
    /// Fixed read-only console token (sees everything, changes nothing); generated into the
    /// data folder when absent.
    #[serde(default)]
    pub console_token: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: default_api_listen(),
            token: None,
            console_token: None,
        }
    }
}

fn default_api_listen() -> String {
    "127.0.0.1:8080".into()
}

/// `[gateway]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Listen address; default 127.0.0.1:6432.
    #[serde(default = "default_gateway_listen")]
    pub listen: String,
    /// Backend connections per cluster; default 20.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Seconds a transaction waits for a backend connection before 53300; default 5.
    #[serde(default = "default_checkout_timeout")]
    pub checkout_timeout_secs: u64,
    /// PEM certificate chain for TLS with clients.
    #[serde(default)]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key for TLS with clients.
    #[serde(default)]
    pub tls_key: Option<std::path::PathBuf>,
    /// Refuse logins that did not negotiate TLS (needs tls_cert and tls_key).
    #[serde(default)]
    pub tls_required: bool,
    /// Threads the gateway runs on; default 1 (one event loop, like PgBouncer's). More
    /// threads share the clients through work stealing.
    #[serde(default = "default_gateway_threads")]
    pub threads: usize,
    /// Seconds a backend may leave the gateway's bytes unacknowledged (a lost network) before
    /// the connection is dropped and its client gets an error; default 10.
    #[serde(default = "default_network_timeout")]
    pub network_timeout_secs: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: default_gateway_listen(),
            pool_size: default_pool_size(),
            checkout_timeout_secs: default_checkout_timeout(),
            tls_cert: None,
            tls_key: None,
            tls_required: false,
            threads: default_gateway_threads(),
            network_timeout_secs: default_network_timeout(),
        }
    }
}

fn default_gateway_listen() -> String {
    "127.0.0.1:6432".into()
}

fn default_gateway_threads() -> usize {
    1
}

fn default_network_timeout() -> u64 {
    10
}

fn default_pool_size() -> usize {
    20
}

fn default_checkout_timeout() -> u64 {
    5
}

/// `[control]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// DSN of the control database (created if missing is not attempted: it must exist).
    pub dsn: String,
}

/// One `[[clusters]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Cluster name.
    pub name: ClusterName,
    /// Region; default `local`.
    #[serde(default = "default_region")]
    pub region: Region,
    /// Administrator DSN.
    pub admin_dsn: String,
    /// Placement limit.
    #[serde(default)]
    pub capacity: Option<i32>,
}

fn default_region() -> Region {
    Region::from_str("local").unwrap_or_else(|_| unreachable!("`local` is a valid region"))
}

impl Config {
    /// Reads `path` (if given), applies environment overrides, and validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ServerError> {
        let mut config = match path {
            Some(path) => {
                let name = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|e| ServerError::Config {
                    source_name: name.clone(),
                    message: format!("cannot read it: {e}"),
                })?;
                toml::from_str(&text).map_err(|e| ServerError::Config {
                    source_name: name,
                    message: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok());
        config.validate(path)?;
        Ok(config)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        if let Some(v) = get("BULKHEAD_API_LISTEN") {
            self.api.listen = v;
        }
        if let Some(v) = get("BULKHEAD_API_TOKEN") {
            self.api.token = Some(v);
        }
        if let Some(v) = get("BULKHEAD_CONSOLE_TOKEN") {
            self.api.console_token = Some(v);
        }
        if let Some(v) = get("BULKHEAD_GATEWAY_LISTEN") {
            self.gateway.listen = v;
        }
        if let Some(v) = get("BULKHEAD_CONTROL_DSN") {
            self.control = Some(ControlConfig { dsn: v });
        }
    }

    fn validate(&self, path: Option<&Path>) -> Result<(), ServerError> {
        let source_name = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "environment".into());
        let err = |message: String| ServerError::Config {
            source_name: source_name.clone(),
            message,
        };
        SocketAddr::from_str(&self.api.listen).map_err(|e| {
            err(format!(
                "api.listen `{}` is not an address such as 127.0.0.1:8080: {e}",
                self.api.listen
            ))
        })?;
        SocketAddr::from_str(&self.gateway.listen).map_err(|e| {
            err(format!(
                "gateway.listen `{}` is not an address such as 127.0.0.1:6432: {e}",
                self.gateway.listen
            ))
        })?;
        match (&self.gateway.tls_cert, &self.gateway.tls_key) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(err(
                    "gateway.tls_cert and gateway.tls_key go together".into()
                ))
            }
            (None, None) if self.gateway.tls_required => {
                return Err(err(
                    "gateway.tls_required needs gateway.tls_cert and gateway.tls_key".into(),
                ))
            }
            _ => {}
        }
        self.limits.default.check("limits.default").map_err(err)?;
        for (tier, l) in &self.limits.tiers {
            l.check(&format!("limits.tiers.{tier}")).map_err(err)?;
        }
        if self.metering.flush_seconds == 0 || self.metering.collect_seconds == 0 {
            return Err(err(
                "metering.flush_seconds and metering.collect_seconds must be at least 1".into(),
            ));
        }
        if let Some((metric, price)) = self
            .metering
            .prices
            .iter()
            .find(|(_, p)| !p.is_finite() || **p < 0.0)
        {
            return Err(err(format!(
                "metering.prices.{metric} is {price}: prices must be numbers of at least 0"
            )));
        }
        self.backups.to_schedule(Path::new(".")).map_err(err)?;
        if self.backups.check_seconds == Some(0) {
            return Err(err("backups.check_seconds must be at least 1".into()));
        }
        bulkhead_pitr::schedule::parse_duration(&self.pitr.full_every)
            .map_err(|e| err(format!("pitr.full_every: {e}")))?;
        if self.pitr.keep_full == 0 {
            return Err(err("pitr.keep_full must be at least 1".into()));
        }
        if self.gateway.threads == 0 {
            return Err(err("gateway.threads must be at least 1".into()));
        }
        if self.gateway.network_timeout_secs == 0 {
            return Err(err("gateway.network_timeout_secs must be at least 1".into()));
        }
        if self.gateway.pool_size == 0 {
            return Err(err("gateway.pool_size must be at least 1".into()));
        }
        if let Some(token) = &self.api.token {
            if token.len() < 16 {
                return Err(err("api.token must be at least 16 characters".into()));
            }
        }
        if let Some(token) = &self.api.console_token {
            if token.len() < 16 {
                return Err(err(
                    "api.console_token must be at least 16 characters".into()
                ));
            }
            if Some(token) == self.api.token.as_ref() {
                return Err(err(
                    "api.console_token must differ from api.token (it is the read-only one)".into(),
                ));
            }
        }
        if let Some(control) = &self.control {
            tokio_postgres::Config::from_str(&control.dsn)
                .map_err(|e| err(format!("control.dsn does not parse: {e}")))?;
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.clusters.iter().enumerate() {
            tokio_postgres::Config::from_str(&c.admin_dsn)
                .map_err(|e| err(format!("clusters[{i}].admin_dsn does not parse: {e}")))?;
            if !seen.insert(c.name.as_str()) {
                return Err(err(format!(
                    "clusters[{i}].name `{}` appears twice",
                    c.name
                )));
            }
        }
        if self.control.is_none() && self.clusters.iter().any(|c| c.name.as_str() == "local") {
            return Err(err(
                "clusters: `local` is the embedded server's name; choose another name or set control.dsn".into(),
            ));
        }
        Ok(())
    }

    /// True when Bulkhead should start its embedded PostgreSQL.
    pub fn embedded(&self) -> bool {
        self.control.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ServerError> {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("bulkhead.toml");
        std::fs::write(&path, text).expect("write");
        Config::load(Some(&path))
    }

    #[test]
    fn a_full_file_parses() {
        let c = parse(
            r#"
            [api]
            listen = "127.0.0.1:9000"
            [control]
            dsn = "postgres://bulkhead:pw@db:5432/bulkhead"
            [[clusters]]
            name = "eu_1"
            region = "eu"
            admin_dsn = "postgres://admin:pw@eu1:5432/postgres"
            capacity = 500
            "#,
        )
        .expect("valid");
        assert!(!c.embedded());
        assert_eq!(c.clusters[0].region.as_str(), "eu");
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("[api]\nlisten = \"nowhere\"\n").expect_err("bad listen");
        assert!(e.to_string().contains("api.listen"), "{e}");
        let e = parse("[api]\nlisten = \"127.0.0.1:1\"\nfoo = 1\n").expect_err("unknown key");
        assert!(e.to_string().contains("foo"), "{e}");
        let e =
            parse("[[clusters]]\nname = \"Bad Name\"\nadmin_dsn = \"x\"\n").expect_err("bad name");
        assert!(e.to_string().contains("invalid cluster name"), "{e}");
        let e = parse("[control]\ndsn = \"postgres://a:b@h:notaport/x\"\n").expect_err("bad dsn");
        assert!(e.to_string().contains("control.dsn"), "{e}");
    }
}

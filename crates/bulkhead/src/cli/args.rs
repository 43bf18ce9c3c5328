//! What the command line accepts. Names and ids are parsed into model types here, so a bad
//! slug is refused before any request is made.

use std::net::SocketAddr;
use std::path::PathBuf;

use bulkhead_directory::TenantRef;
use bulkhead_model::{ClusterName, Mode, Region, ServiceName, Slug, TenantId, Tier};
use clap::{Args, Parser, Subcommand};

/// Tenant isolation for PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "bulkhead", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// The data folder of the local instance (embedded PostgreSQL, secrets, instance file).
    #[arg(
        long,
        global = true,
        env = "BULKHEAD_DATA_DIR",
        default_value = ".bulkhead"
    )]
    pub data_dir: PathBuf,
    /// Talk to a remote instance's API instead of the one found in the data folder.
    #[arg(long, global = true, env = "BULKHEAD_URL")]
    pub url: Option<String>,
    /// The API's bearer token (default: from the data folder's instance.json).
    #[arg(long, global = true, env = "BULKHEAD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start Bulkhead: embedded PostgreSQL (unless configured otherwise), directory, HTTP API.
    Up(UpArgs),
    /// PostgreSQL servers Bulkhead may place tenant data on.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Applications and their isolation policy.
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Tenants of the directory.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Print the version.
    Version,
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// A TOML configuration file (control database, clusters, API address).
    #[arg(long, env = "BULKHEAD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the HTTP API listens (overrides the configuration).
    #[arg(long)]
    pub api_listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCmd {
    /// Register a server (checks that it answers and has wal_level=logical).
    Add {
        /// Cluster name.
        name: ClusterName,
        /// Administrator connection string.
        #[arg(long)]
        dsn: String,
        /// Region, for region pinning.
        #[arg(long, default_value = "local")]
        region: Region,
        /// Maximum number of placements.
        #[arg(long)]
        capacity: Option<i32>,
    },
    /// List clusters.
    List,
    /// Show one cluster.
    Show {
        /// Cluster name.
        name: ClusterName,
    },
    /// Remove a cluster that holds no placements.
    Remove {
        /// Cluster name.
        name: ClusterName,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCmd {
    /// Register a service.
    Create {
        /// Service name (clients use it as the database name).
        name: ServiceName,
        /// Default isolation mode.
        #[arg(long, default_value = "shared")]
        mode: Mode,
        /// A tier override, e.g. `--tier enterprise=database` (repeatable).
        #[arg(long = "tier", value_parser = parse_tier_mode)]
        tiers: Vec<(Tier, Mode)>,
        /// Home cluster (default: the only one registered).
        #[arg(long)]
        cluster: Option<ClusterName>,
    },
    /// List services.
    List,
    /// Show one service.
    Show {
        /// Service name.
        name: ServiceName,
    },
    /// Remove a service that has no tenants.
    Remove {
        /// Service name.
        name: ServiceName,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TenantCmd {
    /// Create a tenant record.
    Create {
        /// Its slug.
        slug: Slug,
        /// Use this id instead of a random one.
        #[arg(long)]
        id: Option<TenantId>,
        /// Its tier (default `free`).
        #[arg(long)]
        tier: Option<Tier>,
        /// Pin it to a region.
        #[arg(long)]
        region: Option<Region>,
    },
    /// List tenants.
    List,
    /// Show a tenant (by slug or id) and its placements.
    Show {
        /// Slug or id.
        tenant: TenantRef,
    },
    /// Suspend a tenant: the gateway refuses it until resumed.
    Suspend {
        /// Slug or id.
        tenant: TenantRef,
    },
    /// Resume a suspended tenant.
    Resume {
        /// Slug or id.
        tenant: TenantRef,
    },
}

fn parse_tier_mode(s: &str) -> Result<(Tier, Mode), String> {
    let (tier, mode) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not TIER=MODE, e.g. enterprise=database"))?;
    Ok((
        tier.parse().map_err(|e| format!("{e}"))?,
        mode.parse().map_err(|e| format!("{e}"))?,
    ))
}

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
    /// Run one more gateway against a running installation's directory (no embedded
    /// PostgreSQL, no API): several gateways serve the same tenants behind a load balancer.
    Gateway(GatewayArgs),
    /// PostgreSQL servers Bulkhead may place tenant data on.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Applications and their isolation policy.
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Tenants: records, provisioning in a service, deletion.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Apply a service's pending migrations to every place its tenants live.
    Migrate(MigrateArgs),
    /// Check the catalog facts isolation rests on, for a service or all (exit 9 on a failure).
    Verify {
        /// The service (default: every service).
        service: Option<ServiceName>,
    },
    /// Attack two throwaway tenants in each mode through the gateway with every known
    /// vector, on the cluster of SERVICE (or the default); exit 9 on any leak.
    Probe {
        /// Whose cluster to probe (default: the default cluster).
        service: Option<ServiceName>,
    },
    /// The tamper-evident audit log: list events, verify the chains (exit 9 on tampering).
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Usage per tenant and metric; `usage export` hands the hourly rollups to billing,
    /// `usage collect` gathers counters, outboxes and storage now.
    Usage(UsageArgs),
    /// Tenants ranked by cost: usage times a price per unit.
    Cost(CostArgs),
    /// Point-in-time recovery: WAL archiving and base backups per cluster (pgBackRest).
    #[command(subcommand)]
    Pitr(PitrCmd),
    /// Where the running instance's web console is and how to sign in: the admin API token
    /// (acts) or the read-only console token (sees, never changes anything).
    Console,
    /// Print the version.
    Version,
}

#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// A TOML configuration file (its `[gateway]`, `[limits]` and `[metering]` apply).
    #[arg(long, env = "BULKHEAD_CONFIG")]
    pub config: Option<PathBuf>,
    /// The control database (default: that of the instance running in the data folder).
    #[arg(long, env = "BULKHEAD_CONTROL_DSN")]
    pub control: Option<String>,
    /// Where the installation's master.key is (default: the data folder's secrets/).
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// Where this gateway listens (overrides the configuration).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PitrCmd {
    /// Per cluster: archiving on or failing, the recoverable window, archive lag, base
    /// backups and repository size.
    Status {
        /// The cluster (default: every cluster with archiving).
        cluster: Option<ClusterName>,
    },
    /// Take a base backup now (incremental on the newest unless --full).
    Backup {
        /// The cluster.
        cluster: ClusterName,
        /// A full backup.
        #[arg(long)]
        full: bool,
    },
    /// Turn archiving on for a configured cluster whose data folder is on this machine:
    /// writes pgBackRest's configuration under FOLDER and, once the server runs with the
    /// settings it prints, creates the stanza and takes the first full backup.
    Enable {
        /// The cluster.
        cluster: ClusterName,
        /// Where the repository, configuration and side instances go.
        #[arg(long)]
        folder: std::path::PathBuf,
        /// The server's data folder (PGDATA).
        #[arg(long)]
        pg_data: std::path::PathBuf,
        /// The server's port.
        #[arg(long)]
        pg_port: u16,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCmd {
    /// Events about a tenant (or every event), oldest first.
    List {
        /// Slug or id (default: every tenant and the global chain).
        tenant: Option<TenantRef>,
        /// From this date (2026-11-01) or RFC 3339 time on.
        #[arg(long)]
        since: Option<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 1000)]
        limit: i64,
    },
    /// Check the hash chains and MACs; names every entry altered, removed, inserted or
    /// reordered, and exits 9 if there is one.
    Verify {
        /// Slug or id (default: every chain).
        tenant: Option<String>,
    },
}

/// A time range over the hourly rollups.
#[derive(Debug, Args)]
pub(crate) struct Range {
    /// From this date (2026-11-01) or RFC 3339 time on (default: 30 days ago).
    #[arg(long)]
    pub since: Option<String>,
    /// Up to (not including) this date or time (default: now; for exports, the current
    /// hour's start, so that closed hours only are exported).
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct UsageArgs {
    #[command(subcommand)]
    pub cmd: Option<UsageCmd>,
    /// Slug or id (default: every tenant).
    pub tenant: Option<TenantRef>,
    #[command(flatten)]
    pub range: Range,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UsageCmd {
    /// The hourly rollups, ordered by hour, tenant and metric (stable across runs).
    Export {
        #[command(flatten)]
        range: Range,
        /// csv or json.
        #[arg(long, default_value = "csv", value_parser = ["csv", "json"])]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Gather now: flush the gateway's counters, harvest the usage outboxes, sample storage.
    Collect,
}

#[derive(Debug, Args)]
pub(crate) struct CostArgs {
    #[command(flatten)]
    pub range: Range,
    /// A price per unit, `METRIC=PRICE` (repeatable; per GiB-hour for storage_bytes), over
    /// the configured `[metering.prices]`.
    #[arg(long = "price")]
    pub prices: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// A TOML configuration file (control database, clusters, API address).
    #[arg(long, env = "BULKHEAD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the HTTP API listens (overrides the configuration).
    #[arg(long)]
    pub api_listen: Option<SocketAddr>,
    /// Where the gateway listens (overrides the configuration).
    #[arg(long)]
    pub gateway_listen: Option<SocketAddr>,
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
        /// Folder of migration files named V<version>__<name>.sql.
        #[arg(long)]
        migrations: Option<PathBuf>,
        /// A reference table (no tenant_id; readable by all tenants), repeatable.
        #[arg(long = "reference")]
        reference_tables: Vec<String>,
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
    /// Set how the service's tokens (JWT passwords at the gateway) are checked.
    Auth {
        /// Service name.
        name: ServiceName,
        /// HS256 shared secret (at least 32 characters).
        #[arg(long, env = "BULKHEAD_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Option<String>,
        /// PEM file with the public key of RS256 tokens.
        #[arg(long)]
        rs256_public_key: Option<PathBuf>,
        /// PEM file with the public key of ES256 tokens.
        #[arg(long)]
        es256_public_key: Option<PathBuf>,
        /// Required issuer (`iss`).
        #[arg(long)]
        issuer: Option<String>,
        /// Required audience (`aud`).
        #[arg(long)]
        audience: Option<String>,
        /// The claim naming the tenant (default tenant_id, also accepting tenantId).
        #[arg(long)]
        tenant_claim: Option<String>,
        /// JSON file with a JWKS document: RS256/ES256 tokens whose `kid` names one of its
        /// keys verify against it.
        #[arg(long)]
        jwks: Option<PathBuf>,
        /// Service logins must choose tenants with signed tokens (SET LOCAL bulkhead.token),
        /// not bare ids.
        #[arg(long)]
        require_tokens: bool,
        /// Just-in-time provisioning: the first valid token for an unknown tenant creates it
        /// (mode from the service's policy and the token's tier claim).
        #[arg(long)]
        jit: bool,
        /// The claim holding the tier for just-in-time provisioning (default tier).
        #[arg(long)]
        tier_claim: Option<String>,
    },
    /// Credentials for service logins (SCRAM-SHA-256; the tenant is chosen per transaction).
    #[command(subcommand)]
    Credential(CredentialCmd),
    /// Allow-list a SECURITY DEFINER function tenants may call, for `verify` (it must still
    /// pin search_path).
    AllowDefiner {
        /// Service name.
        service: ServiceName,
        /// The function, as schema.name.
        function: String,
        /// Remove it from the list instead.
        #[arg(long)]
        remove: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CredentialCmd {
    /// Create a credential; its password is shown once.
    Create {
        /// Service name.
        service: ServiceName,
        /// The login's user name (default `<service>_svc`).
        #[arg(long)]
        user: Option<String>,
        /// The migration capability: this credential may send DDL through the gateway
        /// (still within its tenant role's PostgreSQL privileges).
        #[arg(long)]
        allow_ddl: bool,
    },
    /// List a service's credentials.
    List {
        /// Service name.
        service: ServiceName,
    },
    /// Revoke a credential; its sessions end at their next transaction.
    Revoke {
        /// Service name.
        service: ServiceName,
        /// The login's user name.
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TenantCmd {
    /// Create a tenant; with --service, provision it there (migrated and health-checked).
    Create {
        /// Its slug.
        slug: Slug,
        /// Provision it in this service.
        #[arg(long)]
        service: Option<ServiceName>,
        /// Isolation mode (default: from the service's policy and the tenant's tier).
        #[arg(long)]
        mode: Option<Mode>,
        /// Cluster (default: the service's home, or one in the tenant's region).
        #[arg(long)]
        cluster: Option<ClusterName>,
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
    /// Give a tenant a new slug (its id, data, keys and tokens stay the same).
    Rename {
        /// Slug or id.
        tenant: TenantRef,
        /// The new slug.
        slug: Slug,
    },
    /// API keys: passwords that log a client in as this tenant at the gateway.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Move a tenant online to another mode or cluster (same tenant id, same tokens); then
    /// `--finalize` removes the kept source, or `--rollback` moves it back.
    Move(MoveArgs),
    /// Back up a tenant's rows into one encrypted, compressed, checksummed file.
    Backup {
        /// Slug or id.
        tenant: TenantRef,
        /// The archive to write.
        #[arg(short, long)]
        output: std::path::PathBuf,
    },
    /// Replace a tenant's rows with a backup (atomically; in whatever mode it is now), or
    /// with `--at` rewind them to a point in time from the cluster's WAL archive.
    Restore {
        /// Slug or id.
        tenant: TenantRef,
        /// The archive (a `.bhk` file); leave it out with --at.
        #[arg(required_unless_present = "at", conflicts_with = "at")]
        archive: Option<std::path::PathBuf>,
        /// Rewind to this instant instead: RFC 3339 or `2026-12-05 14:02:00+00`.
        #[arg(long)]
        at: Option<String>,
        /// With --at: only say what would be restored (tables, rows at the instant).
        #[arg(long, requires = "at")]
        dry_run: bool,
        /// Into a new tenant of this slug instead (an archive of another tenant, or the
        /// tenant's state at --at).
        #[arg(long)]
        as_new: Option<Slug>,
        /// The new tenant's mode (default: the archive's, or the tenant's at the instant).
        #[arg(long, requires = "as_new")]
        mode: Option<Mode>,
    },
    /// A tenant's scheduled backups (`[backups]` in bulkhead.toml), newest first.
    Backups {
        /// Slug or id.
        tenant: TenantRef,
    },
    /// Copy a tenant into a new one (a backup restored as new).
    Clone {
        /// Slug or id of the source.
        tenant: TenantRef,
        /// The new tenant's slug.
        slug: Slug,
        /// The new tenant's mode (default: the source's).
        #[arg(long)]
        mode: Option<Mode>,
    },
    /// Erase a tenant: suspend it, delete its data, destroy its key (its backups become
    /// unreadable) and sign a deletion certificate.
    Erase {
        /// Slug or id.
        tenant: TenantRef,
        /// Required: erasure cannot be undone.
        #[arg(long)]
        confirm: bool,
    },
    /// Print an erased tenant's deletion certificate; --verify checks its signature.
    Certificate {
        /// Slug or id it had.
        tenant: String,
        /// Exit 9 unless the signature holds.
        #[arg(long)]
        verify: bool,
    },
    /// Delete a tenant: its rows, schema or database in every service, its roles, its record.
    Delete {
        /// Slug or id.
        tenant: TenantRef,
        /// Required: deletion destroys data.
        #[arg(long)]
        confirm: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct MoveArgs {
    /// Slug or id.
    pub tenant: TenantRef,
    /// The mode to move to.
    #[arg(long, required_unless_present_any = ["finalize", "rollback", "status"])]
    pub to: Option<Mode>,
    /// The cluster to move to (default: where it is).
    #[arg(long)]
    pub cluster: Option<ClusterName>,
    /// The service, when the tenant lives in several.
    #[arg(long)]
    pub service: Option<ServiceName>,
    /// Seconds the cutover waits for the tenant's open transactions before ending them.
    #[arg(long, default_value_t = 5)]
    pub drain_seconds: u64,
    /// Remove the source the last move kept.
    #[arg(long, conflicts_with_all = ["to", "rollback", "status"])]
    pub finalize: bool,
    /// Undo the last move: abort one under way, or move a switched one back.
    #[arg(long, conflicts_with_all = ["to", "finalize", "status"])]
    pub rollback: bool,
    /// Show the tenant's moves.
    #[arg(long, conflicts_with_all = ["to", "finalize", "rollback"])]
    pub status: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCmd {
    /// Issue a key (shown once).
    Create {
        /// Slug or id.
        tenant: TenantRef,
    },
    /// Revoke a key by id.
    Revoke {
        /// The key's id.
        id: String,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct MigrateArgs {
    #[command(subcommand)]
    pub status: Option<MigrateCmd>,
    #[command(flatten)]
    pub run: MigrateRun,
}

#[derive(Debug, Subcommand)]
pub(crate) enum MigrateCmd {
    /// Show the migration version of every target and any drift.
    Status {
        /// The service.
        service: ServiceName,
    },
}

#[derive(Debug, Args)]
pub(crate) struct MigrateRun {
    /// The service to migrate.
    pub service: Option<ServiceName>,
    /// Register the new files of this folder first (V<version>__<name>.sql).
    #[arg(long)]
    pub migrations: Option<PathBuf>,
    /// Targets migrated at once (default: fitted to the clusters).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// List what would run; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Migrate N tenants first; stop the rollout if any fails.
    #[arg(long)]
    pub canary: Option<usize>,
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

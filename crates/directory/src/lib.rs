//! The tenant directory: which PostgreSQL servers exist (clusters), which applications use
//! them (services), who the tenants are, and where each tenant's data lives (placements).
//! It lives in Bulkhead's control database, itself on PostgreSQL; gateways cache it and hear
//! of every change on the `bulkhead_directory` notification channel.
//!
//! Invariant: every write goes through a validated model type and a bound parameter; the
//! directory never formats user text into SQL.

mod audit_log;
mod clusters;
mod credentials;
mod data_keys;
mod error;
mod fleet;
mod gateway_auth;
mod installation;
mod migrations;
mod moves;
mod pitr;
mod placements;
mod schema;
mod service_databases;
mod services;
mod store;
mod tenants;
mod usage;

pub use audit_log::{AuditEntry, AuditHead, ChainSeal, GENESIS, GLOBAL_CHAIN};
pub use clusters::{probe as probe_cluster, Cluster, ClusterFacts, NewCluster};
pub use credentials::{check_username, CredentialLogin, ServiceCredential};
pub use data_keys::{StoredCertificate, StoredDataKey};
pub use error::{DirectoryError, ErrorKind};
pub use fleet::{
    ClusterCounts, KeyInfo, MoveSummary, PlaceSummary, ProofRun, TenantPage, TenantQuery,
    TenantSummary,
};
pub use gateway_auth::{database_login_of, IssuedKey, RouteFacts, RoutePlacement, ServiceAuth};
pub use installation::{NamingScheme, NamingSecret};
pub use migrations::{MigrationFile, RegisterReport, StoredMigration};
pub use moves::{Move, MovePhase, NewMove, PlaceRecord};
pub use pitr::{ClusterPitr, ScheduledBackup};
pub use placements::{NewPlacement, Placement};
pub use schema::{MigrationReport, SCHEMA_VERSION};
pub use service_databases::{ServiceDatabase, ServiceDatabaseKind};
pub use services::{NewService, Service};
pub use store::{ensure_database, quote_ident, Directory, DirectoryLock, CHANGE_CHANNEL};
pub use tenants::{NewTenant, Tenant, TenantRef};
pub use usage::{UsageEvent, UsageRow, UsageSource, STORAGE_METRIC};

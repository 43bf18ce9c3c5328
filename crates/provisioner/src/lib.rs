//! Provisioning and migrations: where each tenant of a service lives in each isolation mode,
//! how that place is created, checked and torn down, and how a service's migrations reach
//! every place (pool databases once, each tenant schema, each tenant database, templates).
//!
//! Invariant: every identifier is generated from ids (see [`naming`]) and quoted; no slug or
//! other free text ever reaches SQL.

mod cluster_prep;
mod connect;
mod error;
mod health;
pub mod migrate;
mod modes;
pub mod naming;
mod rename;
mod service_db;
mod services;
mod tenants;

pub use cluster_prep::{add_cluster, prepare_cluster, upsert_cluster};
pub use connect::{admin_connect, AdminConn};
pub use error::{describe, ProvisionError};
pub use modes::{drop_place_with, migrate_place, RemovedData, TenantPlace};
pub use rename::{rename_legacy_objects, RenameReport};
pub use service_db::{HELPERS_SQL, USAGE_OUTBOX_SQL};
pub use services::{create_service, remove_service};
pub use tenants::{
    build, create_tenant, delete_tenant, provision, CreateTenant, TenantCreated, TenantDeleted,
};

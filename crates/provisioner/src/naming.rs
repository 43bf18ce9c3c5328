//! Every SQL identifier Bulkhead creates, derived from ids and validated service names only:
//! never from slugs or other free text. Each fits PostgreSQL's 63-byte limit.
//!
//! | object | name |
//! | --- | --- |
//! | pool database of a service | `bh_<service>` |
//! | template of a service | `bh_<service>_tmpl` |
//! | runtime group of a service's shared tenants | `bh_<service>_rt` |
//! | runtime group of a service's database tenants | `bh_<service>_dbt` |
//! | tenant schema (schema mode) | `t_<id>` |
//! | tenant database (database mode) | `t_<id>_<s>` |
//! | tenant runtime role | `bh_t_<id>_<s>` |
//! | tenant schema owner (schema mode) | `bh_o_<id>_<s>` |
//!
//! `<id>` is the tenant UUID's 32 hex digits; `<s>` the first 8 hex digits of SHA-256 of the
//! service name (roles are cluster-wide, so the same tenant in two services needs two).
//! `bulkhead.current_tenant()` relies on runtime roles starting with `bh_t_` followed by `<id>`.

use bulkhead_model::{ServiceName, TenantId};
use sha2::{Digest, Sha256};

/// Prefix of every tenant runtime role.
pub const RUNTIME_ROLE_PREFIX: &str = "bh_t_";

fn service_tag(service: &ServiceName) -> String {
    hex::encode(&Sha256::digest(service.as_str().as_bytes())[..4])
}

/// The pool database of a service (shared tables and tenant schemas).
pub fn pool_database(service: &ServiceName) -> String {
    format!("bh_{service}")
}

/// The template database of a service (database tenants are copies of it).
pub fn template_database(service: &ServiceName) -> String {
    format!("bh_{service}_tmpl")
}

/// The group role holding table privileges for the shared tenants of a service.
pub fn runtime_group(service: &ServiceName) -> String {
    format!("bh_{service}_rt")
}

/// The group role holding table privileges in the tenant databases of a service (copied from
/// its template). Distinct from [`runtime_group`], so database tenants cannot reach the pool.
pub fn database_group(service: &ServiceName) -> String {
    format!("bh_{service}_dbt")
}

/// A schema tenant's schema.
pub fn tenant_schema(tenant: &TenantId) -> String {
    format!("t_{}", tenant.simple())
}

/// A database tenant's database.
pub fn tenant_database(tenant: &TenantId, service: &ServiceName) -> String {
    format!("t_{}_{}", tenant.simple(), service_tag(service))
}

/// The role the gateway switches to for a tenant of a service.
pub fn runtime_role(tenant: &TenantId, service: &ServiceName) -> String {
    format!(
        "{RUNTIME_ROLE_PREFIX}{}_{}",
        tenant.simple(),
        service_tag(service)
    )
}

/// The owner of a schema tenant's schema (never used by the gateway).
pub fn owner_role(tenant: &TenantId, service: &ServiceName) -> String {
    format!("bh_o_{}_{}", tenant.simple(), service_tag(service))
}

/// Quotes an identifier for SQL.
pub fn ident(name: &str) -> String {
    bulkhead_directory::quote_ident(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_postgres_identifiers_and_come_from_ids() {
        let t: TenantId = "3f2b8c1e-0d4a-4e1b-9c57-6a0f1e2d3c4b".parse().expect("id");
        let s: ServiceName = "a".repeat(48).parse().expect("service");
        for name in [
            pool_database(&s),
            template_database(&s),
            runtime_group(&s),
            database_group(&s),
            tenant_schema(&t),
            tenant_database(&t, &s),
            runtime_role(&t, &s),
            owner_role(&t, &s),
        ] {
            assert!(name.len() <= 63, "{name} is {} bytes", name.len());
        }
        assert_eq!(tenant_schema(&t), "t_3f2b8c1e0d4a4e1b9c576a0f1e2d3c4b");
        assert!(runtime_role(&t, &s).starts_with("bh_t_3f2b8c1e0d4a4e1b9c576a0f1e2d3c4b_"));
        let other: ServiceName = "b".parse().expect("service");
        assert_ne!(runtime_role(&t, &s), runtime_role(&t, &other));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }
}

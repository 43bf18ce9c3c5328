//! Every SQL identifier Bulkhead creates, derived from ids and validated service names only:
//! never from slugs or other free text. Each fits PostgreSQL's 63-byte limit.
//!
//! | object | name |
//! | --- | --- |
//! | pool database of a service | `bh_<service>` |
//! | template of a service | `bh_<service>_tmpl` |
//! | runtime group of a service's shared tenants | `bh_<service>_rt` |
//! | runtime group of a service's database tenants | `bh_<service>_dbt` |
//! | tenant schema (schema mode) | `t_<h>` |
//! | tenant database (database mode) | `t_<h>` |
//! | tenant runtime role | `bh_t_<h>` |
//! | tenant schema owner (schema mode) | `bh_o_<h>` |
//!
//! `<h>` is a tenant's *handle* in a service: 32 hex digits of HMAC-SHA256, under the
//! installation's naming secret (kept in the directory), of the service name and the tenant
//! id. `pg_roles`, `pg_namespace`, `pg_database` and `pg_stat_activity` are readable by
//! every role, so a name built from the id would tell any tenant the ids of its neighbours;
//! a handle tells nothing without the secret, not even whether a known id lives here.
//! Roles are cluster-wide, so the same tenant in two services has two handles.
//!
//! Installations older than directory version 9 named objects after the id
//! ([`Naming::Legacy`]: `t_<id>`, `t_<id>_<s>`, `bh_t_<id>_<s>`, `bh_o_<id>_<s>`, with `<s>`
//! 8 hex digits of SHA-256 of the service name); `bulkhead up` renames them (see
//! [`crate::rename`]).

use bulkhead_directory::{Directory, DirectoryError, NamingScheme, NamingSecret};
use bulkhead_model::{ServiceName, TenantId};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Prefix of every tenant runtime role.
pub const RUNTIME_ROLE_PREFIX: &str = "bh_t_";

/// Prefix of every schema owner role.
pub const OWNER_ROLE_PREFIX: &str = "bh_o_";

/// How tenant objects are named in this installation.
#[derive(Clone)]
pub enum Naming {
    /// Names built from the tenant id (before directory version 9).
    Legacy,
    /// Names built from a keyed hash of (service, tenant id).
    Keyed([u8; 32]),
}

impl std::fmt::Debug for Naming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Naming::Legacy => "Naming::Legacy",
            Naming::Keyed(_) => "Naming::Keyed",
        })
    }
}

impl From<&NamingSecret> for Naming {
    fn from(s: &NamingSecret) -> Self {
        match s.scheme {
            NamingScheme::Legacy => Naming::Legacy,
            NamingScheme::Keyed => Naming::Keyed(s.key),
        }
    }
}

impl Naming {
    /// The naming in force in the directory's installation.
    pub async fn of(dir: &Directory) -> Result<Self, DirectoryError> {
        Ok(Naming::from(&dir.naming_secret().await?))
    }

    /// The keyed naming of the installation, whatever scheme is in force (what a rename
    /// renames to).
    pub async fn keyed(dir: &Directory) -> Result<Self, DirectoryError> {
        Ok(Naming::Keyed(dir.naming_secret().await?.key))
    }

    /// A tenant's handle in a service (keyed), or its id's hex digits (legacy).
    fn handle(&self, tenant: &TenantId, service: &ServiceName) -> String {
        match self {
            Naming::Legacy => tenant.simple(),
            Naming::Keyed(key) => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                mac.update(b"bulkhead.names.v1\0");
                mac.update(service.as_str().as_bytes());
                mac.update(b"\0");
                mac.update(tenant.as_uuid().as_bytes());
                hex::encode(&mac.finalize().into_bytes()[..16])
            }
        }
    }

    /// A schema tenant's schema.
    pub fn tenant_schema(&self, tenant: &TenantId, service: &ServiceName) -> String {
        format!("t_{}", self.handle(tenant, service))
    }

    /// A database tenant's database.
    pub fn tenant_database(&self, tenant: &TenantId, service: &ServiceName) -> String {
        match self {
            Naming::Legacy => format!("t_{}_{}", tenant.simple(), service_tag(service)),
            Naming::Keyed(_) => format!("t_{}", self.handle(tenant, service)),
        }
    }

    /// The role the gateway switches to for a tenant of a service.
    pub fn runtime_role(&self, tenant: &TenantId, service: &ServiceName) -> String {
        match self {
            Naming::Legacy => format!(
                "{RUNTIME_ROLE_PREFIX}{}_{}",
                tenant.simple(),
                service_tag(service)
            ),
            Naming::Keyed(_) => format!("{RUNTIME_ROLE_PREFIX}{}", self.handle(tenant, service)),
        }
    }

    /// The owner of a schema tenant's schema (never used by the gateway).
    pub fn owner_role(&self, tenant: &TenantId, service: &ServiceName) -> String {
        match self {
            Naming::Legacy => format!(
                "{OWNER_ROLE_PREFIX}{}_{}",
                tenant.simple(),
                service_tag(service)
            ),
            Naming::Keyed(_) => format!("{OWNER_ROLE_PREFIX}{}", self.handle(tenant, service)),
        }
    }
}

/// How the `application_name` of a gateway backend session holding a tenant's context
/// begins (then a token unique to the switch): the runtime role's name, which every role can
/// already read in `pg_roles`, so the tag tells no more than the catalog does. The mover
/// finds the tenant's backends by it when it drains them at a cutover.
pub fn session_tag(runtime_role: &str) -> String {
    format!("{runtime_role} ")
}

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

/// True when `database` is named like a service's template ([`template_database`]).
pub fn is_template_database(database: &str) -> bool {
    database.starts_with("bh_") && database.ends_with("_tmpl")
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

/// Quotes an identifier for SQL.
pub fn ident(name: &str) -> String {
    bulkhead_directory::quote_ident(name)
}

/// Whether `name` (of a role, schema or database) contains a tenant id: its 32 hex digits
/// or its hyphenated form, in any case. What `verify` looks for in the catalogs.
pub fn embeds_tenant_id(name: &str, tenant: &TenantId) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.contains(&tenant.simple()) || lower.contains(&tenant.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (TenantId, ServiceName, Naming) {
        let t: TenantId = "3f2b8c1e-0d4a-4e1b-9c57-6a0f1e2d3c4b".parse().expect("id");
        let s: ServiceName = "a".repeat(48).parse().expect("service");
        (t, s, Naming::Keyed([7; 32]))
    }

    #[test]
    fn names_fit_postgres_identifiers() {
        let (t, s, keyed) = fixture();
        for naming in [keyed, Naming::Legacy] {
            for name in [
                pool_database(&s),
                template_database(&s),
                runtime_group(&s),
                database_group(&s),
                naming.tenant_schema(&t, &s),
                naming.tenant_database(&t, &s),
                naming.runtime_role(&t, &s),
                naming.owner_role(&t, &s),
            ] {
                assert!(name.len() <= 63, "{name} is {} bytes", name.len());
            }
        }
    }

    #[test]
    fn keyed_names_reveal_no_tenant_id() {
        let (t, s, keyed) = fixture();
        let names = [
            keyed.tenant_schema(&t, &s),
            keyed.tenant_database(&t, &s),
            keyed.runtime_role(&t, &s),
            keyed.owner_role(&t, &s),
        ];
        for name in &names {
            assert!(!embeds_tenant_id(name, &t), "{name}");
        }
        assert!(names[2].starts_with(RUNTIME_ROLE_PREFIX));
        assert!(names[3].starts_with(OWNER_ROLE_PREFIX));
        // Another secret, another service or another tenant: other names.
        let other_key = Naming::Keyed([8; 32]);
        assert_ne!(other_key.runtime_role(&t, &s), names[2]);
        let other: ServiceName = "b".parse().expect("service");
        assert_ne!(keyed.runtime_role(&t, &other), names[2]);
        assert_ne!(keyed.runtime_role(&TenantId::random(), &s), names[2]);
        // Stable: the same inputs give the same names.
        assert_eq!(keyed.runtime_role(&t, &s), names[2]);
    }

    #[test]
    fn legacy_names_are_the_old_ones() {
        let (t, s, _) = fixture();
        assert_eq!(
            Naming::Legacy.tenant_schema(&t, &s),
            "t_3f2b8c1e0d4a4e1b9c576a0f1e2d3c4b"
        );
        assert!(Naming::Legacy
            .runtime_role(&t, &s)
            .starts_with("bh_t_3f2b8c1e0d4a4e1b9c576a0f1e2d3c4b_"));
        assert!(embeds_tenant_id(&Naming::Legacy.runtime_role(&t, &s), &t));
        assert!(embeds_tenant_id(
            "X_3F2B8C1E-0D4A-4E1B-9C57-6A0F1E2D3C4B",
            &t
        ));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }
}

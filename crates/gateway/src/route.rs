//! Where a tenant's transactions go: the backend target of its placement and the context
//! every transaction starts with (role, search_path, tenant setting).
//!
//! And the catalog route of a service: where a service login's tenant-free statements go
//! before it chose a tenant (the catalog queries drivers and ORMs send when they connect:
//! type lookups, `SELECT version()`, `SHOW`). It runs them in one of the service's pool
//! databases as the catalog role, which holds no privilege and is bound to no tenant, with
//! `search_path` `pg_catalog` and no tenant setting; the guard sends it nothing but reads of
//! the catalogs (see `guard::catalog`).

use std::str::FromStr;
use std::sync::Arc;

use bulkhead_directory::Directory;
use bulkhead_model::{Mode, PlacementState, ServiceName, TenantId, TenantState};

use crate::backend::{BackendTarget, Signer};
use crate::GatewayError;

/// A resolved route.
#[derive(Debug, Clone)]
pub struct Route {
    /// The service (a metrics label).
    pub service: String,
    /// The cluster's name (the pool key).
    pub cluster: String,
    /// Where to connect.
    pub target: Arc<BackendTarget>,
    /// The tenant's runtime role (the context's identity, and the tag of its sessions).
    pub role: String,
    /// A shared tenant: its transactions run as the pool database's signed-context role
    /// where the database has one (see [`crate::backend::Signer`]).
    pub shared: bool,
    /// The search_path.
    pub search_path: String,
    /// The tenant; None on a service's catalog route.
    pub tenant: Option<TenantId>,
    /// The placement's epoch when resolved.
    pub epoch: i64,
    /// The tenant's tier (its limits).
    pub tier: String,
    /// The server version to report to the client.
    pub server_version: String,
}

/// The transaction's opening on a backend connection: what is sent before the client's
/// first statement, in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    /// The statements, as one query string.
    pub sql: String,
    /// How many statements it holds (each answered by a CommandComplete).
    pub statements: usize,
}

/// A context switch on one backend connection.
#[derive(Debug, Clone, Copy)]
pub struct Switch<'a> {
    /// The switch's token (see [`crate::backend::HeldContext`]).
    pub token: &'a str,
    /// The database's signer, if it has one.
    pub signer: Option<&'a Signer>,
    /// The connection's backend process id (a signed context names it).
    pub pid: i32,
    /// The role and search_path the session already holds (confirmed), not set again.
    pub holds: Option<(&'a str, &'a str)>,
}

impl Route {
    /// A schema tenant's affinity key and group (see [`crate::backend::affinity`]); None for
    /// shared and database tenants and the catalog route, whose backends share no per-tenant
    /// catalog state worth steering by.
    pub fn schema_affinity(&self) -> Option<(u64, u32)> {
        (!self.shared && !self.target.single_tenant && self.tenant.is_some()).then(|| {
            let key = crate::backend::affinity::key_of(&self.search_path);
            (key, crate::backend::affinity::group_of(key))
        })
    }

    /// The role this route's transactions run as on a connection whose database has
    /// `signer`: a shared tenant's run as the signed-context role, others as their own.
    pub fn session_role<'a>(&'a self, signer: Option<&'a Signer>) -> &'a str {
        match (self.shared, signer, &self.tenant) {
            (true, Some(signer), Some(_)) => &signer.role,
            _ => &self.role,
        }
    }

    /// The statements that set this route's context for the connection's session (see
    /// [`crate::backend::HeldContext`]): role and search_path (unless the session holds
    /// them already), tenant setting, its MAC (empty unless the context is signed) and the
    /// switch's token as `application_name`, as plain `SET`s (no plan to make) joined by
    /// `; `, and how many. Every value is an identifier Bulkhead generated, a UUID, hex or a
    /// token it made; all are quoted.
    pub fn switch_sql(&self, switch: Switch<'_>) -> (String, usize) {
        let role = self.session_role(switch.signer);
        let mac = match (role != self.role, &self.tenant, switch.signer) {
            (true, Some(tenant), Some(signer)) => signer.mac(tenant, switch.pid),
            _ => String::new(),
        };
        let mut sql = String::with_capacity(256);
        let mut n = 0;
        let keep = switch.holds;
        if keep.map(|(r, _)| r) != Some(role) {
            sql.push_str(&format!(
                "SET ROLE {}; ",
                bulkhead_provisioner::naming::ident(role)
            ));
            n += 1;
        }
        if keep.map(|(_, p)| p) != Some(self.search_path.as_str()) {
            // A list of (quoted) identifiers.
            sql.push_str(&format!("SET search_path = {}; ", self.search_path));
            n += 1;
        }
        sql.push_str(&format!(
            "SET bulkhead.tenant_id = '{}'; SET bulkhead.tenant_mac = '{mac}'; SET application_name = {}",
            self.tenant.map(|t| t.to_string()).unwrap_or_default(),
            literal(switch.token)
        ));
        (sql, n + 3)
    }

    /// A transaction's opening: `begin` (the client's own BEGIN, so its isolation level and
    /// access mode hold) and, when there is one, the context switch.
    pub fn opening(&self, begin: &str, switch: Option<Switch<'_>>) -> Opening {
        match switch {
            None => Opening {
                sql: begin.to_string(),
                statements: 1,
            },
            Some(switch) => {
                let (sql, n) = self.switch_sql(switch);
                Opening {
                    sql: format!("{begin}; {sql}"),
                    statements: 1 + n,
                }
            }
        }
    }

    /// A route for unit tests of what depends on the context alone.
    #[cfg(test)]
    pub fn for_tests(tenant: TenantId) -> Self {
        Route {
            service: "svc".into(),
            cluster: "local".into(),
            target: Arc::new(BackendTarget {
                host: "127.0.0.1".into(),
                port: 5432,
                user: "gw".into(),
                password: String::new(),
                database: "db".into(),
                single_tenant: false,
            }),
            role: format!("bh_t_{}", tenant.simple()),
            shared: false,
            search_path: "public, ref".into(),
            tenant: Some(tenant),
            epoch: 1,
            tier: "free".into(),
            server_version: "15".into(),
        }
    }
}

/// A SQL string literal of text Bulkhead generated (quotes doubled).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Resolves the route of a tenant in a service (one directory query), refusing a tenant
/// that is unknown, suspended, or not active in the service.
pub async fn resolve(
    dir: &Directory,
    service: &ServiceName,
    tenant: &TenantId,
    gateway_role: &str,
) -> Result<Route, GatewayError> {
    let facts = dir
        .route_facts(service, tenant)
        .await?
        .ok_or_else(|| GatewayError::NotAuthorized(format!("tenant {tenant} is not known")))?;
    if facts.slug_id_shaped {
        return Err(GatewayError::NotAuthorized(format!(
            "tenant {tenant} is not served until it is renamed: its slug has the shape of a tenant id, which could be mistaken for another tenant; run `bulkhead tenant rename {tenant} NEW-SLUG`"
        )));
    }
    if facts.tenant_state == TenantState::Suspended {
        return Err(GatewayError::NotAuthorized(format!(
            "tenant {tenant} is suspended"
        )));
    }
    let placement = match facts.placement {
        Some(p) if matches!(p.state, PlacementState::Active | PlacementState::Moving) => p,
        Some(p) if p.state == PlacementState::Suspended => {
            return Err(GatewayError::NotAuthorized(format!(
                "tenant {tenant} is suspended in service {service}"
            )))
        }
        _ => {
            return Err(GatewayError::NotAuthorized(format!(
                "tenant {tenant} has no active place in service {service}"
            )))
        }
    };
    if placement.held {
        return Err(GatewayError::Held(*tenant));
    }
    let search_path = match (&placement.mode, &placement.schema) {
        (Mode::Schema, Some(s)) => format!("{}, ref", bulkhead_provisioner::naming::ident(s)),
        _ => "public, ref".to_string(),
    };
    let mut route = of_placement(service, &placement, gateway_role, search_path)?;
    route.shared = placement.mode == Mode::Shared;
    route.tenant = Some(*tenant);
    route.tier = facts.tier.clone();
    Ok(route)
}

/// Resolves a service's catalog route (see the module's documentation); refused when the
/// service has no pool database.
pub async fn resolve_catalog(
    dir: &Directory,
    service: &ServiceName,
    gateway_role: &str,
) -> Result<Route, GatewayError> {
    let placement = dir.catalog_route_facts(service).await?.ok_or_else(|| {
        GatewayError::NotAuthorized(format!("service {service} has no database yet"))
    })?;
    of_placement(service, &placement, gateway_role, "pg_catalog".into())
}

/// A route to `placement` with no tenant and the default tier.
fn of_placement(
    service: &ServiceName,
    placement: &bulkhead_directory::RoutePlacement,
    gateway_role: &str,
    search_path: String,
) -> Result<Route, GatewayError> {
    let password = placement.gateway_password.clone().ok_or_else(|| {
        GatewayError::Backend(format!(
            "cluster {} is not prepared for the gateway",
            placement.cluster
        ))
    })?;
    let config = tokio_postgres::Config::from_str(&placement.admin_dsn)
        .map_err(|e| GatewayError::Backend(format!("cluster {} DSN: {e}", placement.cluster)))?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => {
            return Err(GatewayError::Backend(format!(
                "cluster {} has no TCP host",
                placement.cluster
            )))
        }
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    Ok(Route {
        service: service.to_string(),
        cluster: placement.cluster.clone(),
        target: Arc::new(BackendTarget {
            host,
            port,
            // A database tenant's database is reached by the gateway's second login (see
            // `bulkhead_directory::database_login_of`); the same password.
            user: match placement.mode {
                Mode::Database => bulkhead_directory::database_login_of(gateway_role),
                Mode::Shared | Mode::Schema => gateway_role.to_string(),
            },
            password,
            database: placement.database.clone(),
            single_tenant: placement.mode == Mode::Database,
        }),
        role: placement.role.clone(),
        shared: false,
        search_path,
        tenant: None,
        epoch: placement.epoch,
        tier: String::new(),
        server_version: placement
            .server_version
            .split_whitespace()
            .next()
            .unwrap_or("15")
            .to_string(),
    })
}

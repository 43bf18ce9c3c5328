//! Where a tenant's transactions go: the backend target of its placement and the context
//! every transaction starts with (role, search_path, tenant setting).

use std::str::FromStr;

use bulkhead_directory::Directory;
use bulkhead_model::{Mode, PlacementState, ServiceName, TenantId, TenantState};

use crate::backend::BackendTarget;
use crate::GatewayError;

/// A resolved route.
#[derive(Debug, Clone)]
pub struct Route {
    /// The service (a metrics label).
    pub service: String,
    /// The cluster's name (the pool key).
    pub cluster: String,
    /// Where to connect.
    pub target: BackendTarget,
    /// The runtime role.
    pub role: String,
    /// The search_path.
    pub search_path: String,
    /// The tenant.
    pub tenant: TenantId,
    /// The placement's epoch when resolved.
    pub epoch: i64,
    /// The server version to report to the client.
    pub server_version: String,
}

/// How many statements [`Route::prologue`] holds (each answered by a CommandComplete).
pub const PROLOGUE_STATEMENTS: usize = 4;

impl Route {
    /// Statements that open a transaction in the tenant's context: `begin` (the client's own
    /// BEGIN, so its isolation level and access mode hold) then the context settings. Every
    /// value is an identifier Bulkhead generated or a UUID; both are quoted.
    pub fn prologue(&self, begin: &str) -> String {
        format!(
            "{begin}; SET LOCAL ROLE {}; SET LOCAL search_path = {}; SET LOCAL bulkhead.tenant_id = '{}'",
            bulkhead_provisioner::naming::ident(&self.role),
            self.search_path,
            self.tenant
        )
    }
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
    let search_path = match (&placement.mode, &placement.schema) {
        (Mode::Schema, Some(s)) => format!("{}, ref", bulkhead_provisioner::naming::ident(s)),
        _ => "public, ref".to_string(),
    };
    Ok(Route {
        service: service.to_string(),
        cluster: placement.cluster.clone(),
        target: BackendTarget {
            host,
            port,
            user: gateway_role.to_string(),
            password,
            database: placement.database.clone(),
        },
        role: placement.role.clone(),
        search_path,
        tenant: *tenant,
        epoch: placement.epoch,
        server_version: placement
            .server_version
            .split_whitespace()
            .next()
            .unwrap_or("15")
            .to_string(),
    })
}

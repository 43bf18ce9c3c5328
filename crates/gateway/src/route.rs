//! Where a tenant's transactions go: the backend target of its placement and the context
//! every transaction starts with (role, search_path, tenant setting).

use std::str::FromStr;

use bulkhead_directory::Directory;
use bulkhead_model::{Mode, ServiceName, TenantId};

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

/// Resolves the route of a tenant in a service.
pub async fn resolve(
    dir: &Directory,
    service: &ServiceName,
    tenant: &TenantId,
) -> Result<Route, GatewayError> {
    let placement = dir.placement(service, tenant).await?.ok_or_else(|| {
        GatewayError::NotAuthorized(format!("tenant {tenant} has no place in service {service}"))
    })?;
    let cluster = dir.cluster(&placement.cluster).await?;
    let password = dir.gateway_password(&cluster.name).await?.ok_or_else(|| {
        GatewayError::Backend(format!(
            "cluster {} is not prepared for the gateway",
            cluster.name
        ))
    })?;
    let config = tokio_postgres::Config::from_str(&cluster.admin_dsn)
        .map_err(|e| GatewayError::Backend(format!("cluster {} DSN: {e}", cluster.name)))?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => {
            return Err(GatewayError::Backend(format!(
                "cluster {} has no TCP host",
                cluster.name
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
        cluster: cluster.name.to_string(),
        target: BackendTarget {
            host,
            port,
            user: dir.gateway_role().await?,
            password,
            database: placement.database.clone(),
        },
        role: placement.role.clone(),
        search_path,
        tenant: *tenant,
        epoch: placement.epoch,
        server_version: cluster
            .server_version
            .split_whitespace()
            .next()
            .unwrap_or("15")
            .to_string(),
    })
}

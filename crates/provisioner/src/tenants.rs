//! The tenant lifecycle: create (record, placement, provisioning, health check, activation)
//! and delete (teardown in every service, then the record).
//!
//! Invariant: a placement is `active` only after its place exists, is migrated and passed the
//! health check; a failed attempt removes what it created and leaves the placement `failed`
//! with the reason, and the same command retries it.

use bulkhead_directory::{
    Cluster, Directory, DirectoryError, NewPlacement, NewTenant, Placement, Service,
    ServiceDatabaseKind, Tenant, TenantRef,
};
use bulkhead_model::{ClusterName, Mode, Region, ServiceName, Slug, Tier};
use serde::{Deserialize, Serialize};

use crate::health::check_place;
use crate::migrate::{plans_for, MigrationPlan};
use crate::modes::{create_place, drop_place, RemovedData, TenantPlace};
use crate::naming::Naming;
use crate::service_db::ensure_service_database;
use crate::ProvisionError;

/// A request to create a tenant, optionally placed in a service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// The tenant record.
    #[serde(flatten)]
    pub tenant: NewTenant,
    /// Place it in this service.
    #[serde(default)]
    pub service: Option<ServiceName>,
    /// Override the mode the service's policy would choose.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Put it on this cluster (default: the service's home, or one in the tenant's region).
    #[serde(default)]
    pub cluster: Option<ClusterName>,
}

/// What creating a tenant did.
#[derive(Debug, Clone, Serialize)]
pub struct TenantCreated {
    /// The tenant record.
    #[serde(flatten)]
    pub tenant: Tenant,
    /// Its placement, when a service was given.
    pub placement: Option<Placement>,
}

impl TenantCreated {
    /// What the audit log keeps of it.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "slug": self.tenant.slug.to_string(),
            "placement": self.placement.as_ref().map(|p| serde_json::json!({
                "service": p.service.to_string(), "mode": p.mode.to_string(), "cluster": p.cluster.to_string(),
            })),
        })
    }
}

/// What deleting a tenant removed.
#[derive(Debug, Clone, Serialize)]
pub struct TenantDeleted {
    /// The tenant.
    pub tenant: Tenant,
    /// Per placement: the service, mode and what was removed.
    pub removed: Vec<(ServiceName, Mode, RemovedData)>,
}

/// Creates a tenant record (or reuses the one with that slug) and, with a service, provisions
/// its placement. Everything that can be refused (unknown service, region without a cluster,
/// full cluster) is checked before the record is written.
pub async fn create_tenant(
    dir: &Directory,
    req: &CreateTenant,
) -> Result<TenantCreated, ProvisionError> {
    let existing = match dir.tenant(&TenantRef::Slug(req.tenant.slug.clone())).await {
        Ok(t) if req.service.is_some() && req.tenant.id.is_none_or(|id| id == t.id) => Some(t),
        Ok(_) => {
            return Err(DirectoryError::AlreadyExists {
                kind: "tenant",
                name: req.tenant.slug.to_string(),
            }
            .into())
        }
        Err(DirectoryError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let Some(service_name) = &req.service else {
        let tenant = dir.create_tenant(&req.tenant).await?;
        return Ok(TenantCreated {
            tenant,
            placement: None,
        });
    };
    let service = dir.service(service_name).await?;
    let tier = existing
        .as_ref()
        .map(|t| t.tier.clone())
        .or_else(|| req.tenant.tier.clone())
        .unwrap_or_else(Tier::free);
    let region = match &existing {
        Some(t) => t.region.clone(),
        None => req.tenant.region.clone(),
    };
    let mode = req.mode.unwrap_or_else(|| service.mode_for(&tier));
    let cluster = choose_cluster(
        dir,
        &service,
        &req.tenant.slug,
        region.as_ref(),
        req.cluster.as_ref(),
    )
    .await?;
    let tenant = match existing {
        Some(t) => t,
        None => dir.create_tenant(&req.tenant).await?,
    };
    let placement = provision(dir, &service, &tenant, mode, &cluster).await?;
    Ok(TenantCreated {
        tenant,
        placement: Some(placement),
    })
}

/// Picks the cluster for a new placement: the one asked for, else the service's home, else
/// the emptiest cluster of the tenant's region; respects region pins and capacity.
async fn choose_cluster(
    dir: &Directory,
    service: &Service,
    slug: &Slug,
    region: Option<&Region>,
    asked: Option<&ClusterName>,
) -> Result<Cluster, ProvisionError> {
    let has_room = |c: &Cluster| c.capacity.is_none_or(|cap| c.placements < i64::from(cap));
    let in_region = |c: &Cluster| region.is_none_or(|r| *r == c.region);
    if let Some(name) = asked {
        let c = dir.cluster(name).await?;
        if !in_region(&c) {
            return Err(ProvisionError::RegionMismatch {
                cluster: c.name.to_string(),
                cluster_region: c.region.to_string(),
                tenant: slug.to_string(),
                tenant_region: region.map(|r| r.to_string()).unwrap_or_default(),
            });
        }
        if !has_room(&c) {
            return Err(ProvisionError::ClusterFull {
                cluster: c.name.to_string(),
                capacity: c.capacity.unwrap_or_default(),
            });
        }
        return Ok(c);
    }
    let home = dir.cluster(&service.cluster).await?;
    if in_region(&home) && has_room(&home) {
        return Ok(home);
    }
    let mut candidates: Vec<Cluster> = dir
        .list_clusters()
        .await?
        .into_iter()
        .filter(|c| in_region(c) && has_room(c))
        .collect();
    candidates.sort_by_key(|c| c.placements);
    candidates.into_iter().next().ok_or_else(|| match region {
        Some(region) => ProvisionError::NoClusterInRegion {
            region: region.to_string(),
            tenant: slug.to_string(),
        },
        None => ProvisionError::ClusterFull {
            cluster: home.name.to_string(),
            capacity: home.capacity.unwrap_or_default(),
        },
    })
}

/// Provisions one placement; on failure removes what was created and records why.
pub async fn provision(
    dir: &Directory,
    service: &Service,
    tenant: &Tenant,
    mode: Mode,
    cluster: &Cluster,
) -> Result<Placement, ProvisionError> {
    let naming = Naming::of(dir).await?;
    let place = TenantPlace::new(&naming, service, tenant.id, mode);
    dir.claim_placement(&NewPlacement {
        service: service.name.clone(),
        tenant_id: tenant.id,
        mode,
        cluster: cluster.name.clone(),
        database: place.database.clone(),
        schema: place.schema.clone(),
        role: place.role.clone(),
    })
    .await?;
    let plans = plans_for(dir, service).await?;
    match build(dir, service, tenant, cluster, &place, &plans).await {
        Ok(()) => {
            let version = plans.last().map(|p| p.version).unwrap_or(0);
            dir.activate_placement(&service.name, &tenant.id, version)
                .await?;
            tracing::info!(tenant = %tenant.id, service = %service.name, %mode, cluster = %cluster.name, "tenant provisioned");
            dir.placement(&service.name, &tenant.id)
                .await?
                .ok_or_else(|| DirectoryError::not_found_placement(&tenant.id).into())
        }
        Err(e) => {
            if let Err(cleanup) = drop_place(cluster, &place).await {
                tracing::error!(tenant = %tenant.id, error = %cleanup, "cleaning up a failed provisioning failed");
            }
            let reason = e.to_string();
            dir.fail_placement(&service.name, &tenant.id, &reason)
                .await?;
            Err(e)
        }
    }
}

/// Creates a tenant's place (its pool database or template current first), migrated to the
/// service's latest version, and health-checks it. Used by provisioning and by moves.
pub async fn build(
    dir: &Directory,
    service: &Service,
    tenant: &Tenant,
    cluster: &Cluster,
    place: &TenantPlace,
    plans: &[MigrationPlan],
) -> Result<(), ProvisionError> {
    let kind = match place.mode {
        Mode::Shared | Mode::Schema => ServiceDatabaseKind::Pool,
        Mode::Database => ServiceDatabaseKind::Template,
    };
    ensure_service_database(dir, service, cluster, kind, plans).await?;
    let label = format!("tenant {} ({})", tenant.slug, place.mode);
    let gateway = dir.gateway_role().await?;
    create_place(service, cluster, place, plans, &label, &gateway).await?;
    check_place(cluster, place, tenant.slug.as_str()).await
}

/// Tears down every placement of a tenant, then removes its record.
pub async fn delete_tenant(
    dir: &Directory,
    which: &TenantRef,
) -> Result<TenantDeleted, ProvisionError> {
    let tenant = dir.tenant(which).await?;
    let naming = Naming::of(dir).await?;
    let mut removed = Vec::new();
    for placement in dir.placements_of(&tenant.id).await? {
        dir.set_placement_state(
            &placement.service,
            &tenant.id,
            bulkhead_model::PlacementState::Deleting,
        )
        .await?;
        let service = dir.service(&placement.service).await?;
        let cluster = dir.cluster(&placement.cluster).await?;
        let place = TenantPlace::new(&naming, &service, tenant.id, placement.mode);
        let data = drop_place(&cluster, &place).await?;
        dir.remove_placement(&placement.service, &tenant.id).await?;
        tracing::info!(tenant = %tenant.id, service = %placement.service, mode = %placement.mode, "tenant placement deleted");
        removed.push((placement.service.clone(), placement.mode, data));
    }
    dir.delete_tenant(&tenant.id).await?;
    Ok(TenantDeleted { tenant, removed })
}

//! Where a tenant's rows are now: its placement in a service as a mover's side.

use bulkhead_directory::{Directory, Placement, Service, Tenant};
use bulkhead_model::{PlacementState, ServiceName};
use bulkhead_mover::place::Side;
use bulkhead_provisioner::naming::Naming;
use bulkhead_provisioner::TenantPlace;

use crate::BackupError;

/// The tenant's service (the one given, or its only one), placement and side.
pub async fn current(
    dir: &Directory,
    tenant: &Tenant,
    service: Option<&ServiceName>,
) -> Result<(Service, Placement, Side), BackupError> {
    let placements = dir.placements_of(&tenant.id).await?;
    let placement = match service {
        Some(s) => placements.into_iter().find(|p| p.service == *s),
        None if placements.len() > 1 => {
            return Err(BackupError::Refused(format!(
                "tenant {} lives in several services; name one with --service",
                tenant.slug
            )))
        }
        None => placements.into_iter().next(),
    }
    .ok_or_else(|| {
        BackupError::Refused(format!(
            "tenant {} has no place to back up or restore",
            tenant.slug
        ))
    })?;
    if !matches!(
        placement.state,
        PlacementState::Active | PlacementState::Suspended
    ) {
        return Err(BackupError::Refused(format!(
            "tenant {} is {} in service {}",
            tenant.slug, placement.state, placement.service
        )));
    }
    let naming = Naming::of(dir).await?;
    let service = dir.service(&placement.service).await?;
    let side = Side {
        cluster: dir.cluster(&placement.cluster).await?,
        place: TenantPlace::new(&naming, &service, tenant.id, placement.mode),
    };
    Ok((service, placement, side))
}

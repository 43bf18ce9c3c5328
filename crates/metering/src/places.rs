//! The databases tenants live in, and who lives in each: what the outbox harvest and the
//! storage sampler visit.

use std::collections::BTreeMap;

use bulkhead_directory::{Cluster, Directory, Placement};
use bulkhead_model::{ClusterName, PlacementState};

use crate::MeteringError;

/// One database on one cluster and the placements in it.
#[derive(Debug, Clone)]
pub struct Database {
    /// The cluster.
    pub cluster: Cluster,
    /// The database.
    pub name: String,
    /// The placements in it (active or suspended).
    pub placements: Vec<Placement>,
}

/// Every database holding tenant data, with its placements.
pub async fn databases(dir: &Directory) -> Result<Vec<Database>, MeteringError> {
    let mut by_db: BTreeMap<(ClusterName, String), Vec<Placement>> = BTreeMap::new();
    for service in dir.list_services().await? {
        for p in dir.placements_of_service(&service.name).await? {
            if matches!(p.state, PlacementState::Active | PlacementState::Suspended) {
                by_db
                    .entry((p.cluster.clone(), p.database.clone()))
                    .or_default()
                    .push(p);
            }
        }
    }
    let mut clusters: BTreeMap<ClusterName, Cluster> = BTreeMap::new();
    let mut out = Vec::with_capacity(by_db.len());
    for ((cluster, name), placements) in by_db {
        let c = match clusters.get(&cluster) {
            Some(c) => c.clone(),
            None => {
                let c = dir.cluster(&cluster).await?;
                clusters.insert(cluster, c.clone());
                c
            }
        };
        out.push(Database {
            cluster: c,
            name,
            placements,
        });
    }
    Ok(out)
}

//! Where a tenant lived at an instant: its placement now, walked back through its moves (the
//! directory keeps every move with the instant its placement switched, rollbacks included).

use bulkhead_directory::{Directory, Placement};
use bulkhead_model::{ClusterName, Mode};
use chrono::{DateTime, Utc};

use crate::PitrError;

/// The tenant's mode and cluster at `at`, given its `current` placement.
pub async fn place_at(
    dir: &Directory,
    current: &Placement,
    at: DateTime<Utc>,
) -> Result<(Mode, ClusterName), PitrError> {
    let mut switched: Vec<_> = dir
        .moves_of(&current.service, &current.tenant_id)
        .await?
        .into_iter()
        .filter_map(|m| m.switched_at.map(|s| (s, m)))
        .collect();
    switched.sort_by_key(|(s, _)| *s);
    // The first switch after `at` left the place the tenant had at `at`; with none, the
    // tenant is where it was then.
    Ok(match switched.into_iter().find(|(s, _)| *s > at) {
        Some((_, m)) => (m.from_mode, m.from_cluster),
        None => (current.mode, current.cluster.clone()),
    })
}

//! Which tenant each Bulkhead object belongs to, learnt from the directory: names are opaque
//! (a keyed hash), so a role, schema or database cannot be traced to its tenant from the
//! catalog alone. Also every tenant id the directory knows, to find names that embed one.

use std::collections::{BTreeMap, HashMap, HashSet};

use bulkhead_directory::{Directory, DirectoryError, Move, MovePhase};
use bulkhead_model::TenantId;
use bulkhead_provisioner::naming::Naming;
use bulkhead_provisioner::TenantPlace;

/// The tenants behind Bulkhead's object names.
#[derive(Debug, Default)]
pub(crate) struct KnownTenants {
    /// Role, schema and database names → their tenant.
    by_name: HashMap<String, TenantId>,
    /// Every known tenant id, as 32 lowercase hex digits.
    ids: HashSet<String>,
    /// (cluster, database) → the runtime roles of the places there, with their tenant (the
    /// first place seen of a role).
    bindings: HashMap<(String, String), BTreeMap<String, TenantId>>,
}

impl KnownTenants {
    /// Every placement's names, and those of moves still under way or kept (their other
    /// side), under the installation's naming.
    pub(crate) async fn load(dir: &Directory) -> Result<Self, DirectoryError> {
        let naming = Naming::of(dir).await?;
        let mut known = KnownTenants::default();
        for t in dir.list_tenants().await? {
            known.ids.insert(t.id.simple());
        }
        let unfinished = dir.unfinished_moves().await?;
        for svc in dir.list_services().await? {
            for p in dir.placements_of_service(&svc.name).await? {
                let place = TenantPlace::new(&naming, &svc, p.tenant_id, p.mode);
                known.add(&place, p.cluster.as_str(), true);
                // What the directory routes to (the same names, unless an upgrade is half done).
                known.by_name.insert(p.role.clone(), p.tenant_id);
                if let Some(s) = &p.schema {
                    known.by_name.insert(s.clone(), p.tenant_id);
                }
            }
            for m in unfinished.iter().filter(|m| m.service == svc.name) {
                // A kept source exists for sure; a target under construction may not yet.
                for (mode, cluster, built) in sides(m) {
                    let place = TenantPlace::new(&naming, &svc, m.tenant_id, mode);
                    known.add(&place, cluster, built);
                }
            }
        }
        Ok(known)
    }

    fn add(&mut self, place: &TenantPlace, cluster: &str, bound: bool) {
        let t = place.tenant;
        for name in [
            Some(&place.role),
            place.owner.as_ref(),
            place.schema.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            self.by_name.insert(name.clone(), t);
        }
        if place.mode == bulkhead_model::Mode::Database {
            self.by_name.insert(place.database.clone(), t);
        }
        if !bound {
            return;
        }
        self.bindings
            .entry((cluster.to_string(), place.database.clone()))
            .or_default()
            .entry(place.role.clone())
            .or_insert(t);
    }

    /// The tenant a role, schema or database belongs to, if it is a tenant's.
    pub(crate) fn tenant_of(&self, name: &str) -> Option<TenantId> {
        self.by_name.get(name).copied()
    }

    /// The runtime roles that must be bound in `database` on `cluster`, with their tenants.
    pub(crate) fn bindings_in(
        &self,
        cluster: &str,
        database: &str,
    ) -> Option<&BTreeMap<String, TenantId>> {
        self.bindings
            .get(&(cluster.to_string(), database.to_string()))
            .filter(|b| !b.is_empty())
    }

    /// A known tenant id (32 hex digits) that `name` embeds, in any case, with or without
    /// hyphens.
    pub(crate) fn embedded_id(&self, name: &str) -> Option<String> {
        let digits: Vec<u8> = name
            .bytes()
            .filter(|b| *b != b'-')
            .map(|b| b.to_ascii_lowercase())
            .collect();
        digits.windows(32).find_map(|w| {
            let text = std::str::from_utf8(w).ok()?;
            self.ids.contains(text).then(|| text.to_string())
        })
    }
}

/// The (mode, cluster) of each side of a move that may hold objects, and whether that side
/// is surely built (the source, or a kept source after the switch).
fn sides(m: &Move) -> Vec<(bulkhead_model::Mode, &str, bool)> {
    let from = (m.from_mode, m.from_cluster.as_str(), true);
    let to = (m.to_mode, m.to_cluster.as_str(), false);
    match m.phase {
        MovePhase::Switched => vec![from],
        _ => vec![from, to],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_embedded_ids_in_every_spelling() {
        let t: TenantId = "3f2b8c1e-0d4a-4e1b-9c57-6a0f1e2d3c4b".parse().expect("id");
        let mut known = KnownTenants::default();
        known.ids.insert(t.simple());
        let hex = t.simple();
        for name in [
            format!("t_{hex}"),
            format!("bh_t_{hex}_1b32c28c"),
            format!("bh {hex} 1234.5"),
            format!("x_{}", t.to_string().to_uppercase()),
        ] {
            assert_eq!(known.embedded_id(&name), Some(hex.clone()), "{name}");
        }
        for name in [
            "bh_t_0123456789abcdef0123456789abcdef",
            "bh_billing_rt",
            "t_short",
        ] {
            assert_eq!(known.embedded_id(name), None, "{name}");
        }
    }
}

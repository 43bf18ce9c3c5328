//! The upgrade to opaque names: an installation made before directory version 9 named each
//! tenant's role, schema owner, schema and database after the tenant's id, which every role
//! can read in the catalogs. This renames them to their keyed names (see [`crate::naming`]),
//! online, one placement at a time, and records every role's binding to its tenant, which
//! `bulkhead.current_tenant()` checks instead of reading the id off the role's name.
//!
//! Per placement: the tenant's new transactions are held at every gateway, its open ones get
//! a bounded drain (then their sessions are ended), the objects are renamed (a database only
//! once no session is connected to it), the placement takes the new names with epoch + 1
//! (gateways resolve it again) and is released in the same statement. Sides of moves under way
//! or kept are renamed too. Every step looks at what exists first, so a rename cut short by a
//! crash is finished by the next run. Each service's `moves/<service>` lock is held
//! throughout, so no move or migration runs meanwhile.
//!
//! Invariant: when the installation is marked `keyed`, every placement the directory lists
//! routes to objects with keyed names.

use std::time::{Duration, Instant};

use bulkhead_directory::{Cluster, Directory, Move, MovePhase, NamingScheme, Placement, Service};
use bulkhead_model::{Mode, PlacementState};
use serde::Serialize;
use tokio_postgres::Client;

use crate::connect::admin_connect;
use crate::migrate::moves_lock_key;
use crate::modes::{bind_role, TenantPlace};
use crate::naming::{ident, session_tag, Naming};
use crate::service_db::HELPERS_SQL;
use crate::ProvisionError;

/// How long a renamed tenant's open transactions may run on before their sessions end.
const DRAIN: Duration = Duration::from_secs(5);
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// What the upgrade did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RenameReport {
    /// Places looked at.
    pub places: usize,
    /// Places whose objects were renamed (some or all of them).
    pub renamed: usize,
    /// Databases whose helpers (binding table, `current_tenant()`) were installed again.
    pub databases: usize,
    /// Whether the installation was already on keyed names.
    pub already_keyed: bool,
}

/// Renames every tenant object still named after its tenant id, then marks the installation
/// as keyed. Cheap when there is nothing to do: also run at every `bulkhead up`, it finishes
/// a rename cut short and catches a place provisioned under the old names meanwhile.
pub async fn rename_legacy_objects(
    dir: &Directory,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<RenameReport, ProvisionError> {
    let secret = dir.naming_secret().await?;
    let keyed = Naming::Keyed(secret.key);
    let mut report = RenameReport {
        already_keyed: secret.scheme == NamingScheme::Keyed,
        ..RenameReport::default()
    };
    let unfinished = dir.unfinished_moves().await?;
    for service in dir.list_services().await? {
        let placements = dir.placements_of_service(&service.name).await?;
        let stale: Vec<&Placement> = placements
            .iter()
            .filter(|p| {
                TenantPlace::new(&keyed, &service, p.tenant_id, p.mode).role != p.role
                    || unfinished
                        .iter()
                        .any(|m| m.tenant_id == p.tenant_id && m.service == p.service)
            })
            .collect();
        if stale.is_empty() && report.already_keyed {
            continue;
        }
        let _lock = dir.lock(&moves_lock_key(&service.name), LOCK_WAIT).await?;
        if !report.already_keyed {
            report.databases += reinstall_helpers(dir, &service).await?;
        }
        for p in stale {
            report.places += 1;
            let cluster = dir.cluster(&p.cluster).await?;
            let old = TenantPlace::new(&Naming::Legacy, &service, p.tenant_id, p.mode);
            let new = TenantPlace::new(&keyed, &service, p.tenant_id, p.mode);
            if p.role != new.role {
                progress(&format!(
                    "renaming the objects of tenant {} in service {} ({})",
                    p.tenant_id, service.name, p.mode
                ));
                rename_routed(dir, &cluster, p, &old, &new).await?;
                report.renamed += 1;
            }
            for m in unfinished
                .iter()
                .filter(|m| m.tenant_id == p.tenant_id && m.service == p.service)
            {
                for (mode, cluster_name) in other_sides(m, p) {
                    let cluster = dir.cluster(&cluster_name).await?;
                    let old = TenantPlace::new(&Naming::Legacy, &service, p.tenant_id, mode);
                    let new = TenantPlace::new(&keyed, &service, p.tenant_id, mode);
                    rename_objects(&cluster, &old, &new).await?;
                }
            }
        }
    }
    if !report.already_keyed {
        dir.finish_renaming().await?;
    }
    Ok(report)
}

/// The sides of a move other than the one the placement routes to now.
fn other_sides(m: &Move, p: &Placement) -> Vec<(Mode, bulkhead_model::ClusterName)> {
    let mut sides = Vec::new();
    for (mode, cluster) in [(m.from_mode, &m.from_cluster), (m.to_mode, &m.to_cluster)] {
        let routed = mode == p.mode && *cluster == p.cluster;
        let gone = m.phase == MovePhase::RolledBack;
        if !routed && !gone {
            sides.push((mode, cluster.clone()));
        }
    }
    sides
}

/// The helpers (binding table and view, `current_tenant()` that reads them) in every pool
/// database and template of the service.
async fn reinstall_helpers(dir: &Directory, service: &Service) -> Result<usize, ProvisionError> {
    let mut n = 0;
    for db in dir.service_databases(&service.name).await? {
        let cluster = dir.cluster(&db.cluster).await?;
        let client = admin_connect(&cluster, &db.database).await?;
        client
            .batch_execute(HELPERS_SQL)
            .await
            .map_err(ProvisionError::sql(format!(
                "installing Bulkhead's helpers in {}",
                db.database
            )))?;
        client.release();
        n += 1;
    }
    Ok(n)
}

/// Renames the objects of the place a placement routes to, holding its tenant meanwhile.
async fn rename_routed(
    dir: &Directory,
    cluster: &Cluster,
    p: &Placement,
    old: &TenantPlace,
    new: &TenantPlace,
) -> Result<(), ProvisionError> {
    let live = matches!(p.state, PlacementState::Active | PlacementState::Moving);
    if live {
        dir.hold_placement(&p.service, &p.tenant_id, true).await?;
    }
    let renamed = async {
        if live {
            drain(cluster, old).await?;
        }
        rename_objects(cluster, old, new).await
    }
    .await;
    match renamed {
        Ok(()) => {
            dir.rename_placement_objects(
                &p.service,
                &p.tenant_id,
                &new.database,
                new.schema.as_deref(),
                &new.role,
            )
            .await?;
            Ok(())
        }
        Err(e) => {
            if live {
                if let Err(release) = dir.hold_placement(&p.service, &p.tenant_id, false).await {
                    tracing::error!(tenant = %p.tenant_id, error = %release, "releasing a tenant after a failed rename failed");
                }
            }
            Err(e)
        }
    }
}

/// Renames whatever of `old`'s objects exist to `new`'s names and binds the runtime role to
/// its tenant in the place's database. Idempotent.
pub(crate) async fn rename_objects(
    cluster: &Cluster,
    old: &TenantPlace,
    new: &TenantPlace,
) -> Result<(), ProvisionError> {
    let admin = admin_connect(cluster, "postgres").await?;
    rename_role(&admin, &old.role, &new.role).await?;
    if let (Some(o), Some(n)) = (&old.owner, &new.owner) {
        rename_role(&admin, o, n).await?;
    }
    if old.mode == Mode::Database {
        rename_database(&admin, &old.database, &new.database).await?;
    }
    admin.release();
    let db = match admin_connect(cluster, &new.database).await {
        Ok(db) => db,
        // A move's target not built yet: nothing there to bind.
        Err(_) if old.mode == Mode::Database => return Ok(()),
        Err(e) => return Err(e),
    };
    if old.mode == Mode::Database {
        db.batch_execute(HELPERS_SQL)
            .await
            .map_err(ProvisionError::sql(format!(
                "installing Bulkhead's helpers in {}",
                new.database
            )))?;
    }
    if let (Some(o), Some(n)) = (&old.schema, &new.schema) {
        rename_schema(&db, o, n).await?;
    }
    if Catalog::Roles.has(&db, &new.role).await? {
        bind_role(&db, new).await?;
    }
    db.release();
    Ok(())
}

/// A catalog whose objects are renamed: its table and name column.
#[derive(Clone, Copy)]
enum Catalog {
    Roles,
    Namespaces,
    Databases,
}

impl Catalog {
    fn table_and_column(self) -> (&'static str, &'static str) {
        match self {
            Catalog::Roles => ("pg_roles", "rolname"),
            Catalog::Namespaces => ("pg_namespace", "nspname"),
            Catalog::Databases => ("pg_database", "datname"),
        }
    }

    async fn has(self, client: &Client, name: &str) -> Result<bool, ProvisionError> {
        let (table, column) = self.table_and_column();
        Ok(client
            .query_opt(
                &format!("SELECT 1 FROM pg_catalog.{table} WHERE {column} = $1"),
                &[&name],
            )
            .await
            .map_err(ProvisionError::sql(format!("reading {table}")))?
            .is_some())
    }

    /// Whether `old` should be renamed to `new`: it exists and `new` does not yet (a rename
    /// that already happened, or was never needed, is skipped).
    async fn to_rename(
        self,
        client: &Client,
        old: &str,
        new: &str,
    ) -> Result<bool, ProvisionError> {
        Ok(old != new && self.has(client, old).await? && !self.has(client, new).await?)
    }
}

async fn rename_role(admin: &Client, old: &str, new: &str) -> Result<(), ProvisionError> {
    if !Catalog::Roles.to_rename(admin, old, new).await? {
        return Ok(());
    }
    admin
        .batch_execute(&format!(
            "ALTER ROLE {} RENAME TO {}",
            ident(old),
            ident(new)
        ))
        .await
        .map_err(ProvisionError::sql(format!("renaming role {old}")))
}

/// Renames a schema and its migration records (kept under the schema's name) together.
async fn rename_schema(db: &Client, old: &str, new: &str) -> Result<(), ProvisionError> {
    if !Catalog::Namespaces.to_rename(db, old, new).await? {
        return Ok(());
    }
    db.batch_execute(&format!(
        "BEGIN; ALTER SCHEMA {} RENAME TO {}; UPDATE bulkhead.applied_migrations SET target = {} WHERE target = {}; COMMIT;",
        ident(old),
        ident(new),
        literal(new),
        literal(old)
    ))
    .await
    .map_err(ProvisionError::sql(format!("renaming schema {old}")))
}

/// Renames a database once nobody is connected to it: its sessions are ended, and the
/// rename retried while new ones slip in.
async fn rename_database(admin: &Client, old: &str, new: &str) -> Result<(), ProvisionError> {
    if !Catalog::Databases.to_rename(admin, old, new).await? {
        return Ok(());
    }
    let sql = format!("ALTER DATABASE {} RENAME TO {}", ident(old), ident(new));
    let mut attempt = 0;
    loop {
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&old],
            )
            .await
            .map_err(ProvisionError::sql(format!("ending the sessions of {old}")))?;
        match admin.batch_execute(&sql).await {
            Ok(()) => return Ok(()),
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE)
                    && attempt < 50 =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(ProvisionError::sql(format!("renaming database {old}"))(e)),
        }
    }
}

/// Waits up to [`DRAIN`] for the tenant's open transactions at `place` to end, then ends
/// the sessions still in one. New ones are held at the gateways meanwhile.
async fn drain(cluster: &Cluster, place: &TenantPlace) -> Result<(), ProvisionError> {
    let admin = admin_connect(cluster, "postgres").await?;
    let whole_database = place.mode == Mode::Database;
    let query = "SELECT pid FROM pg_stat_activity
                  WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'
                    AND state IS DISTINCT FROM 'idle' AND xact_start IS NOT NULL
                    AND ($2 OR starts_with(application_name, $3))";
    let tag = session_tag(&place.role);
    let started = Instant::now();
    loop {
        let open: Vec<i32> = admin
            .query(query, &[&place.database, &whole_database, &tag])
            .await
            .map_err(ProvisionError::sql(
                "looking for the tenant's open transactions",
            ))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if open.is_empty() {
            break;
        }
        if started.elapsed() >= DRAIN {
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid",
                    &[&open],
                )
                .await
                .map_err(ProvisionError::sql("ending the tenant's open transactions"))?;
            tracing::warn!(tenant = %place.tenant, sessions = open.len(), "renaming ended transactions that outlasted the drain");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin.release();
    Ok(())
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

//! Creating and tearing down one tenant's place in each isolation mode.
//!
//! - shared: a runtime role in the service's runtime group; the rows live in the pool's
//!   shared tables under RLS.
//! - schema: schema `t_<h>` in the pool database, owned by a per-tenant NOLOGIN owner role;
//!   the runtime role gets USAGE and DML only (never CREATE), and the schema is migrated.
//! - database: database `t_<h>` copied from the service's template, CONNECT revoked from
//!   PUBLIC and granted to the tenant's runtime role only.
//!
//! In every mode the database holding the place records which tenant the runtime role
//! serves (`bulkhead.tenant_roles`, see `sql/helpers.sql`): names are opaque, so that is how
//! `bulkhead.current_tenant()` checks the tenant setting against the role.
//!
//! Teardown tolerates a partial provisioning: every step is "if it exists".

use std::time::Duration;

use bulkhead_directory::{Cluster, Service};
use bulkhead_model::{Mode, TenantId};

use crate::cluster_prep::ensure_gateway_role;
use crate::connect::admin_connect;
use crate::migrate::{apply_batch, ApplySettings, MigrationPlan, Target, TargetKind};
use crate::naming::{
    database_group, ident, pool_database, runtime_group, template_database, Naming,
};
use crate::service_db::create_role;
use crate::ProvisionError;

/// Where a tenant of a service lives in a given mode.
#[derive(Debug, Clone)]
pub struct TenantPlace {
    /// The mode.
    pub mode: Mode,
    /// The service.
    pub service: bulkhead_model::ServiceName,
    /// The tenant.
    pub tenant: TenantId,
    /// Its database.
    pub database: String,
    /// Its schema (schema mode).
    pub schema: Option<String>,
    /// Its runtime role.
    pub role: String,
    /// The owner of its schema (schema mode).
    pub owner: Option<String>,
    /// The service's runtime group for this mode (none for schema tenants).
    pub group: String,
}

impl TenantPlace {
    /// The names of a tenant's place in `mode`, under the installation's `naming`.
    pub fn new(naming: &Naming, service: &Service, tenant: TenantId, mode: Mode) -> Self {
        let name = &service.name;
        let (database, schema, owner) = match mode {
            Mode::Shared => (pool_database(name), None, None),
            Mode::Schema => (
                pool_database(name),
                Some(naming.tenant_schema(&tenant, name)),
                Some(naming.owner_role(&tenant, name)),
            ),
            Mode::Database => (naming.tenant_database(&tenant, name), None, None),
        };
        Self {
            mode,
            service: service.name.clone(),
            tenant,
            database,
            schema,
            owner,
            role: naming.runtime_role(&tenant, name),
            group: match mode {
                Mode::Database => database_group(&service.name),
                _ => runtime_group(&service.name),
            },
        }
    }

    /// The migration target of this place (schema and database modes).
    pub fn target(&self, cluster: &Cluster, label: String) -> Option<Target> {
        let kind = match self.mode {
            Mode::Shared => return None,
            Mode::Schema => TargetKind::Schema,
            Mode::Database => TargetKind::Database,
        };
        Some(Target {
            kind,
            service: self.service.clone(),
            cluster: cluster.clone(),
            database: self.database.clone(),
            schema: self.schema.clone(),
            tenant: Some(self.tenant),
            grantee: match self.mode {
                Mode::Schema => self.role.clone(),
                _ => self.group.clone(),
            },
            label,
        })
    }

    /// The search_path the gateway (and the health check) uses for this tenant.
    pub fn search_path(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}, ref", ident(s)),
            None => "public, ref".into(),
        }
    }
}

/// Taken first in the query string (one transaction) that grants or revokes a schema
/// tenant's CONNECT on its pool database: that rewrites the database's pg_database row, and
/// two such changes at once fail with "tuple concurrently updated", so they take turns.
const DATABASE_ACL_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtext('bulkhead.database_acl'), hashtext(current_database()));";

/// Creates the tenant's place. Pool database or template must already be current.
pub async fn create_place(
    service: &Service,
    cluster: &Cluster,
    place: &TenantPlace,
    plans: &[MigrationPlan],
    label: &str,
    gateway: &str,
) -> Result<(), ProvisionError> {
    let gw = ident(gateway);
    let database_login = bulkhead_directory::database_login_of(gateway);
    let admin = admin_connect(cluster, "postgres").await?;
    let (r, g) = (ident(&place.role), ident(&place.group));
    create_role(&admin, &place.role, "creating the tenant's runtime role").await?;
    // The login that reaches this place switches to the role (see `cluster_prep`); a shared
    // tenant's transactions run as its group, so no login needs its role.
    let login = match place.mode {
        Mode::Shared => None,
        Mode::Schema => Some(gateway),
        Mode::Database => Some(database_login.as_str()),
    };
    if let Some(login) = login {
        admin
            .batch_execute(&format!(
                "{} GRANT {r} TO {};",
                ensure_gateway_role(login),
                ident(login)
            ))
            .await
            .map_err(ProvisionError::sql(
                "granting the tenant's role to the gateway",
            ))?;
    }
    match place.mode {
        Mode::Shared => {
            // The gateway runs shared tenants' transactions as the group itself, with a
            // signed context (see `sql/helpers.sql`).
            admin
                .batch_execute(&format!("GRANT {g} TO {r}; GRANT {g} TO {gw};"))
                .await
                .map_err(ProvisionError::sql("granting the runtime group"))?;
            let pool = admin_connect(cluster, &place.database).await?;
            bind_role(&pool, place).await?;
            crate::service_db::ensure_context_key(&pool, &place.group, gateway).await?;
            pool.release();
        }
        Mode::Schema => {
            let owner = place.owner.as_deref().unwrap_or_default();
            create_role(&admin, owner, "creating the tenant's schema owner").await?;
            let pool = admin_connect(cluster, &place.database).await?;
            let s = ident(place.schema.as_deref().unwrap_or_default());
            pool.batch_execute(&format!(
                "{DATABASE_ACL_LOCK}
                 CREATE SCHEMA IF NOT EXISTS {s} AUTHORIZATION {o};
                 REVOKE ALL ON SCHEMA {s} FROM PUBLIC;
                 GRANT USAGE ON SCHEMA {s} TO {r};
                 GRANT CONNECT ON DATABASE {d} TO {r};",
                o = ident(owner),
                d = ident(&place.database)
            ))
            .await
            .map_err(ProvisionError::sql(format!("creating schema {s}")))?;
            bind_role(&pool, place).await?;
            pool.release();
            migrate_place(cluster, place, plans, label).await?;
        }
        Mode::Database => {
            admin
                .batch_execute(&format!("GRANT {g} TO {r}"))
                .await
                .map_err(ProvisionError::sql("granting the runtime group"))?;
            copy_template(&admin, &template_database(&service.name), &place.database).await?;
            admin
                .batch_execute(&format!(
                    "REVOKE ALL ON DATABASE {d} FROM PUBLIC; GRANT CONNECT ON DATABASE {d} TO {r}, {gwd};",
                    d = ident(&place.database),
                    gwd = ident(&database_login)
                ))
                .await
                .map_err(ProvisionError::sql(format!(
                    "securing database {}",
                    place.database
                )))?;
            let db = admin_connect(cluster, &place.database).await?;
            bind_role(&db, place).await?;
            db.release();
            // The copy is at the template's version, which the caller just made current.
        }
    }
    admin.release();
    Ok(())
}

/// Records in the database holding `place` that its runtime role serves its tenant (by the
/// role's oid, so a rename keeps the binding; a stale row of a reused oid is replaced).
pub(crate) async fn bind_role(
    client: &tokio_postgres::Client,
    place: &TenantPlace,
) -> Result<(), ProvisionError> {
    client
        .execute(
            "INSERT INTO bulkhead.tenant_roles (role_oid, tenant_id)
             SELECT oid, $2 FROM pg_catalog.pg_roles WHERE rolname = $1
             ON CONFLICT (role_oid) DO UPDATE SET tenant_id = EXCLUDED.tenant_id",
            &[&place.role, &place.tenant.as_uuid()],
        )
        .await
        .map_err(ProvisionError::sql("recording the tenant's role binding"))?;
    Ok(())
}

/// Applies the service's migrations a schema or database place lacks (shared places follow
/// their pool database).
pub async fn migrate_place(
    cluster: &Cluster,
    place: &TenantPlace,
    plans: &[MigrationPlan],
    label: &str,
) -> Result<(), ProvisionError> {
    let Some(target) = place.target(cluster, label.to_string()) else {
        return Ok(());
    };
    let mut client = admin_connect(cluster, &place.database).await?;
    // A new schema takes every migration in one transaction, one round trip for all its
    // statements and one privilege check: provisioning cost does not grow with the history.
    let result = apply_batch(&mut client, &[&target], plans, ApplySettings::default())
        .await
        .into_iter()
        .next()
        .unwrap_or_else(|| unreachable!("apply_batch answers once per target"));
    result.map_err(|f| {
        ProvisionError::Migration(format!("migrating {label} failed: {}", f.message))
    })?;
    client.release();
    Ok(())
}

/// `CREATE DATABASE ... TEMPLATE`, retried while the template is briefly in use (a migration
/// of the template just finished).
async fn copy_template(
    admin: &tokio_postgres::Client,
    template: &str,
    database: &str,
) -> Result<(), ProvisionError> {
    let sql = format!(
        "CREATE DATABASE {} TEMPLATE {}",
        ident(database),
        ident(template)
    );
    let mut attempt = 0;
    loop {
        match admin.batch_execute(&sql).await {
            Ok(()) => return Ok(()),
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE)
                    && attempt < 10 =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                // Say who holds the template: that is what the operator must end.
                let holders: Vec<String> = admin
                    .query(
                        "SELECT format('pid %s (%s%s, %s, %s)', pid, backend_type,
                                coalesce(', ' || nullif(application_name, ''), ''), state, left(query, 80))
                           FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                        &[&template],
                    )
                    .await
                    .map(|rows| rows.iter().map(|r| r.get(0)).collect())
                    .unwrap_or_default();
                let context = if holders.is_empty() {
                    format!("creating database {database} from {template}")
                } else {
                    format!(
                        "creating database {database} from {template} (connected to it: {})",
                        holders.join("; ")
                    )
                };
                return Err(ProvisionError::sql(context)(e));
            }
        }
    }
}

/// Removes everything a tenant's place holds: its rows (shared), its schema (schema) or its
/// database (database), and its roles. What is already gone is skipped.
pub async fn drop_place(
    cluster: &Cluster,
    place: &TenantPlace,
) -> Result<RemovedData, ProvisionError> {
    drop_place_with(cluster, place, true).await
}

/// Like [`drop_place`], keeping the tenant's runtime role when `drop_role` is false: a
/// move's source on the cluster that also holds its target shares that role.
pub async fn drop_place_with(
    cluster: &Cluster,
    place: &TenantPlace,
    drop_role: bool,
) -> Result<RemovedData, ProvisionError> {
    let mut removed = RemovedData::default();
    let r = ident(&place.role);
    match place.mode {
        Mode::Shared => {
            if let Ok(pool) = admin_connect(cluster, &place.database).await {
                removed.rows = delete_shared_rows(&pool, &place.tenant).await?;
                if drop_role {
                    unbind_role(&pool, &place.role).await?;
                }
                pool.release();
            }
        }
        Mode::Schema => {
            if let Ok(pool) = admin_connect(cluster, &place.database).await {
                let s = ident(place.schema.as_deref().unwrap_or_default());
                // The schema's migration records go with it: a place made again under the
                // same name (a tenant moved back, an id reused) is migrated from scratch.
                let mut sql = format!(
                    "{DATABASE_ACL_LOCK} DROP SCHEMA IF EXISTS {s} CASCADE; DELETE FROM bulkhead.applied_migrations WHERE target = {};",
                    literal(place.schema.as_deref().unwrap_or_default())
                );
                if drop_role {
                    unbind_role(&pool, &place.role).await?;
                }
                let runtime = drop_role.then_some(&place.role);
                for role in [runtime, place.owner.as_ref()].into_iter().flatten() {
                    sql.push_str(&format!(
                        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {lit}) THEN EXECUTE 'DROP OWNED BY {id}'; END IF; END $$;",
                        lit = literal(role),
                        id = ident(role).replace('\'', "''")
                    ));
                }
                pool.batch_execute(&sql)
                    .await
                    .map_err(ProvisionError::sql(format!("dropping schema {s}")))?;
                removed.schema = place.schema.clone();
                pool.release();
            }
        }
        Mode::Database => {
            let admin = admin_connect(cluster, "postgres").await?;
            admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    ident(&place.database)
                ))
                .await
                .map_err(ProvisionError::sql(format!(
                    "dropping database {}",
                    place.database
                )))?;
            removed.database = Some(place.database.clone());
        }
    }
    let admin = admin_connect(cluster, "postgres").await?;
    let mut sql = if drop_role {
        format!("DROP ROLE IF EXISTS {r};")
    } else if place.mode == Mode::Schema {
        // The schema is gone, and with it the role's grants on its tables; what is left is
        // the CONNECT on the pool database the schema mode granted.
        format!(
            "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {lit}) THEN EXECUTE 'REVOKE CONNECT ON DATABASE {d} FROM {id}'; END IF; END $$;",
            lit = literal(&place.role),
            d = ident(&place.database).replace('\'', "''"),
            id = r.replace('\'', "''")
        )
    } else {
        String::new()
    };
    if let Some(owner) = &place.owner {
        sql.push_str(&format!("DROP ROLE IF EXISTS {};", ident(owner)));
    }
    admin
        .batch_execute(&sql)
        .await
        .map_err(ProvisionError::sql("dropping the tenant's roles"))?;
    admin.release();
    Ok(removed)
}

/// Forgets a runtime role's binding in the database of `client` (before the role goes).
/// A database made before bindings existed has no table to forget from.
async fn unbind_role(client: &tokio_postgres::Client, role: &str) -> Result<(), ProvisionError> {
    match client
        .execute(
            "DELETE FROM bulkhead.tenant_roles WHERE role_oid IN (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1)",
            &[&role],
        )
        .await
    {
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => Ok(()),
        Err(e) => Err(ProvisionError::sql("removing the tenant's role binding")(e)),
        Ok(_) => Ok(()),
    }
}

/// What a teardown removed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RemovedData {
    /// Rows deleted from shared tables, per table.
    pub rows: Vec<(String, u64)>,
    /// The schema dropped.
    pub schema: Option<String>,
    /// The database dropped.
    pub database: Option<String>,
}

/// Deletes a tenant's rows from every shared table. Foreign-key triggers are skipped for the
/// transaction (all of the tenant's rows go, so no reference is left dangling between them),
/// which makes the order of tables irrelevant.
async fn delete_shared_rows(
    pool: &tokio_postgres::Client,
    tenant: &TenantId,
) -> Result<Vec<(String, u64)>, ProvisionError> {
    let tables = pool
        .query(
            "SELECT n.nspname, c.relname FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
              WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname",
            &[],
        )
        .await
        .map_err(ProvisionError::sql("listing shared tables"))?;
    let mut counts = Vec::new();
    pool.batch_execute("BEGIN; SET LOCAL session_replication_role = replica")
        .await
        .map_err(ProvisionError::sql("deleting shared rows"))?;
    for t in &tables {
        let (schema, table): (String, String) = (t.get(0), t.get(1));
        let sql = format!(
            "DELETE FROM {}.{} WHERE tenant_id = $1",
            ident(&schema),
            ident(&table)
        );
        match pool.execute(&sql, &[&tenant.as_uuid()]).await {
            Ok(n) => counts.push((table, n)),
            Err(e) => {
                let _ = pool.batch_execute("ROLLBACK").await;
                return Err(ProvisionError::sql(format!("deleting rows from {table}"))(
                    e,
                ));
            }
        }
    }
    pool.batch_execute("COMMIT")
        .await
        .map_err(ProvisionError::sql("deleting shared rows"))?;
    Ok(counts)
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

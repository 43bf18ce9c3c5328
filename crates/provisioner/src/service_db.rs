//! A service's databases on a cluster: the pool database (shared tables in `public`,
//! reference data in `ref`, one schema per schema tenant) and the template database kept at
//! the current migration version, from which database tenants are copied.

use std::time::Duration;

use bulkhead_directory::{Cluster, Directory, Service, ServiceDatabaseKind};
use tokio_postgres::Client;

use crate::connect::admin_connect;
use crate::migrate::{apply_pending, ApplySettings, MigrationPlan, Target, TargetKind};
use crate::naming::{database_group, ident, pool_database, runtime_group, template_database};
use crate::ProvisionError;

/// Bulkhead's SQL helpers (`bulkhead.current_tenant()`, the applied-migrations table, the
/// `ref` schema, revoked defaults, the usage outbox).
pub const HELPERS_SQL: &str = concat!(
    include_str!("sql/helpers.sql"),
    include_str!("sql/usage_outbox.sql")
);

/// The usage outbox and `bulkhead.usage()` alone (idempotent): installed by the outbox
/// harvest into databases made before it existed.
pub const USAGE_OUTBOX_SQL: &str = include_str!("sql/usage_outbox.sql");

const LOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// The database name of a service database.
pub fn database_name(service: &Service, kind: ServiceDatabaseKind) -> String {
    match kind {
        ServiceDatabaseKind::Pool => pool_database(&service.name),
        ServiceDatabaseKind::Template => template_database(&service.name),
    }
}

/// The migration target of a service database.
pub fn service_target(service: &Service, cluster: &Cluster, kind: ServiceDatabaseKind) -> Target {
    let database = database_name(service, kind);
    Target {
        kind: match kind {
            ServiceDatabaseKind::Pool => TargetKind::Pool,
            ServiceDatabaseKind::Template => TargetKind::Template,
        },
        service: service.name.clone(),
        cluster: cluster.clone(),
        label: format!("{} {database}@{}", kind.as_str(), cluster.name),
        database,
        schema: None,
        tenant: None,
        grantee: group_of(service, kind),
    }
}

/// The group that gets table privileges in a service database.
pub fn group_of(service: &Service, kind: ServiceDatabaseKind) -> String {
    match kind {
        ServiceDatabaseKind::Pool => runtime_group(&service.name),
        ServiceDatabaseKind::Template => database_group(&service.name),
    }
}

/// Makes sure the service database of `kind` exists on `cluster` and is at the newest
/// migration; creates and migrates it if needed. Serialized across processes.
pub async fn ensure_service_database(
    dir: &Directory,
    service: &Service,
    cluster: &Cluster,
    kind: ServiceDatabaseKind,
    plans: &[MigrationPlan],
) -> Result<(), ProvisionError> {
    let latest = plans.last().map(|p| p.version).unwrap_or(0);
    let is_current = |dbs: &[bulkhead_directory::ServiceDatabase]| {
        dbs.iter().any(|d| {
            d.cluster == cluster.name
                && d.kind == kind
                && d.schema_version == latest
                && d.migration_error.is_none()
        })
    };
    if is_current(&dir.service_databases(&service.name).await?) {
        return Ok(());
    }
    let _lock = dir
        .lock(
            &format!(
                "service-db/{}/{}/{}",
                service.name,
                cluster.name,
                kind.as_str()
            ),
            LOCK_TIMEOUT,
        )
        .await?;
    if is_current(&dir.service_databases(&service.name).await?) {
        return Ok(());
    }
    let database = database_name(service, kind);
    let gateway = dir.gateway_role().await?;
    create_database(service, cluster, kind, &database, &gateway).await?;
    dir.record_service_database(&service.name, &cluster.name, kind, &database)
        .await?;
    let target = service_target(service, cluster, kind);
    let mut client = admin_connect(cluster, &database).await?;
    client
        .batch_execute(HELPERS_SQL)
        .await
        .map_err(ProvisionError::sql(format!(
            "installing Bulkhead's helpers in {database}"
        )))?;
    if kind == ServiceDatabaseKind::Pool {
        ensure_context_key(&client, &runtime_group(&service.name), &gateway).await?;
    }
    let outcome = apply_pending(&mut client, &target, plans, ApplySettings::default()).await;
    if kind == ServiceDatabaseKind::Pool && outcome.is_ok() {
        client.release();
    }
    match outcome {
        Ok(applied) => {
            dir.set_service_database_version(&service.name, &cluster.name, kind, applied.to, None)
                .await?;
            Ok(())
        }
        Err(failure) => {
            dir.set_service_database_version(
                &service.name,
                &cluster.name,
                kind,
                failure.at,
                Some(&failure.message),
            )
            .await?;
            Err(ProvisionError::Migration(format!(
                "migrating {} failed: {}",
                target.label, failure.message
            )))
        }
    }
}

async fn create_database(
    service: &Service,
    cluster: &Cluster,
    kind: ServiceDatabaseKind,
    database: &str,
    gateway: &str,
) -> Result<(), ProvisionError> {
    let admin = admin_connect(cluster, "postgres").await?;
    let group = group_of(service, kind);
    create_role(&admin, &group, &format!("creating role {group}")).await?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await
        .map_err(ProvisionError::sql("reading pg_database"))?
        .is_some();
    if !exists {
        if let Err(e) = admin
            .batch_execute(&format!("CREATE DATABASE {}", ident(database)))
            .await
        {
            if e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) {
                return Err(ProvisionError::sql(format!("creating database {database}"))(e));
            }
        }
    }
    let (d, g) = (ident(database), ident(&group));
    let mut sql = format!("REVOKE ALL ON DATABASE {d} FROM PUBLIC;");
    match kind {
        ServiceDatabaseKind::Pool => sql.push_str(&format!(
            "{} GRANT CONNECT ON DATABASE {d} TO {g}, {};",
            crate::cluster_prep::ensure_gateway_role(gateway),
            ident(gateway)
        )),
        ServiceDatabaseKind::Template => {
            sql.push_str(&format!("ALTER DATABASE {d} IS_TEMPLATE true;"))
        }
    }
    admin
        .batch_execute(&sql)
        .await
        .map_err(ProvisionError::sql(format!("securing database {database}")))?;
    admin.release();
    Ok(())
}

/// Makes the shared tenants' contexts in the pool database `client` is connected to signed
/// under a key of its own (made if missing), readable by the gateway's login (see
/// `sql/helpers.sql`). Idempotent.
pub async fn ensure_context_key(
    client: &Client,
    group: &str,
    gateway: &str,
) -> Result<(), ProvisionError> {
    client
        .execute(
            "SELECT bulkhead.ensure_context_key($1::text::regrole, $2::text::regrole)",
            &[&ident(group), &ident(gateway)],
        )
        .await
        .map_err(ProvisionError::sql(
            "making the pool database's context key",
        ))?;
    Ok(())
}

/// Creates a NOLOGIN role with no special rights; an existing one (from an earlier attempt of
/// the same tenant or service: the names come from ids) is kept.
pub(crate) async fn create_role(
    admin: &Client,
    role: &str,
    context: &str,
) -> Result<(), ProvisionError> {
    let sql = format!(
        "CREATE ROLE {} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT",
        ident(role)
    );
    match admin.batch_execute(&sql).await {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT) => Ok(()),
        Err(e) => Err(ProvisionError::sql(context)(e)),
    }
}

/// Drops every database of a service on a cluster and its runtime group.
pub async fn drop_service_databases(
    dir: &Directory,
    service: &Service,
    cluster: &Cluster,
) -> Result<(), ProvisionError> {
    let admin = admin_connect(cluster, "postgres").await?;
    for kind in [ServiceDatabaseKind::Pool, ServiceDatabaseKind::Template] {
        let database = database_name(service, kind);
        let d = ident(&database);
        // Two statements: DROP DATABASE refuses to run in the implicit transaction of a
        // multi-statement query.
        for sql in [
            format!("ALTER DATABASE {d} IS_TEMPLATE false"),
            format!("DROP DATABASE {d} WITH (FORCE)"),
        ] {
            if let Err(e) = admin.batch_execute(&sql).await {
                if e.code() != Some(&tokio_postgres::error::SqlState::UNDEFINED_DATABASE) {
                    return Err(ProvisionError::sql(format!("dropping {database}"))(e));
                }
            }
        }
        dir.forget_service_database(&service.name, &cluster.name, kind)
            .await?;
    }
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {}; DROP ROLE IF EXISTS {};",
            ident(&runtime_group(&service.name)),
            ident(&database_group(&service.name))
        ))
        .await
        .map_err(ProvisionError::sql("dropping the service's runtime groups"))?;
    admin.release();
    Ok(())
}

//! A directory on a throwaway cluster registered as cluster `main`, the billing migration
//! set, and a way to run SQL as a tenant exactly as the gateway will (role, search_path and
//! tenant setting, set locally in one transaction).

#![allow(dead_code)]

use std::path::Path;

use bulkhead_directory::{
    Directory, MigrationFile, NewCluster, NewService, Placement, Service, Tenant,
};
use bulkhead_model::Mode;
use bulkhead_pgkit::{shared_cluster, ThrowawayCluster};
use bulkhead_provisioner::migrate::read_migrations_dir;
use bulkhead_provisioner::{create_service, create_tenant, CreateTenant};
use tokio_postgres::{Client, NoTls, Row};

pub fn pg() -> &'static ThrowawayCluster {
    shared_cluster().expect("cluster")
}

pub async fn directory(label: &str) -> Directory {
    let db = pg().create_database(label).await.expect("control db");
    let dir = Directory::connect(&db.dsn).await.expect("connect");
    dir.migrate().await.expect("migrate");
    dir.add_cluster(&NewCluster {
        name: "main".parse().expect("name"),
        region: "local".parse().expect("region"),
        admin_dsn: pg().dsn("postgres"),
        capacity: None,
    })
    .await
    .expect("cluster");
    dir
}

pub fn billing_files() -> Vec<MigrationFile> {
    read_migrations_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/billing"))
        .expect("fixtures")
}

pub async fn service(
    dir: &Directory,
    name: &str,
    mode: Mode,
    extra: Vec<MigrationFile>,
) -> Service {
    let mut migrations = billing_files();
    migrations.extend(extra);
    create_service(
        dir,
        &NewService {
            name: name.parse().expect("service"),
            default_mode: mode,
            tier_modes: Default::default(),
            cluster: None,
            reference_tables: vec!["countries".into()],
            migrations,
        },
    )
    .await
    .expect("create service")
}

pub fn request(slug: &str, service: &str, mode: Mode) -> CreateTenant {
    CreateTenant {
        tenant: bulkhead_directory::NewTenant {
            slug: slug.parse().expect("slug"),
            id: None,
            tier: None,
            region: None,
        },
        service: Some(service.parse().expect("service")),
        mode: Some(mode),
        cluster: None,
    }
}

pub async fn tenant(dir: &Directory, slug: &str, service: &str, mode: Mode) -> (Tenant, Placement) {
    let created = create_tenant(dir, &request(slug, service, mode))
        .await
        .expect("create tenant");
    (created.tenant, created.placement.expect("placement"))
}

pub async fn connect(database: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(&pg().dsn(database), NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

/// Runs `sql` as the tenant of `placement`, in one transaction, as the gateway will.
pub async fn as_tenant(
    placement: &Placement,
    sql: &str,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    as_role_with_tenant(placement, &placement.tenant_id.to_string(), sql).await
}

/// Like [`as_tenant`] but with an arbitrary tenant setting (for spoofing attempts).
pub async fn as_role_with_tenant(
    placement: &Placement,
    tenant_setting: &str,
    sql: &str,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let mut client = connect(&placement.database).await;
    let tx = client.transaction().await?;
    let path = match &placement.schema {
        Some(s) => format!("\"{s}\", ref"),
        None => "public, ref".into(),
    };
    tx.batch_execute(&format!(
        "SET LOCAL ROLE \"{}\"; SET LOCAL search_path = {path}; SET LOCAL bulkhead.tenant_id = '{tenant_setting}'",
        placement.role
    ))
    .await?;
    let rows = tx.query(sql, &[]).await?;
    tx.commit().await?;
    Ok(rows)
}

pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no code: {e}"))
}

pub async fn count(placement: &Placement, sql: &str) -> i64 {
    as_tenant(placement, sql).await.expect(sql)[0].get(0)
}

/// The server's message of an error.
pub fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

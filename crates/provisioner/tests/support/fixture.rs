//! What the tests and benchmarks of several crates start from (included with `#[path]`: it is
//! test code, not an API): a control database, a cluster registered as `main`, a service, and
//! tenants placed in it — by default on the test binary's shared cluster with the billing
//! fixtures.
#![allow(dead_code)]

use std::path::Path;

use bulkhead_directory::{Directory, MigrationFile, NewCluster, NewService, NewTenant};
use bulkhead_model::{Mode, TenantId};
use bulkhead_pgkit::{shared_cluster, ThrowawayCluster};
use bulkhead_provisioner::migrate::read_migrations_dir;
use bulkhead_provisioner::{
    add_cluster, create_service, create_tenant, CreateTenant, TenantCreated,
};

/// A fresh, migrated control database on the shared cluster named after `label`, and its
/// database name.
pub async fn control(label: &str) -> (Directory, String) {
    let pg = shared_cluster().expect("cluster");
    let control = pg.create_database(label).await.expect("control");
    (migrated(&control.dsn).await, control.name)
}

/// A migrated control database `control` on a cluster of the caller's own (a benchmark's).
pub async fn control_on(pg: &ThrowawayCluster) -> Directory {
    let admin = pg.connect("postgres").await.expect("admin");
    admin
        .batch_execute("CREATE DATABASE control")
        .await
        .expect("control");
    migrated(&pg.dsn("control")).await
}

/// The directory at `dsn`, migrated.
pub async fn migrated(dsn: &str) -> Directory {
    let dir = Directory::connect(dsn).await.expect("directory");
    dir.migrate().await.expect("migrate");
    dir
}

/// Registers the server at `admin_dsn` as cluster `main`.
pub async fn add_main(dir: &Directory, admin_dsn: &str) {
    add_cluster(
        dir,
        &NewCluster {
            name: "main".parse().expect("n"),
            region: "local".parse().expect("r"),
            admin_dsn: admin_dsn.to_string(),
            capacity: None,
        },
    )
    .await
    .expect("cluster");
}

/// The billing fixtures (customers, orders, items, invoices, events; `countries` reference).
pub fn billing_migrations() -> Vec<MigrationFile> {
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../provisioner/tests/fixtures/billing");
    read_migrations_dir(&fixtures).expect("fixtures")
}

/// Registers `service` (shared mode by default) with these migrations and reference tables.
pub async fn add_service(
    dir: &Directory,
    service: &str,
    migrations: Vec<MigrationFile>,
    reference: &[&str],
) {
    create_service(
        dir,
        &NewService {
            name: service.parse().expect("s"),
            default_mode: Mode::Shared,
            tier_modes: Default::default(),
            cluster: None,
            reference_tables: reference.iter().map(|r| r.to_string()).collect(),
            migrations,
        },
    )
    .await
    .expect("service");
}

/// [`control`], the shared cluster as `main`, and `service` with the billing fixtures.
pub async fn billing(label: &str, service: &str) -> Directory {
    let (dir, _) = control(label).await;
    add_main(&dir, &shared_cluster().expect("cluster").dsn("postgres")).await;
    add_service(&dir, service, billing_migrations(), &["countries"]).await;
    dir
}

/// Creates a tenant of `service` in `mode` on `cluster` (default: the service's), pinned to
/// `region`.
pub async fn place(
    dir: &Directory,
    service: &str,
    slug: &str,
    mode: Mode,
    cluster: Option<&str>,
    region: Option<&str>,
) -> TenantCreated {
    create_tenant(
        dir,
        &CreateTenant {
            tenant: NewTenant {
                slug: slug.parse().expect("slug"),
                id: None,
                tier: None,
                region: region.map(|r| r.parse().expect("region")),
            },
            service: Some(service.parse().expect("s")),
            mode: Some(mode),
            cluster: cluster.map(|c| c.parse().expect("cluster")),
        },
    )
    .await
    .expect("tenant")
}

/// [`place`], returning the tenant's id.
pub async fn place_tenant(
    dir: &Directory,
    service: &str,
    slug: &str,
    mode: Mode,
    cluster: Option<&str>,
    region: Option<&str>,
) -> TenantId {
    place(dir, service, slug, mode, cluster, region)
        .await
        .tenant
        .id
}

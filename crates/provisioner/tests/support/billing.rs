//! A control database with the test binary's shared cluster registered as `main` and a
//! service built from the billing fixtures, and tenants placed in it: what the tests of
//! several crates start from. Included with `#[path]` (it is test code, not an API).
#![allow(dead_code)]

use std::path::Path;

use bulkhead_directory::{Directory, NewCluster, NewService, NewTenant};
use bulkhead_model::{Mode, TenantId};
use bulkhead_pgkit::shared_cluster;
use bulkhead_provisioner::migrate::read_migrations_dir;
use bulkhead_provisioner::{add_cluster, create_service, create_tenant, CreateTenant};

/// A fresh, migrated control database named after `label`, and its database name.
pub async fn control(label: &str) -> (Directory, String) {
    let pg = shared_cluster().expect("cluster");
    let control = pg.create_database(label).await.expect("control");
    let dir = Directory::connect(&control.dsn).await.expect("dir");
    dir.migrate().await.expect("migrate");
    (dir, control.name)
}

/// [`control`], the shared cluster as `main`, and service `service` with the billing
/// fixtures (`countries` as reference data).
pub async fn billing(label: &str, service: &str) -> Directory {
    let (dir, _) = control(label).await;
    add_cluster(
        &dir,
        &NewCluster {
            name: "main".parse().expect("n"),
            region: "local".parse().expect("r"),
            admin_dsn: shared_cluster().expect("cluster").dsn("postgres"),
            capacity: None,
        },
    )
    .await
    .expect("cluster");
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../provisioner/tests/fixtures/billing");
    create_service(
        &dir,
        &NewService {
            name: service.parse().expect("s"),
            default_mode: Mode::Shared,
            tier_modes: Default::default(),
            cluster: None,
            reference_tables: vec!["countries".into()],
            migrations: read_migrations_dir(&fixtures).expect("fixtures"),
        },
    )
    .await
    .expect("service");
    dir
}

/// Creates a tenant of `service` in `mode` on `cluster` (default: the service's), pinned to
/// `region`.
pub async fn place_tenant(
    dir: &Directory,
    service: &str,
    slug: &str,
    mode: Mode,
    cluster: Option<&str>,
    region: Option<&str>,
) -> TenantId {
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
    .tenant
    .id
}

//! What the move and backup benchmarks share (included with `#[path]`): a durable throwaway
//! cluster with a directory, a service with one orders-shaped table, and two shared tenants
//! filled with `rows` and `others` orders.

use bulkhead_directory::{Directory, MigrationFile, NewCluster, NewService, NewTenant};
use bulkhead_model::{Mode, TenantId};
use bulkhead_pgkit::ThrowawayCluster;
use bulkhead_provisioner::{add_cluster, create_service, create_tenant, CreateTenant};

/// The orders table (7 columns, primary key leading with tenant_id, one more index).
pub const ORDERS: &str = "CREATE TABLE orders (
    tenant_id uuid NOT NULL DEFAULT bulkhead.current_tenant(),
    id bigint NOT NULL,
    customer_id bigint NOT NULL,
    amount numeric(12, 2) NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    note text,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX orders_by_customer ON orders (tenant_id, customer_id);";

/// Its columns, in order.
pub const COLUMNS: &str = "tenant_id, id, customer_id, amount, status, created_at, note";

/// The cluster, the directory and the big tenant (the other one is there to be skipped).
pub struct Bench {
    pub pg: ThrowawayCluster,
    pub dir: Directory,
    pub big: TenantId,
}

async fn tenant(dir: &Directory, slug: &str) -> TenantId {
    create_tenant(
        dir,
        &CreateTenant {
            tenant: NewTenant {
                slug: slug.parse().expect("slug"),
                id: None,
                tier: None,
                region: None,
            },
            service: Some("bench".parse().expect("service")),
            mode: Some(Mode::Shared),
            cluster: None,
        },
    )
    .await
    .expect("tenant")
    .tenant
    .id
}

/// Sets everything up; the orders live in the pool database `bh_bench`.
pub async fn setup(rows: i64, others: i64) -> Bench {
    let pg = ThrowawayCluster::start_durable().expect("cluster");
    let admin = pg.connect("postgres").await.expect("admin");
    admin
        .batch_execute("CREATE DATABASE control")
        .await
        .expect("control");
    let dir = Directory::connect(&pg.dsn("control"))
        .await
        .expect("directory");
    dir.migrate().await.expect("migrate");
    add_cluster(
        &dir,
        &NewCluster {
            name: "main".parse().expect("n"),
            region: "local".parse().expect("r"),
            admin_dsn: pg.dsn("postgres"),
            capacity: None,
        },
    )
    .await
    .expect("cluster");
    create_service(
        &dir,
        &NewService {
            name: "bench".parse().expect("s"),
            default_mode: Mode::Shared,
            tier_modes: Default::default(),
            cluster: None,
            reference_tables: vec![],
            migrations: vec![MigrationFile {
                version: 1,
                name: "orders".into(),
                sql: ORDERS.into(),
            }],
        },
    )
    .await
    .expect("service");
    let big = tenant(&dir, "big").await;
    let other = tenant(&dir, "other").await;
    let pool = pg.connect("bh_bench").await.expect("pool");
    for (t, n) in [(big, rows), (other, others)] {
        pool.batch_execute(&format!(
            "INSERT INTO orders ({COLUMNS}) SELECT '{t}', g, g % 5000, (g % 10000) / 100.0, \
             (ARRAY['new', 'paid', 'shipped'])[1 + g % 3], now() - g * interval '1 second', \
             CASE WHEN g % 7 = 0 THEN 'gift wrap, leave at the door' END \
             FROM generate_series(1, {n}) g"
        ))
        .await
        .expect("fill");
    }
    pool.batch_execute("VACUUM ANALYZE orders")
        .await
        .expect("vacuum");
    Bench { pg, dir, big }
}

//! What the move and backup benchmarks share (included with `#[path]`): a durable throwaway
//! cluster with a directory, a service with one orders-shaped table, and two shared tenants
//! filled with `rows` and `others` orders.

use bulkhead_directory::{Directory, MigrationFile};
use bulkhead_model::{Mode, TenantId};
use bulkhead_pgkit::ThrowawayCluster;

#[path = "../../crates/provisioner/tests/support/fixture.rs"]
pub mod fixture;

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

/// `n` orders of tenant `t`.
pub fn fill(t: &TenantId, n: i64) -> String {
    format!(
        "INSERT INTO orders ({COLUMNS}) SELECT '{t}', g, g % 5000, (g % 10000) / 100.0, \
         (ARRAY['new', 'paid', 'shipped'])[1 + g % 3], now() - g * interval '1 second', \
         CASE WHEN g % 7 = 0 THEN 'gift wrap, leave at the door' END \
         FROM generate_series(1, {n}) g"
    )
}

/// The cluster, the directory and the big tenant (the other one is there to be skipped).
pub struct Bench {
    pub pg: ThrowawayCluster,
    pub dir: Directory,
    pub big: TenantId,
}

/// Sets everything up; the orders live in the pool database `bh_bench`.
pub async fn setup(rows: i64, others: i64) -> Bench {
    let pg = ThrowawayCluster::start_durable().expect("cluster");
    let dir = fixture::control_on(&pg).await;
    fixture::add_main(&dir, &pg.dsn("postgres")).await;
    let orders = MigrationFile {
        version: 1,
        name: "orders".into(),
        sql: ORDERS.into(),
    };
    fixture::add_service(&dir, "bench", vec![orders], &[]).await;
    let tenant = |slug| fixture::place_tenant(&dir, "bench", slug, Mode::Shared, None, None);
    let big = tenant("big").await;
    let other = tenant("other").await;
    let pool = pg.connect("bh_bench").await.expect("pool");
    for (t, n) in [(big, rows), (other, others)] {
        pool.batch_execute(&fill(&t, n)).await.expect("fill");
    }
    pool.batch_execute("VACUUM ANALYZE orders")
        .await
        .expect("vacuum");
    Bench { pg, dir, big }
}

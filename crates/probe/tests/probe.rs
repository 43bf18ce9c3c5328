//! The probe against a real installation: a directory, a cluster and a gateway on a throwaway
//! PostgreSQL. Every vector, in every mode, must be blocked — each row of the report is an
//! assertion — and the probe must leave nothing behind.

use std::time::Duration;

use bulkhead_gateway::backend::PoolSettings;
use bulkhead_gateway::{serve, GatewaySettings, GatewayState};
use bulkhead_pgkit::shared_cluster;
use bulkhead_probe::{probe, Outcome};

#[path = "../../provisioner/tests/support/fixture.rs"]
mod fixture;

#[tokio::test]
async fn every_vector_is_blocked_in_every_mode_and_nothing_is_left_behind() {
    let pg = shared_cluster().expect("pg");
    let (dir, _) = fixture::control("probe_control").await;
    fixture::add_main(&dir, &pg.dsn("postgres")).await;
    // A small pool, so the tenants' transactions share backend connections.
    let settings = GatewaySettings {
        pool: PoolSettings {
            size: 3,
            checkout_timeout: Duration::from_secs(5),
            ..Default::default()
        },
        ..Default::default()
    };
    let state = GatewayState::new(dir.clone(), settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, state, std::future::pending::<()>()));

    let report = probe(&dir, addr, None, &|_| {})
        .await
        .expect("the probe runs");
    let table = report.to_table();
    assert!(
        report.rows.len() > 3 * 33,
        "every vector ran in every mode:\n{table}"
    );
    for row in &report.rows {
        assert_eq!(
            row.outcome,
            Outcome::Blocked,
            "{} ({}): {}\n{table}",
            row.vector,
            row.mode,
            row.detail
        );
    }
    for mode in ["shared", "schema", "database"] {
        assert!(report.rows.iter().any(|r| r.mode == mode), "{mode}");
    }
    // Nothing left behind: no probe service, tenant or database.
    assert!(dir.list_services().await.expect("services").is_empty());
    assert!(dir.list_tenants().await.expect("tenants").is_empty());
    let (admin, conn) = tokio_postgres::connect(&pg.dsn("postgres"), tokio_postgres::NoTls)
        .await
        .expect("admin");
    tokio::spawn(conn);
    let left: i64 = admin
        .query_one("SELECT count(*) FROM pg_database WHERE datname LIKE '%probe\\_%' AND datname NOT LIKE '%control%'", &[])
        .await
        .expect("databases")
        .get(0);
    assert_eq!(left, 0, "probe databases left behind");
}

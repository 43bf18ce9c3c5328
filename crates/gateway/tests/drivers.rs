//! A driver's own test suite through the gateway: psycopg2's. (The driver matrix, every
//! driver and ORM against a real `bulkhead up`, is `crates/bulkhead/tests/drivers.rs`; its
//! scripts are in `tests/drivers`.)

use bulkhead_model::Mode;

mod support;
use support::*;

/// psycopg2's own test suite (from its PyPI source distribution, fetched by
/// `scripts/setup.sh`) through the gateway: a service credential with the migration
/// capability (the suite creates its own tables), the tenant chosen by the startup packet
/// (`PGOPTIONS=-c bulkhead.tenant=…`), a schema-mode tenant. Every test passes except those on
/// `tests/drivers/psycopg2_refused.txt`, each refused by design for the reason written there.
#[tokio::test]
async fn psycopg2s_own_test_suite() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let suite = std::env::var("BULKHEAD_PSYCOPG2_SUITE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target/psycopg2-suite/psycopg2-2.9.10"));
    assert!(
        suite.join("tests/__init__.py").exists(),
        "psycopg2's test suite is not at {} (scripts/setup.sh downloads it)",
        suite.display()
    );
    // A few of the suite's tests hold several connections in a transaction at once.
    let env = env("drv_psycopg2_suite", 20).await;
    credential_with(&env, "suite", true).await;
    let key = tenant_key(&env, "suite-schema", Mode::Schema).await;
    // The suite creates its own tables: the tenant role may create in its own schema (what
    // a team that lets its tenants' sessions run DDL grants; Bulkhead grants nothing).
    let client = connect(&env, &key).await.expect("tenant login");
    let row = client
        .query_one(
            "SELECT current_database(), current_schema(), current_user",
            &[],
        )
        .await
        .expect("where the tenant lives");
    let (db, schema, role): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    bulkhead_pgkit::shared_cluster()
        .expect("cluster")
        .connect(&db)
        .await
        .expect("superuser")
        .batch_execute(&format!(
            "GRANT CREATE ON SCHEMA \"{schema}\" TO \"{role}\""
        ))
        .await
        .expect("grant");
    let drivers = drivers_dir();
    let report = root.join("target/psycopg2-suite/report.tsv");
    let out = tokio::process::Command::new("python3")
        .arg(drivers.join("psycopg2_suite.py"))
        .arg(&suite)
        .arg(drivers.join("psycopg2_refused.txt"))
        .arg(&report)
        .env("PSYCOPG2_TESTDB", &env.service)
        .env("PSYCOPG2_TESTDB_HOST", "127.0.0.1")
        .env("PSYCOPG2_TESTDB_PORT", env.port.to_string())
        .env("PSYCOPG2_TESTDB_USER", "suite")
        .env("PSYCOPG2_TESTDB_PASSWORD", PASSWORD)
        .env("PGOPTIONS", "-c bulkhead.tenant=suite-schema")
        .current_dir(&suite)
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "psycopg2's suite through the gateway (report: {}):\n{stdout}\n{}",
        report.display(),
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

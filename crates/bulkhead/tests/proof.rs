//! `bulkhead verify` and `bulkhead probe` end to end through `bulkhead up`: a clean
//! installation verifies with exit 0, the probe blocks every vector and leaves nothing, and
//! a broken fact makes verify exit 9 naming it.

mod support;

use support::{workspace, Up};

#[test]
fn verify_and_probe_pass_on_a_clean_installation_and_verify_names_a_breakage() {
    let ws = workspace();
    let up = Up::start(&ws.path().join(".bulkhead"), &[]);
    up.billing_service(
        "shop",
        &["--tier", "business=schema", "--tier", "enterprise=database"],
    );
    for (slug, tier) in [
        ("acme", "free"),
        ("globex", "business"),
        ("initech", "enterprise"),
    ] {
        let out = up.cli(&[
            "tenant",
            "create",
            slug,
            "--service",
            "shop",
            "--tier",
            tier,
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let out = up.cli(&["verify", "shop"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("shared tables under forced RLS"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("0 failure(s)"), "{}", out.stdout);

    let out = up.cli(&["probe", "shop"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("0 leaked, 0 inconclusive"),
        "{}",
        out.stdout
    );
    let out = up.cli(&["--json", "probe"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let rows = report["rows"].as_array().expect("rows");
    assert!(
        rows.len() > 80 && rows.iter().all(|r| r["outcome"] == "blocked"),
        "{}",
        out.stdout
    );
    // The probe's throwaway service and tenants are gone.
    let out = up.cli(&["--json", "service", "list"]);
    let services: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(services.as_array().map(Vec::len), Some(1), "{}", out.stdout);

    // Break a fact: verify exits 9 and names it.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (db, conn) =
            tokio_postgres::connect(&up.postgres_dsn("bh_shop"), tokio_postgres::NoTls)
                .await
                .expect("admin");
        tokio::spawn(conn);
        db.batch_execute("ALTER TABLE customers NO FORCE ROW LEVEL SECURITY")
            .await
            .expect("break");
    });
    let out = up.cli(&["verify", "shop"]);
    assert_eq!(out.code, 9, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("FAIL") && out.stdout.contains("customers"),
        "{}",
        out.stdout
    );
}

//! The audit log and metering through the real `bulkhead up`: a known workload through the
//! gateway is metered exactly, collecting twice counts once, the outbox and storage show up
//! in usage, cost and export; control-plane actions and gateway refusals are audited, and
//! tampering is located by `audit verify`; a clean shutdown loses neither counts nor events.

mod support;

use serde_json::Value;
use support::{ok, workspace, CliOutput, Up};

fn json(out: CliOutput) -> Value {
    serde_json::from_str(&ok(out).stdout).expect("json")
}

async fn connect(
    gateway: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    support::gateway_client(gateway, "shop", "app", password).await
}

fn setup(up: &Up) -> Vec<(String, String)> {
    up.billing_service("shop", &[]);
    let mut keys = Vec::new();
    for (slug, mode) in [
        ("acme", "shared"),
        ("globex", "schema"),
        ("initech", "database"),
    ] {
        let key = up.tenant_with_key(slug, "shop", mode);
        keys.push((slug.to_string(), key));
    }
    keys
}

/// 9 transactions, 10 statements (transaction control aside), 16 rows; 2 emails recorded.
async fn workload(c: &tokio_postgres::Client) {
    for i in 1..=5 {
        c.simple_query(&format!(
            "INSERT INTO customers (id, name) VALUES ({i}, 'x')"
        ))
        .await
        .expect("insert");
    }
    for _ in 0..3 {
        c.simple_query("SELECT id FROM customers ORDER BY id")
            .await
            .expect("select");
    }
    c.simple_query("BEGIN").await.expect("begin");
    c.simple_query("SELECT bulkhead.usage('emails_sent', 2, 'welcome-1')")
        .await
        .expect("usage");
    c.simple_query("UPDATE customers SET name = 'y' WHERE id = 1")
        .await
        .expect("update");
    c.simple_query("COMMIT").await.expect("commit");
}

fn metric(usage: &Value, slug: &str, name: &str) -> i64 {
    usage
        .as_array()
        .expect("array")
        .iter()
        .find(|l| l["slug"] == slug && l["metric"] == name)
        .and_then(|l| l["quantity"].as_i64())
        .unwrap_or_else(|| panic!("no {name} for {slug} in {usage}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_is_exact_collecting_twice_counts_once_and_the_audit_log_locates_tampering() {
    let ws = workspace();
    let up = Up::start(&ws.path().join(".bulkhead"), &[]);
    let keys = setup(&up);
    let mut clients = Vec::new();
    for (_, key) in &keys {
        let c = connect(&up.gateway, key).await.expect("login");
        workload(&c).await;
        clients.push(c);
    }
    // A refusal and a failed login, for the audit log.
    let refused = clients[0]
        .simple_query("SELECT set_config('bulkhead.tenant_id', 'x', false)")
        .await
        .expect_err("refused");
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    assert!(connect(&up.gateway, "bhk_not.a-key").await.is_err());

    ok(up.cli(&["usage", "collect"]));
    let first = json(up.cli(&["--json", "usage"]));
    for slug in ["acme", "globex", "initech"] {
        assert_eq!(metric(&first, slug, "transactions"), 9, "{slug}: {first}");
        assert_eq!(metric(&first, slug, "statements"), 10, "{slug}");
        assert_eq!(metric(&first, slug, "rows_returned"), 16, "{slug}");
        assert_eq!(metric(&first, slug, "emails_sent"), 2, "{slug}");
        for m in ["bytes_in", "bytes_out", "backend_time_us", "storage_bytes"] {
            assert!(metric(&first, slug, m) > 0, "{slug} {m}");
        }
    }
    // Collecting again adds nothing.
    ok(up.cli(&["usage", "collect"]));
    let again = json(up.cli(&["--json", "usage", "acme"]));
    assert_eq!(metric(&again, "acme", "transactions"), 9);
    assert_eq!(metric(&again, "acme", "emails_sent"), 2);

    let cost = json(up.cli(&[
        "--json",
        "cost",
        "--price",
        "statements=0.01",
        "--price",
        "emails_sent=1",
    ]));
    let tenants = cost["tenants"].as_array().expect("tenants");
    assert_eq!(tenants.len(), 3);
    assert!(
        (tenants[0]["cost"].as_f64().unwrap_or_default() - 2.1).abs() < 1e-9,
        "{cost}"
    );
    let bad = up.cli(&["cost", "--price", "statements=lots"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    // Bad input is named, and changes nothing.
    let bad = up.cli(&["usage", "--since", "last tuesday"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("is not a date"), "{}", bad.stderr);
    let bad = up.cli(&["usage", "--since", "2026-12-02", "--until", "2026-12-01"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    let unknown = up.cli(&["audit", "verify", "nobody"]);
    assert_eq!(unknown.code, 3, "{}", unknown.stderr);

    let until = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:00:00Z")
        .to_string();
    let a = ok(up.cli(&["usage", "export", "--format", "csv", "--until", &until])).stdout;
    let b = ok(up.cli(&["usage", "export", "--format", "csv", "--until", &until])).stdout;
    assert_eq!(a, b, "an export is stable across runs");
    assert!(
        a.starts_with("hour,tenant_id,slug,metric,quantity\n"),
        "{a}"
    );
    assert!(a.lines().any(|l| l.contains(",acme,transactions,9")), "{a}");

    let metrics = reqwest::get(format!("{}/metrics", up.api_url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let acme = json(up.cli(&["--json", "tenant", "show", "acme"]));
    let acme_id = acme["id"].as_str().expect("id").to_string();
    assert!(
        metrics.contains(&format!(
            "bulkhead_tenant_transactions_total{{tenant=\"{acme_id}\"}} 9"
        )),
        "{metrics}"
    );

    // The audit log: control-plane actions (through the API and run by the CLI itself) and
    // the gateway's refusals.
    ok(up.cli(&["tenant", "suspend", "acme"]));
    ok(up.cli(&["tenant", "resume", "acme"]));
    let archive = ws.path().join("acme.bhk");
    ok(up.cli(&[
        "tenant",
        "backup",
        "acme",
        "-o",
        archive.to_str().expect("utf8"),
    ]));
    let keys_json = json(up.cli(&["--json", "audit", "list", "acme"]));
    let key_id = keys_json
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["action"] == "key.issued")
        .and_then(|e| e["details"]["key_id"].as_str())
        .expect("key id")
        .to_string();
    ok(up.cli(&["tenant", "key", "revoke", &key_id]));
    let events = json(up.cli(&["--json", "audit", "list", "acme"]));
    let backed_up = events
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["action"] == "tenant.backed_up")
        .expect("backup audited");
    assert!(
        backed_up["actor"]
            .as_str()
            .unwrap_or_default()
            .starts_with("cli:"),
        "{backed_up}"
    );
    assert!(
        !events.to_string().contains(&keys[0].1),
        "a key's secret never reaches the log"
    );
    let actions: Vec<&str> = events
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default())
        .collect();
    for a in [
        "tenant.created",
        "key.issued",
        "key.revoked",
        "tenant.suspended",
        "tenant.resumed",
        "tenant.backed_up",
        "gateway.refused",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    let all = json(up.cli(&["--json", "audit", "list"]));
    assert!(all
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["action"] == "gateway.login_failed" && e["tenant_id"].is_null()));
    let v = ok(up.cli(&["audit", "verify"]));
    assert!(v.stdout.contains("intact"), "{}", v.stdout);

    // Someone with database access edits acme's second entry.
    let (db, conn) = tokio_postgres::connect(&up.postgres_dsn("bulkhead"), tokio_postgres::NoTls)
        .await
        .expect("control db");
    tokio::spawn(conn);
    db.batch_execute(&format!(
        "SET session_replication_role = replica;
         UPDATE audit.events SET actor = 'nobody' WHERE chain = '{acme_id}' AND n = 2"
    ))
    .await
    .expect("tamper");
    let v = up.cli(&["audit", "verify", "acme"]);
    assert_eq!(v.code, 9, "{}\n{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("ALTERED  entry 2"), "{}", v.stdout);
    let others = ok(up.cli(&["audit", "verify", "globex"]));
    assert!(others.stdout.contains("intact"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_shutdown_writes_every_count_and_event() {
    let ws = workspace();
    let data = ws.path().join(".bulkhead");
    let up = Up::start(&data, &[]);
    let keys = setup(&up);
    let c = connect(&up.gateway, &keys[1].1).await.expect("login");
    workload(&c).await;
    let _ = c
        .simple_query("SELECT pg_advisory_lock(1)")
        .await
        .expect_err("refused");
    drop(c);
    // Stopped well before the 10 s flush interval.
    assert!(up.stop().success());
    let up = Up::start(&data, &[]);
    let usage = json(up.cli(&["--json", "usage", "globex"]));
    assert_eq!(metric(&usage, "globex", "transactions"), 9, "{usage}");
    assert_eq!(metric(&usage, "globex", "statements"), 10);
    let events = json(up.cli(&["--json", "audit", "list", "globex"]));
    assert!(
        events
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["action"] == "gateway.refused" && e["details"]["rule"] == "advisory_lock"),
        "{events}"
    );
    ok(up.cli(&["audit", "verify"]));
}

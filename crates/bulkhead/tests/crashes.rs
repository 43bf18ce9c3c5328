//! SIGKILL of the CLI process doing long work (it does the work itself beside the data
//! folder): a backup, a restore and a migration fan-out, each killed while PostgreSQL shows
//! its work in flight. Nothing half-applied is visible afterwards, and running the same
//! command again completes.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{gateway_client, ok, workspace, Up, BIN};
use tokio_postgres::NoTls;

fn spawn(up: &Up, args: &[&str]) -> Child {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(&up.data_dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the CLI")
}

/// SIGKILL, unless it ended already.
fn kill9(mut child: Child) {
    if child.try_wait().ok().flatten().is_none() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.wait();
}

/// Waits until a statement matching `pattern` (ILIKE) runs at the server; false when `child`
/// ended first (the work was too quick to catch).
async fn until_running(pg: &tokio_postgres::Client, child: &mut Child, pattern: &str) -> bool {
    let t = Instant::now();
    loop {
        let n: i64 = pg
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query ILIKE $1 AND pid <> pg_backend_pid()",
                &[&pattern],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if n > 0 {
            return true;
        }
        if child.try_wait().expect("wait").is_some() {
            return false;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "never saw `{pattern}` run"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn count(c: &tokio_postgres::Client) -> i64 {
    c.query_one("SELECT count(*) FROM customers", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_a_restore_and_a_fan_out_killed_midway_leave_nothing_half_done() {
    let ws = workspace();
    let up = Up::start(&ws.path().join(".bulkhead"), &[]);
    up.billing_service("billing", &["--tier", "pro=schema"]);
    let key = up.tenant_with_key("acme", "billing", "shared");
    let c = gateway_client(&up.gateway, "billing", "acme", &key)
        .await
        .expect("login");
    c.batch_execute(
        "INSERT INTO customers (id, name, country) SELECT g, 'customer ' || g, 'fr' FROM generate_series(1, 300000) g",
    )
    .await
    .expect("fill");
    let (pg, conn) = tokio_postgres::connect(&up.postgres_dsn("postgres"), NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let mut report = Vec::new();

    // A backup killed while it reads: no archive at the path (only its .partial), and the
    // same command again writes a whole one.
    let archive = ws.path().join("acme.bhk");
    let path = archive.to_str().expect("utf8");
    let mut child = spawn(&up, &["tenant", "backup", "acme", "--output", path]);
    let caught = until_running(&pg, &mut child, "COPY%TO STDOUT%").await;
    kill9(child);
    assert!(caught, "the backup ended before it could be killed");
    assert!(
        !archive.exists(),
        "a killed backup left an archive at {path}"
    );
    report.push("backup killed during its COPY: no archive at the path".to_string());
    ok(up.cli(&["tenant", "backup", "acme", "--output", path]));
    assert!(archive.is_file());

    // A restore killed while it loads: the old rows stay, all of them; again, it completes.
    c.batch_execute("DELETE FROM customers WHERE id > 250000")
        .await
        .expect("delete");
    assert_eq!(count(&c).await, 250_000);
    let mut child = spawn(&up, &["tenant", "restore", "acme", path]);
    let caught = until_running(&pg, &mut child, "COPY%FROM STDIN%").await;
    kill9(child);
    assert!(caught, "the restore ended before it could be killed");
    let c = gateway_client(&up.gateway, "billing", "acme", &key)
        .await
        .expect("login after the killed restore");
    assert_eq!(count(&c).await, 250_000, "a killed restore changed rows");
    report.push("restore killed during its COPY: the 250,000 rows before it, unchanged".into());
    ok(up.cli(&["tenant", "restore", "acme", path]));
    assert_eq!(count(&c).await, 300_000);

    // A fan-out killed halfway: each target is at its old version with its old schema or at
    // the new one with the new schema, never between; again, it finishes the rest.
    for i in 0..40 {
        ok(up.cli(&[
            "tenant",
            "create",
            &format!("pro-{i:02}"),
            "--service",
            "billing",
            "--tier",
            "pro",
        ]));
    }
    let migrations = support::billing_migrations(ws.path());
    std::fs::write(
        migrations.join("V3__notes.sql"),
        "ALTER TABLE customers ADD COLUMN note text;\nSELECT pg_sleep(0.1);\n",
    )
    .expect("write");
    let dir = migrations.to_str().expect("utf8");
    let (dc, conn) = tokio_postgres::connect(&up.postgres_dsn("bulkhead"), NoTls)
        .await
        .expect("control");
    tokio::spawn(conn);
    let mut child = spawn(&up, &["migrate", "billing", "--migrations", dir]);
    // Killed once a few schema targets are done and others are not.
    let t = Instant::now();
    loop {
        let done: i64 = dc
            .query_one(
                "SELECT count(*) FROM directory.placements WHERE mode = 'schema' AND schema_version >= 3",
                &[],
            )
            .await
            .expect("placements")
            .get(0);
        if done >= 3 {
            break;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the fan-out ended before it could be killed"
        );
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the fan-out made no progress"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    kill9(child);
    let versions: std::collections::HashMap<String, i64> = dc
        .query(
            "SELECT schema_name, schema_version FROM directory.placements WHERE mode = 'schema'",
            &[],
        )
        .await
        .expect("placements")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let (bc, conn) = tokio_postgres::connect(&up.postgres_dsn("bh_billing"), NoTls)
        .await
        .expect("service database");
    tokio::spawn(conn);
    let mut rows = Vec::new();
    for (schema, version) in versions {
        let has: bool = bc
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'customers' AND column_name = 'note')",
                &[&schema],
            )
            .await
            .expect("columns")
            .get(0);
        rows.push((schema, version, has));
    }
    let (mut new, mut old) = (0, 0);
    for (schema, version, has_note) in &rows {
        assert_eq!(
            *version >= 3,
            *has_note,
            "{schema} is at v{version} but its schema {} the v3 column",
            if *has_note { "has" } else { "lacks" }
        );
        if *has_note {
            new += 1;
        } else {
            old += 1;
        }
    }
    report.push(format!(
        "fan-out killed after {new} of {} schema targets: each at v3 with the column or at v2 without",
        new + old
    ));
    ok(up.cli(&["migrate", "billing", "--migrations", dir]));
    let status = ok(up.cli(&["--json", "migrate", "status", "billing"]));
    let targets: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    for t in targets.as_array().expect("targets") {
        assert_eq!(t["state"], "current", "after the re-run: {t}");
    }
    println!("{}", report.join("\n"));
}

//! Point-in-time recovery and scheduled backups through the real CLI and the HTTP API on a
//! real `bulkhead up`: the embedded cluster archives its WAL with pgBackRest by default, `pitr
//! status` names the window, `tenant restore --at` rewinds one tenant (phases on stderr, in
//! the audit log), the API does the same, an instant outside the window is refused; a
//! schedule takes and prunes backups, and erasure removes them and says so.

mod support;

use std::time::{Duration, Instant};

use support::{ok, workspace, Up};
use tokio_postgres::NoTls;

async fn pool(up: &Up) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(&up.postgres_dsn("bh_billing"), NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    c
}

async fn count(c: &tokio_postgres::Client, tenant: &str) -> i64 {
    c.query_one(
        "SELECT count(*) FROM public.customers WHERE tenant_id = $1::text::uuid",
        &[&tenant],
    )
    .await
    .expect("count")
    .get(0)
}

fn json(out: support::CliOutput) -> serde_json::Value {
    serde_json::from_str(&ok(out).stdout).expect("json")
}

/// Waits until `what` holds, polling.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_rewinds_through_the_cli_and_the_api_and_backups_follow_their_schedule() {
    let ws = workspace();
    let config = ws.path().join("bulkhead.toml");
    std::fs::write(
        &config,
        "[backups]\ncheck_seconds = 1\n[backups.tenants.acme]\nevery = \"2s\"\nkeep = \"5s\"\n",
    )
    .expect("config");
    let up = Up::start(
        &ws.path().join(".bulkhead"),
        &["--config", config.to_str().expect("utf8")],
    );
    until("the first base backup", || {
        let s = json(up.cli(&["--json", "pitr", "status"]));
        s[0]["backups"].as_array().is_some_and(|b| !b.is_empty())
    })
    .await;
    // The window opens just after the base backup ended (kept to the second).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    up.billing_service("billing", &[]);
    let acme = json(up.cli(&["--json", "tenant", "create", "acme", "--service", "billing"]));
    let acme = acme["id"].as_str().expect("id").to_string();
    let globex = json(up.cli(&[
        "--json",
        "tenant",
        "create",
        "globex",
        "--service",
        "billing",
    ]));
    let globex = globex["id"].as_str().expect("id").to_string();
    let c = pool(&up).await;
    for (t, n) in [(&acme, 300), (&globex, 40)] {
        c.batch_execute(&format!(
            "INSERT INTO public.customers (tenant_id, id, name) SELECT '{t}', g, 'c' || g FROM generate_series(1, {n}) g"
        ))
        .await
        .expect("seed");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let at = c
        .query_one(
            "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'",
            &[],
        )
        .await
        .expect("now")
        .get::<_, String>(0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.batch_execute(&format!(
        "DELETE FROM public.customers WHERE tenant_id = '{acme}' AND id > 10;
         INSERT INTO public.customers (tenant_id, id, name) VALUES ('{globex}', 999, 'after')"
    ))
    .await
    .expect("the mistake");

    // The window, in words.
    let status = ok(up.cli(&["pitr", "status"])).stdout;
    assert!(status.contains("cluster local"), "{status}");
    assert!(status.contains("archiving on"), "{status}");
    assert!(status.contains("recoverable from"), "{status}");

    // A dry run, then the rewind, with its phases as it goes.
    let dry = ok(up.cli(&["tenant", "restore", "acme", "--at", &at, "--dry-run"]));
    assert!(
        dry.stdout.contains("300 rows would be restored"),
        "{}",
        dry.stdout
    );
    assert_eq!(count(&c, &acme).await, 10, "a dry run changes nothing");
    let done = up.cli(&["tenant", "restore", "acme", "--at", &at]);
    if done.code != 0 {
        let log = std::fs::read_to_string(ws.path().join(".bulkhead/pitr/side-last.log"))
            .unwrap_or_default();
        panic!(
            "rewind failed: {}\nthe side instance's log:\n{log}",
            done.stderr
        );
    }
    eprintln!("{}", done.stderr);
    for phase in [
        "fetch base backup",
        "replay WAL to the instant",
        "extract the tenant",
        "restore",
    ] {
        assert!(
            done.stderr.contains(phase),
            "phase {phase}: {}",
            done.stderr
        );
    }
    assert_eq!(count(&c, &acme).await, 300, "acme is back");
    assert_eq!(
        count(&c, &globex).await,
        41,
        "globex kept its own later row"
    );
    let audit = ok(up.cli(&["--json", "audit", "list", "acme"])).stdout;
    assert!(audit.contains("tenant.rewound"), "{audit}");

    // Through the API: the same rewind, and a refusal naming the window.
    c.batch_execute(&format!(
        "DELETE FROM public.customers WHERE tenant_id = '{acme}'"
    ))
    .await
    .expect("again");
    let token =
        std::fs::read_to_string(ws.path().join(".bulkhead/secrets/api-token")).expect("token");
    let remote = |args: &[&str]| {
        let mut all = vec!["--url", up.api_url.as_str(), "--token", token.trim()];
        all.extend_from_slice(args);
        up.cli(&all)
    };
    let via_api: serde_json::Value = serde_json::from_str(
        &ok(remote(&[
            "--json", "tenant", "restore", "acme", "--at", &at,
        ]))
        .stdout,
    )
    .expect("json");
    assert_eq!(via_api["tables"][0]["rows"], 300, "{via_api}");
    assert_eq!(count(&c, &acme).await, 300);
    let future = remote(&[
        "tenant",
        "restore",
        "acme",
        "--at",
        "2999-01-01 00:00:00+00",
    ]);
    assert_eq!(future.code, 2, "{}", future.stderr);
    assert!(future.stderr.contains("in the future"), "{}", future.stderr);
    let before = up.cli(&["tenant", "restore", "acme", "--at", "2001-01-01T00:00:00Z"]);
    assert_eq!(before.code, 2, "{}", before.stderr);
    assert!(
        before.stderr.contains("did not exist yet"),
        "{}",
        before.stderr
    );
    let no_zone = up.cli(&["tenant", "restore", "acme", "--at", "2026-12-05 14:02:00"]);
    assert_eq!(no_zone.code, 2, "{}", no_zone.stderr);
    assert_eq!(count(&c, &acme).await, 300, "refusals change nothing");
    let side = ws.path().join(".bulkhead/pitr/side");
    assert_eq!(
        std::fs::read_dir(&side).expect("side").count(),
        0,
        "no side instance left"
    );

    // The schedule: acme backed up every 2 s, each kept 5 s; globex has no policy.
    let mut first = String::new();
    until("a scheduled backup", || {
        let list = json(up.cli(&["--json", "tenant", "backups", "acme"]));
        if let Some(p) = list
            .as_array()
            .and_then(|l| l.last())
            .and_then(|b| b["path"].as_str())
        {
            first = p.to_string();
        }
        !first.is_empty()
    })
    .await;
    assert!(std::path::Path::new(&first).exists());
    until("retention to remove the first backup", || {
        !std::path::Path::new(&first).exists()
    })
    .await;
    let listed = json(up.cli(&["--json", "tenant", "backups", "acme"]));
    assert!(listed
        .as_array()
        .is_some_and(|l| l.iter().all(|b| b["path"] != first.as_str())));
    assert!(json(up.cli(&["--json", "tenant", "backups", "globex"]))
        .as_array()
        .is_some_and(|l| l.is_empty()));
    let audit = ok(up.cli(&["--json", "audit", "list", "acme"])).stdout;
    assert!(audit.contains("tenant.scheduled_backup"), "{audit}");
    assert!(audit.contains("tenant.backup_pruned"), "{audit}");

    // Erasure removes the scheduled backups and says so; a rewind is refused after it.
    let paths: Vec<String> = json(up.cli(&["--json", "tenant", "backups", "acme"]))
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|b| b["path"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let cert = ok(up.cli(&["tenant", "erase", "acme", "--confirm"])).stdout;
    assert!(cert.contains("scheduled_backups"), "{cert}");
    assert!(cert.contains("wal_archive"), "{cert}");
    for p in &paths {
        assert!(
            !std::path::Path::new(p).exists(),
            "{p} removed by the erasure"
        );
    }
    let erased = up.cli(&["tenant", "restore", "acme", "--at", &at]);
    assert_ne!(erased.code, 0);
    assert!(up.stop().success());
}

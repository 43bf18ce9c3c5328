//! The directory verbs through the real CLI and API: output, `--json`, and each validation
//! error with its message and exit code (see the README's table).

mod support;

use support::{workspace, CliOutput, Up};

fn ok(out: CliOutput) -> String {
    assert_eq!(
        out.code, 0,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    out.stdout
}

fn fails(out: CliOutput, code: i32, needle: &str) {
    assert_eq!(
        out.code, code,
        "expected exit {code}; stdout: {} stderr: {}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains(needle),
        "expected `{needle}` in: {}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_verbs_work_and_refuse_bad_input_clearly() {
    let ws = workspace();
    let up = Up::start(&ws.path().join(".bulkhead"), &[]);

    // Clusters: the embedded one is registered as `local`; its password is never shown.
    let list = ok(up.cli(&["cluster", "list"]));
    assert!(list.contains("local") && list.contains("***"), "{list}");
    fails(
        up.cli(&["cluster", "show", "nope"]),
        3,
        "cluster `nope` not found",
    );
    fails(
        up.cli(&[
            "cluster",
            "add",
            "ghost",
            "--dsn",
            "postgres://a:b@127.0.0.1:1/postgres",
        ]),
        5,
        "does not answer",
    );
    fails(
        up.cli(&["cluster", "add", "bad", "--dsn", "postgres://a:b@h:x/y"]),
        2,
        "invalid DSN",
    );
    fails(
        up.cli(&["cluster", "add", "Bad Name", "--dsn", "x"]),
        2,
        "invalid cluster name",
    );

    // Services.
    let created = ok(up.cli(&[
        "service",
        "create",
        "billing",
        "--tier",
        "enterprise=database",
    ]));
    assert!(created.contains("enterprise: database"), "{created}");
    fails(
        up.cli(&["service", "create", "billing"]),
        4,
        "already exists",
    );
    fails(
        up.cli(&["service", "create", "x", "--tier", "gold"]),
        2,
        "TIER=MODE",
    );
    fails(
        up.cli(&["service", "create", "x", "--mode", "rows"]),
        2,
        "invalid isolation mode",
    );
    fails(
        up.cli(&["service", "create", "x", "--cluster", "nope"]),
        3,
        "cluster `nope` not found",
    );
    fails(
        up.cli(&["cluster", "remove", "local"]),
        4,
        "home cluster of service(s) billing",
    );

    // Tenants.
    let id = "0b7e3f4c-5a6d-4e8f-9a0b-1c2d3e4f5a6b";
    ok(up.cli(&["tenant", "create", "acme", "--id", id, "--region", "eu"]));
    fails(
        up.cli(&["tenant", "create", "acme"]),
        4,
        "`acme` already exists",
    );
    fails(
        up.cli(&["tenant", "create", "other", "--id", id]),
        4,
        "already exists",
    );
    fails(
        up.cli(&["tenant", "create", "a\"; drop table x; --"]),
        2,
        "invalid slug",
    );
    fails(
        up.cli(&["tenant", "create", "x", "--id", "not-a-uuid"]),
        2,
        "malformed tenant id",
    );
    fails(
        up.cli(&["tenant", "show", "nobody"]),
        3,
        "tenant `nobody` not found",
    );
    let shown = ok(up.cli(&["tenant", "show", id]));
    assert!(shown.contains("slug:") && shown.contains("acme"), "{shown}");

    let suspended = ok(up.cli(&["--json", "tenant", "suspend", "acme"]));
    let suspended: serde_json::Value = serde_json::from_str(&suspended).expect("json");
    assert_eq!(suspended["state"], "suspended");
    let resumed = ok(up.cli(&["--json", "tenant", "resume", "acme"]));
    let resumed: serde_json::Value = serde_json::from_str(&resumed).expect("json");
    assert_eq!(resumed["state"], "active");
    let list = ok(up.cli(&["--json", "tenant", "list"]));
    let list: serde_json::Value = serde_json::from_str(&list).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    ok(up.cli(&["service", "remove", "billing"]));
    fails(up.cli(&["service", "show", "billing"]), 3, "not found");

    // The API refuses a wrong token, through --url and --token.
    fails(
        up.cli(&[
            "--url",
            &up.api_url,
            "--token",
            "wrong-token-wrong-token",
            "tenant",
            "list",
        ]),
        6,
        "not this instance's admin or console token",
    );
    assert!(up.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_answers_json_errors_with_status_codes() {
    let ws = workspace();
    let up = Up::start(&ws.path().join(".bulkhead"), &[]);
    let token = up.api_token();
    let http = reqwest::Client::new();
    let r = up.post_json("/v1/tenants", "{\"slug\": \"ACME\"}").await;
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["kind"], "invalid");
    let r = up.post_json("/v1/tenants", "{not json").await;
    assert_eq!(r.status().as_u16(), 400);
    let r = up
        .post_json("/v1/tenants", "{\"slug\": \"acme\", \"colour\": \"red\"}")
        .await;
    assert_eq!(r.status().as_u16(), 400, "unknown fields are refused");
    let r = up.post_json("/v1/tenants", "{\"slug\": \"acme\"}").await;
    assert_eq!(r.status().as_u16(), 201);
    let r = up.post_json("/v1/tenants", "{\"slug\": \"acme\"}").await;
    assert_eq!(r.status().as_u16(), 409);
    let r = http
        .get(format!("{}/v1/tenants/nobody", up.api_url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 404);
    let r = http
        .get(format!("{}/v1/tenants", up.api_url))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .get(format!("{}/v1/nothing", up.api_url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 404);
    let r = http
        .get(format!("{}/openapi.json", up.api_url))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);
    assert!(up.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn services_tenants_and_migrations_through_the_cli() {
    let ws = workspace();
    let up = Up::start(&ws.path().join(".bulkhead"), &[]);
    let migrations = support::billing_migrations(ws.path());
    let dir = migrations.to_str().expect("utf8");
    ok(up.cli(&[
        "service",
        "create",
        "billing",
        "--migrations",
        dir,
        "--reference",
        "countries",
        "--tier",
        "business=schema",
        "--tier",
        "enterprise=database",
    ]));
    let shared = ok(up.cli(&["--json", "tenant", "create", "acme", "--service", "billing"]));
    let shared: serde_json::Value = serde_json::from_str(&shared).expect("json");
    assert_eq!(shared["placement"]["mode"], "shared");
    assert_eq!(shared["placement"]["state"], "active");
    let schema = ok(up.cli(&[
        "--json",
        "tenant",
        "create",
        "midco",
        "--service",
        "billing",
        "--tier",
        "business",
    ]));
    let schema: serde_json::Value = serde_json::from_str(&schema).expect("json");
    assert_eq!(schema["placement"]["mode"], "schema");
    let db = ok(up.cli(&[
        "--json",
        "tenant",
        "create",
        "bigco",
        "--service",
        "billing",
        "--tier",
        "enterprise",
    ]));
    let db: serde_json::Value = serde_json::from_str(&db).expect("json");
    assert_eq!(db["placement"]["mode"], "database");
    fails(
        up.cli(&[
            "tenant",
            "create",
            "mars",
            "--service",
            "billing",
            "--region",
            "mars",
        ]),
        5,
        "no cluster in region `mars`",
    );
    fails(
        up.cli(&["tenant", "create", "x", "--service", "nope"]),
        3,
        "service `nope` not found",
    );

    std::fs::write(
        migrations.join("V3__notes.sql"),
        "ALTER TABLE orders ADD COLUMN note text;",
    )
    .expect("v3");
    let out = ok(up.cli(&["migrate", "billing", "--migrations", dir]));
    assert!(out.contains("latest version 3"), "{out}");
    assert!(out.contains("failed 0"), "{out}");
    let status = ok(up.cli(&["--json", "migrate", "status", "billing"]));
    let status: serde_json::Value = serde_json::from_str(&status).expect("json");
    assert!(
        status
            .as_array()
            .expect("rows")
            .iter()
            .all(|r| r["state"] == "current"),
        "{status}"
    );

    // Editing an applied migration is refused loudly.
    std::fs::write(
        migrations.join("V3__notes.sql"),
        "ALTER TABLE orders ADD COLUMN notes text;",
    )
    .expect("edit");
    fails(
        up.cli(&["migrate", "billing", "--migrations", dir]),
        4,
        "was changed after it was registered",
    );
    std::fs::write(
        migrations.join("V3__notes.sql"),
        "ALTER TABLE orders ADD COLUMN note text;",
    )
    .expect("restore");

    // A migration that fails somewhere exits 8 and names the target.
    std::fs::write(
        migrations.join("V4__breaks_schemas.sql"),
        "DO $$ BEGIN IF current_schema() LIKE 't\\_%' THEN RAISE EXCEPTION 'no schemas please'; END IF; END $$;",
    )
    .expect("v4");
    fails(
        up.cli(&["migrate", "billing", "--migrations", dir]),
        8,
        "1 target(s) failed",
    );
    let status = ok(up.cli(&["migrate", "status", "billing"]));
    assert!(status.contains("failed: V4__breaks_schemas"), "{status}");

    fails(up.cli(&["tenant", "delete", "midco"]), 2, "--confirm");
    let out = ok(up.cli(&["tenant", "delete", "midco", "--confirm"]));
    assert!(out.contains("schema t_"), "{out}");
    let out = ok(up.cli(&["tenant", "delete", "bigco", "--confirm"]));
    assert!(out.contains("database t_"), "{out}");
    fails(
        up.cli(&["service", "remove", "billing"]),
        4,
        "delete those tenants first",
    );
    ok(up.cli(&["tenant", "delete", "acme", "--confirm"]));
    ok(up.cli(&["service", "remove", "billing"]));
    assert!(up.stop().success());
}

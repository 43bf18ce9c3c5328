//! `bulkhead tenant move` through the real CLI (in-process mover with live progress) and the
//! HTTP API: move, status, the refusal while a source is kept, finalize, rollback, errors.

mod support;

use support::{ok, workspace, Up};

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_moves_through_the_cli_and_the_api() {
    let ws = workspace();
    let up = Up::start(&ws.path().join(".bulkhead"), &[]);
    up.billing_service("billing", &[]);
    ok(up.cli(&["tenant", "create", "acme", "--service", "billing"]));

    let out = ok(up.cli(&["tenant", "move", "acme", "--to", "schema"]));
    assert!(out.stderr.contains("phase: copying"), "{}", out.stderr);
    assert!(out.stderr.contains("copied customers"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("switched: the tenant's new transactions waited"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout
            .contains("shared on local -> schema on local: switched"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("parity customers"), "{}", out.stdout);

    // The kept, fenced source and the move's leftovers do not trouble the coverage report.
    let verify = up.cli(&["verify", "billing"]);
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    let refused = up.cli(&["tenant", "move", "acme", "--to", "database"]);
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    assert!(refused.stderr.contains("--finalize"), "{}", refused.stderr);
    let out = ok(up.cli(&["tenant", "move", "acme", "--finalize"]));
    assert!(out.stdout.contains("finalized"), "{}", out.stdout);
    let status = ok(up.cli(&["--json", "tenant", "move", "acme", "--status"]));
    let status: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    assert_eq!(status[0]["phase"], "finalized");
    let nothing = up.cli(&["tenant", "move", "acme", "--rollback"]);
    assert_eq!(nothing.code, 2, "nothing to roll back: {}", nothing.stderr);

    let token = up.api_token();
    let http = reqwest::Client::new();
    let r = up
        .post_json("/v1/tenants/acme/move", "{\"to\": \"database\"}")
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let m: serde_json::Value = r.json().await.expect("json");
    assert_eq!(m["phase"], "switched");
    assert_eq!(m["to_mode"], "database");
    let r = up.post_json("/v1/tenants/acme/move/rollback", "{}").await;
    assert_eq!(r.status().as_u16(), 200);
    let m: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        m["phase"], "finalized",
        "a rollback removes the place it left: {m}"
    );
    assert_eq!(m["to_mode"], "schema");
    let r = up
        .post_json("/v1/tenants/acme/move", "{\"to\": \"sideways\"}")
        .await;
    assert_eq!(r.status().as_u16(), 400);
    let r = up
        .post_json("/v1/tenants/nobody/move", "{\"to\": \"shared\"}")
        .await;
    assert_eq!(r.status().as_u16(), 404);
    let r = up
        .post_json("/v1/tenants/acme/move", "{\"to\": \"schema\"}")
        .await;
    assert_eq!(r.status().as_u16(), 400, "already there");
    let moves: serde_json::Value = http
        .get(format!("{}/v1/tenants/acme/moves", up.api_url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(moves.as_array().map(Vec::len), Some(3), "{moves}");
    assert!(up.stop().success());
}

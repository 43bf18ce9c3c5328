//! `bulkhead tenant backup | restore | clone | erase | certificate` through the real CLI
//! (in-process, beside the data folder) and the HTTP API.

mod support;

use support::{ok, workspace, Up};
use tokio_postgres::NoTls;

async fn pool(up: &Up) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(&up.postgres_dsn("bh_billing"), NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    c
}

async fn names(c: &tokio_postgres::Client, tenant: &str) -> Vec<String> {
    c.query(
        "SELECT name FROM public.customers WHERE tenant_id = $1::text::uuid ORDER BY id",
        &[&tenant],
    )
    .await
    .expect("names")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_restores_clones_and_erasure_through_the_cli_and_the_api() {
    let ws = workspace();
    let up = Up::start(&ws.path().join(".bulkhead"), &[]);
    up.billing_service("billing", &[]);
    let created = ok(up.cli(&["--json", "tenant", "create", "acme", "--service", "billing"]));
    let created: serde_json::Value = serde_json::from_str(&created.stdout).expect("json");
    let acme = created["id"].as_str().expect("id").to_string();
    let c = pool(&up).await;
    c.batch_execute(&format!(
        "INSERT INTO public.customers (tenant_id, id, name) SELECT '{acme}', g, 'c' || g FROM generate_series(1, 500) g"
    ))
    .await
    .expect("seed");
    let before = names(&c, &acme).await;

    let archive = ws.path().join("acme.bhk");
    let out = ok(up.cli(&[
        "tenant",
        "backup",
        "acme",
        "-o",
        archive.to_str().expect("utf8"),
    ]));
    assert!(
        out.stderr.contains("customers: 500 rows"),
        "progress: {}",
        out.stderr
    );
    assert!(out.stdout.contains("sha256"), "{}", out.stdout);
    c.batch_execute(&format!(
        "DELETE FROM public.customers WHERE tenant_id = '{acme}' AND id > 10"
    ))
    .await
    .expect("lose rows");
    ok(up.cli(&["tenant", "restore", "acme", archive.to_str().expect("utf8")]));
    assert_eq!(names(&c, &acme).await, before, "restored");

    // A damaged archive is refused (exit 2) and changes nothing.
    let mut bytes = std::fs::read(&archive).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    let damaged = ws.path().join("damaged.bhk");
    std::fs::write(&damaged, &bytes).expect("write");
    let refused = up.cli(&["tenant", "restore", "acme", damaged.to_str().expect("utf8")]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("damaged or was altered"),
        "{}",
        refused.stderr
    );
    assert_eq!(names(&c, &acme).await, before);

    ok(up.cli(&[
        "tenant",
        "clone",
        "acme",
        "acme-staging",
        "--mode",
        "schema",
    ]));
    let shown = ok(up.cli(&["--json", "tenant", "show", "acme-staging"]));
    assert!(shown.stdout.contains("\"schema\""), "{}", shown.stdout);

    // The API: a backup as bytes, a restore from them.
    let token = up.api_token();
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/v1/tenants/acme/backup", up.api_url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);
    let body = r.bytes().await.expect("bytes").to_vec();
    assert!(body.starts_with(b"BHK1"));
    let r = http
        .post(format!("{}/v1/tenants/acme/restore", up.api_url))
        .bearer_auth(&token)
        .header("content-type", "application/octet-stream")
        .body(body.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    let r = http
        .post(format!("{}/v1/tenants/acme/erase", up.api_url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 400, "erasure needs confirm=true");

    let erased = ok(up.cli(&["tenant", "erase", "acme", "--confirm"]));
    assert!(
        erased.stdout.contains("bulkhead deletion certificate"),
        "{}",
        erased.stdout
    );
    assert!(names(&c, &acme).await.is_empty(), "its rows are gone");
    let gone = up.cli(&["tenant", "restore", "acme", archive.to_str().expect("utf8")]);
    assert_ne!(gone.code, 0);
    let again = up.cli(&[
        "tenant",
        "restore",
        "x",
        archive.to_str().expect("utf8"),
        "--as-new",
        "revived",
    ]);
    assert_eq!(again.code, 5, "{}", again.stderr);
    assert!(again.stderr.contains("destroyed"), "{}", again.stderr);
    let cert = ok(up.cli(&["tenant", "certificate", "acme", "--verify"]));
    assert!(cert.stdout.contains("signature valid"), "{}", cert.stdout);
    let (control, conn) = tokio_postgres::connect(&up.postgres_dsn("bulkhead"), NoTls)
        .await
        .expect("control");
    tokio::spawn(conn);
    control
        .execute(
            "UPDATE directory.erasures SET certificate = replace(certificate, '500', '499')",
            &[],
        )
        .await
        .expect("tamper");
    let altered = up.cli(&["tenant", "certificate", "acme", "--verify"]);
    assert_eq!(altered.code, 9, "{}", altered.stdout);
    assert!(up.stop().success());
}

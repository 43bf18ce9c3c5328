//! `bulkhead up` serves tenants on its gateway: a tenant API key and a service token both
//! log in, each reaches its own place, a revoked key is refused.

mod support;

use support::{workspace, Up};

async fn connect(
    gateway: &str,
    service: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    connect_as(gateway, service, "app", password).await
}

async fn connect_as(
    gateway: &str,
    service: &str,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    support::gateway_client(gateway, service, user, password).await
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_log_in_with_keys_and_tokens_and_reach_their_own_place() {
    let ws = workspace();
    let up = Up::start(&ws.path().join(".bulkhead"), &[]);
    assert!(up.gateway.starts_with("127.0.0.1:"), "{:?}", up.stdout);
    up.billing_service("shop", &[]);
    for (slug, mode) in [
        ("acme", "shared"),
        ("globex", "schema"),
        ("initech", "database"),
    ] {
        let out = up.cli(&[
            "tenant",
            "create",
            slug,
            "--service",
            "shop",
            "--mode",
            mode,
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let key = up.cli(&["tenant", "key", "create", "acme"]);
    assert_eq!(key.code, 0, "{}", key.stderr);
    let key = key.stdout.trim().to_string();
    assert!(key.starts_with("bhk_"), "{key}");

    let acme = connect(&up.gateway, "shop", &key).await.expect("key login");
    acme.execute("INSERT INTO customers (id, name) VALUES (1, 'acme')", &[])
        .await
        .expect("insert");

    // A token signed for the service logs in as the tenant it names.
    let secret = "a-shop-secret-that-is-long-enough-for-hs256";
    let out = up.cli(&[
        "service",
        "auth",
        "shop",
        "--jwt-secret",
        secret,
        "--issuer",
        "https://auth.example",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let shown = up.cli(&["--json", "tenant", "show", "globex"]);
    let globex: serde_json::Value = serde_json::from_str(&shown.stdout).expect("json");
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
        + 300;
    let claims =
        serde_json::json!({"tenant_id": globex["id"], "exp": exp, "iss": "https://auth.example"});
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token");
    let globex_client = connect(&up.gateway, "shop", &token)
        .await
        .expect("token login");
    let n: i64 = globex_client
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0, "globex does not see acme's row");
    let n: i64 = acme
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 1);

    // The gateway's metrics are on the API.
    let metrics = reqwest::get(format!("{}/metrics", up.api_url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("bulkhead_gateway_queries_total{service=\"shop\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bulkhead_gateway_backend_connections{cluster=\"local\",state=\"idle\"}"),
        "{metrics}"
    );

    // A service credential from the CLI logs in with SCRAM and chooses tenants per
    // transaction; revoked, it is refused.
    let out = up.cli(&[
        "service",
        "credential",
        "create",
        "shop",
        "--user",
        "shop_app",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let password = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("password:"))
        .expect("password line")
        .trim()
        .to_string();
    let service = connect_as(&up.gateway, "shop", "shop_app", &password)
        .await
        .expect("service login");
    let rows = service
        .simple_query("SET LOCAL bulkhead.tenant = 'acme'; SELECT name FROM customers")
        .await
        .expect("per-transaction tenant");
    assert!(rows.iter().any(
        |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("acme"))
    ));
    let listed = up.cli(&["service", "credential", "list", "shop"]);
    assert!(listed.stdout.contains("shop_app"), "{}", listed.stdout);
    let out = up.cli(&["service", "credential", "revoke", "shop", "shop_app"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let err = connect_as(&up.gateway, "shop", "shop_app", &password)
        .await
        .expect_err("revoked credential");
    assert_eq!(err.code().map(|c| c.code()), Some("28P01"));

    // A revoked key is refused.
    let id = key
        .trim_start_matches("bhk_")
        .split('.')
        .next()
        .expect("id")
        .to_string();
    let out = up.cli(&["tenant", "key", "revoke", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let err = connect(&up.gateway, "shop", &key)
        .await
        .expect_err("revoked");
    assert_eq!(err.code().map(|c| c.code()), Some("28P01"));
    assert!(up.stop().success());
}

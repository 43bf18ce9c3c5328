//! The web console in a real browser: Debian's headless Chromium, driven by playwright-core
//! (crates/console/tests/browser/console.mjs), against a real `bulkhead up` with a few hundred
//! tenants in three modes. The script signs in (a wrong token refused), finds a tenant among
//! many, opens its page and sees its usage chart, suspends and resumes it, starts a move and
//! watches it reach `switched`, runs verify, signs out, and checks that the read-only token
//! and requests without the CSRF token cannot act. Screenshots of every page land in
//! `target/console-screenshots/`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{gateway_client, ok, workspace, Up};

const NEEDLE: &str = "needle-works";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/tests/browser")
}

async fn create_tenants(up: &Up, prefix: &str, tier: &str, n: usize) {
    let client = reqwest::Client::new();
    let token = up.api_token();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (client, token, url) = (client.clone(), token.clone(), up.api_url.clone());
        let body = serde_json::json!({ "slug": format!("{prefix}-{i:04}"), "tier": tier, "service": "billing" });
        tasks.spawn(async move {
            let r = client
                .post(format!("{url}/v1/tenants"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("create tenant");
            assert_eq!(r.status(), 201, "{:?}", r.text().await);
        });
        // A few at a time: the embedded cluster has two cores to share.
        while tasks.len() >= 6 {
            tasks.join_next().await;
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Runs the browser script against `up` with `extra` settings.
fn browser(
    up: &Up,
    info: &bulkhead_server::Instance,
    shots: &Path,
    chromium: &str,
    extra: &[(&str, &str)],
) -> std::process::Output {
    Command::new("node")
        .arg(browser_dir().join("console.mjs"))
        .current_dir(browser_dir())
        .env("CONSOLE_URL", &up.api_url)
        .env("ADMIN_TOKEN", &info.token)
        .env(
            "READ_TOKEN",
            info.console_token.as_deref().expect("console token"),
        )
        .env("TENANT", NEEDLE)
        .env("SHOTS", shots)
        .env("CHROMIUM", chromium)
        .envs(extra.iter().copied())
        .output()
        .expect("run node")
}

async fn api_get(up: &Up, path: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{}{path}", up.api_url))
        .bearer_auth(up.api_token())
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_works_in_a_real_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "the console's browser test needs Chromium at {chromium}: run scripts/setup.sh (apt-get install chromium)"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").is_dir(),
        "the console's browser test needs playwright-core: run scripts/setup.sh (npm ci in {})",
        browser_dir().display()
    );

    let ws = workspace();
    let up = Up::start(&ws.path().join(".bulkhead"), &[]);
    up.billing_service(
        "billing",
        &["--tier", "pro=schema", "--tier", "enterprise=database"],
    );
    create_tenants(&up, "shop", "free", 240).await;
    create_tenants(&up, "studio", "pro", 6).await;
    create_tenants(&up, "bank", "enterprise", 1).await;
    let key = up.tenant_with_key(NEEDLE, "billing", "shared");
    // A second key: the browser revokes the newest one.
    let second = ok(up.cli(&["tenant", "key", "create", NEEDLE]))
        .stdout
        .trim()
        .to_string();
    // A second cluster, in another region, stopped later to show an unreachable one.
    let far = bulkhead_pgkit::ThrowawayCluster::start().expect("second cluster");
    ok(up.cli(&[
        "cluster",
        "add",
        "far",
        "--dsn",
        &far.dsn("postgres"),
        "--region",
        "eu-west",
        "--capacity",
        "500",
    ]));
    // A service whose second migration fails with markup in its error: the console must
    // show it as text.
    let notes = ws.path().join("notes");
    std::fs::create_dir_all(&notes).expect("mkdir");
    std::fs::write(
        notes.join("V1__notes.sql"),
        "CREATE TABLE notes (tenant_id uuid NOT NULL DEFAULT bulkhead.current_tenant(), id bigint, body text, PRIMARY KEY (tenant_id, id));\n",
    )
    .expect("write");
    ok(up.cli(&[
        "service",
        "create",
        "notes",
        "--migrations",
        notes.to_str().expect("utf8"),
        "--mode",
        "schema",
        "--cluster",
        "local",
    ]));
    ok(up.cli(&["tenant", "create", "scribe", "--service", "notes"]));
    std::fs::write(
        notes.join("V2__broken.sql"),
        "SELECT '<img src=x onerror=\"window.__bulkhead_xss=1\">'::int;\n",
    )
    .expect("write");
    let migrated = up.cli(&[
        "migrate",
        "notes",
        "--migrations",
        notes.to_str().expect("utf8"),
    ]);
    assert_ne!(
        migrated.code, 0,
        "the broken migration must fail: {}",
        migrated.stdout
    );

    // Rows the move must carry, and usage for the tenant's chart.
    let c = gateway_client(&up.gateway, "billing", NEEDLE, &key)
        .await
        .expect("login");
    for i in 0..40i64 {
        c.execute(
            "INSERT INTO customers (id, name, country) VALUES ($1, $2, 'fr')",
            &[&i, &format!("customer {i}")],
        )
        .await
        .expect("insert");
    }
    drop(c);
    ok(up.cli(&["usage", "collect"]));

    let info = bulkhead_server::Instance::read(&up.data_dir)
        .expect("read")
        .expect("instance");
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    // Pictures of this run only (a failure.png from an earlier run would mislead).
    let _ = std::fs::remove_dir_all(&shots);
    let out = browser(&up, &info, &shots, &chromium, &[("XSS_SERVICE", "notes")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser test failed (screenshots in {}):\n{stdout}\n{stderr}",
        shots.display()
    );
    for page in [
        "signin",
        "tenants-search",
        "fleet",
        "tenants",
        "tenant",
        "moves",
        "migrations",
        "isolation",
        "read-only",
    ] {
        assert!(
            shots.join(format!("{page}.png")).is_file(),
            "no screenshot of {page}"
        );
    }

    // What the browser did landed for real: the move, with every row, in the audit log.
    let t = api_get(&up, &format!("/v1/tenants/{NEEDLE}")).await;
    assert_eq!(t["placements"][0]["mode"], "schema", "{t}");
    assert_eq!(t["state"], "active");
    // The browser revoked the newest key; the first still logs in.
    assert!(
        gateway_client(&up.gateway, "billing", NEEDLE, &second)
            .await
            .is_err(),
        "the key revoked in the console still logs in"
    );
    let c = gateway_client(&up.gateway, "billing", NEEDLE, &key)
        .await
        .expect("login after the move");
    let n: i64 = c
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 40, "rows after the move started in the console");
    let audit = api_get(&up, &format!("/v1/audit?tenant={NEEDLE}&last=20")).await;
    let actions: Vec<String> = audit
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["actor"].as_str().unwrap_or(""),
                e["action"].as_str().unwrap_or("")
            )
        })
        .collect();
    for want in [
        "api:tenant.suspended",
        "api:tenant.resumed",
        "api:tenant.moved",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "audit lacks {want}: {actions:?}"
        );
    }
    let proof = api_get(&up, "/v1/proof").await;
    assert!(
        proof
            .as_array()
            .expect("runs")
            .iter()
            .any(|r| r["kind"] == "verify" && r["passed"] == true),
        "the verify run from the console was not kept: {proof}"
    );

    sessions_hold_only_what_they_should(&up, &info).await;

    // A cluster that stops answering is shown, not a blank page.
    drop(far);
    let out = browser(&up, &info, &shots, &chromium, &[("ONLY", "unreachable")]);
    assert!(
        out.status.success(),
        "the unreachable-cluster check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The session rules at the HTTP level, as a page on another origin would try them.
async fn sessions_hold_only_what_they_should(up: &Up, info: &bulkhead_server::Instance) {
    let http = reqwest::Client::new();
    let url = &up.api_url;
    let sign_in = |origin: Option<&str>, token: &str| {
        let mut r = http
            .post(format!("{url}/console/session"))
            .json(&serde_json::json!({ "token": token }));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    // Another origin cannot sign a browser in (login CSRF).
    let r = sign_in(Some("http://evil.example"), &info.token)
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    let r = sign_in(Some(url), &info.token).await.expect("post");
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("set-cookie")
        .to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "cookie lacks {attr}: {cookie}");
    }
    let csrf = r.json::<serde_json::Value>().await.expect("json")["csrf"]
        .as_str()
        .expect("csrf")
        .to_string();
    let session = cookie.split(';').next().expect("pair").to_string();
    let suspend = |csrf: Option<&str>, origin: Option<&str>| {
        let mut r = http
            .post(format!("{url}/v1/tenants/{NEEDLE}/suspend"))
            .header("cookie", &session);
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    assert_eq!(suspend(None, Some(url)).await.expect("post").status(), 403);
    assert_eq!(
        suspend(Some(&csrf), Some("http://evil.example"))
            .await
            .expect("post")
            .status(),
        403,
        "the right CSRF token from another origin"
    );
    assert_eq!(
        api_get(up, &format!("/v1/tenants/{NEEDLE}")).await["state"],
        "active"
    );
    assert_eq!(
        suspend(Some(&csrf), Some(url))
            .await
            .expect("post")
            .status(),
        200
    );
    assert_eq!(
        api_get(up, &format!("/v1/tenants/{NEEDLE}")).await["state"],
        "suspended"
    );
    ok(up.cli(&["tenant", "resume", NEEDLE]));
    // The page itself is served with a policy that allows this origin only.
    let page = http.get(format!("{url}/")).send().await.expect("get");
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
}

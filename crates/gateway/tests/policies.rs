//! Tenant policies: tokens naming several tenants, just-in-time provisioning on a first
//! token, and per-tier limits (concurrent transactions, rate, statement timeout), with real
//! PostgreSQL and tokio-postgres.

use std::time::Duration;

use bulkhead_directory::{ServiceAuth, TenantRef};
use bulkhead_gateway::limits::{Limits, TierLimits};
use bulkhead_model::{Mode, TenantId};

mod support;
use support::*;

fn sign(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token")
}

async fn allow_tokens(env: &Env, jit: bool) {
    env.dir
        .set_service_auth(
            &env.service.parse().expect("s"),
            &ServiceAuth {
                hs256_secret: Some(SECRET.into()),
                jit_provisioning: jit,
                ..ServiceAuth::default()
            },
        )
        .await
        .expect("auth");
}

#[tokio::test]
async fn a_token_naming_several_tenants_chooses_among_exactly_those() {
    let env = env("pol_multi", 2).await;
    allow_tokens(&env, false).await;
    let a = tenant(&env, "multi-a", Mode::Shared).await;
    let b = tenant(&env, "multi-b", Mode::Schema).await;
    let c = tenant(&env, "multi-c", Mode::Shared).await;
    for (id, name) in [(a, "a"), (b, "b"), (c, "c")] {
        let t = sign(serde_json::json!({"tenant_id": id.to_string(), "exp": now() + 60}));
        let client = connect(&env, &t).await.expect("single-tenant login");
        client
            .batch_execute(&format!(
                "INSERT INTO customers (id, name) VALUES (1, '{name}')"
            ))
            .await
            .expect("insert");
    }
    let token =
        sign(serde_json::json!({"tenant_id": [a.to_string(), b.to_string()], "exp": now() + 60}));
    let client = connect(&env, &token).await.expect("consultant login");
    // No tenant chosen yet: nothing runs on tenant data.
    let e = client
        .query("SELECT name FROM customers", &[])
        .await
        .expect_err("no tenant");
    assert_eq!(code(&e), "42501");
    for (id, want) in [(a, "a"), (b, "b"), (a, "a")] {
        client
            .batch_execute(&format!("BEGIN; SET LOCAL bulkhead.tenant = '{id}'"))
            .await
            .expect("choose");
        assert_eq!(names(&client).await, [want]);
        client.batch_execute("COMMIT").await.expect("commit");
    }
    // By slug too, and for the session.
    client
        .batch_execute("SET bulkhead.tenant = 'multi-b'")
        .await
        .expect("session");
    assert_eq!(names(&client).await, ["b"]);
    // A tenant the token does not name is refused, by id or slug.
    for other in [c.to_string(), "multi-c".to_string()] {
        let e = client
            .batch_execute(&format!("SET bulkhead.tenant = '{other}'"))
            .await
            .expect_err("not named");
        assert_eq!(code(&e), "42501", "{other}");
    }
    assert_eq!(names(&client).await, ["b"], "the session's choice stands");
}

#[tokio::test]
async fn a_first_token_provisions_its_tenant_once_under_concurrent_requests() {
    let env = env("pol_jit", 8).await;
    let fresh = TenantId::random();
    let token = sign(serde_json::json!({
        "tenant_id": fresh.to_string(), "exp": now() + 60, "tier": "free", "tenant_slug": "jit-first"
    }));
    // Without the service's consent an unknown tenant is refused.
    let strict = support::env("pol_jit_off", 2).await;
    allow_tokens(&strict, false).await;
    let e = connect(&strict, &token).await.expect_err("unknown tenant");
    assert_eq!(code(&e), "28000", "{e:?}");
    assert!(
        strict.dir.tenant(&TenantRef::Id(fresh)).await.is_err(),
        "nothing created"
    );
    allow_tokens(&env, true).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (env, token) = (env.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let client = connect(&env, &token).await.expect("first login provisions");
            client
                .batch_execute(&format!(
                    "INSERT INTO customers (id, name) VALUES ({i}, 'c{i}')"
                ))
                .await
                .expect("insert");
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let t = env
        .dir
        .tenant(&TenantRef::Id(fresh))
        .await
        .expect("provisioned");
    assert_eq!(t.slug.as_str(), "jit-first");
    let placements = env.dir.placements_of(&fresh).await.expect("placements");
    assert_eq!(placements.len(), 1, "provisioned once: {placements:?}");
    let client = connect(&env, &token).await.expect("login");
    let n: i64 = client
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 8);
    // A per-transaction token of a service login provisions too.
    credential(&env, "jit_svc").await;
    let svc = service_client(&env, "jit_svc", PASSWORD)
        .await
        .expect("service login");
    let second = TenantId::random();
    let t2 = sign(serde_json::json!({"tenant_id": second.to_string(), "exp": now() + 60}));
    svc.batch_execute(&format!("BEGIN; SET LOCAL bulkhead.token = '{t2}'"))
        .await
        .expect("provisioned by SET LOCAL");
    assert!(names(&svc).await.is_empty());
    svc.batch_execute("COMMIT").await.expect("commit");
    // A claimed slug shaped like a tenant id (here: an existing tenant's) names nothing new.
    let third = TenantId::random();
    let forged = sign(serde_json::json!({
        "tenant_id": third.to_string(), "exp": now() + 60,
        "tenant_slug": fresh.simple()
    }));
    let e = connect(&env, &forged)
        .await
        .expect_err("id-shaped slug claim");
    assert_eq!(code(&e), "28000", "{e:?}");
    assert!(
        format!("{e:?}").contains("may not look like a tenant id"),
        "{e:?}"
    );
    assert!(
        env.dir.tenant(&TenantRef::Id(third)).await.is_err(),
        "nothing created"
    );
}

fn limited(settings: &mut bulkhead_gateway::GatewaySettings, _: &bulkhead_directory::Directory) {
    let mut limits = Limits::default();
    limits.tiers.insert(
        "free".into(),
        TierLimits {
            max_transactions: Some(2),
            transactions_per_second: None,
            statement_timeout: Some(Duration::from_millis(300)),
        },
    );
    limits.tiers.insert(
        "business".into(),
        TierLimits {
            transactions_per_second: Some(5),
            ..Default::default()
        },
    );
    settings.limits = limits;
}

#[tokio::test]
async fn a_tenant_at_its_concurrency_limit_is_refused_and_others_go_on() {
    // With an audit log: the limit hit is recorded under the tenant.
    let mut audit = None;
    let env = env_custom("pol_conc", 8, |s, dir| {
        limited(s, dir);
        let log = bulkhead_audit::AuditLog::new(
            dir.clone(),
            bulkhead_keys::MasterKey::from_bytes([3; 32]),
        );
        let writer = log.writer();
        s.audit = Some(writer.clone());
        audit = Some((log, writer));
    })
    .await;
    let (log, writer) = audit.expect("audit log");
    let noisy = tenant_key(&env, "noisy", Mode::Shared).await;
    let quiet = tenant_key(&env, "quiet", Mode::Shared).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let c = connect(&env, &noisy).await.expect("noisy");
        c.batch_execute("BEGIN; SELECT count(*) FROM customers")
            .await
            .expect("hold");
        held.push(c);
    }
    let third = connect(&env, &noisy).await.expect("noisy 3");
    let e = third
        .query("SELECT count(*) FROM customers", &[])
        .await
        .expect_err("over the limit");
    assert_eq!(code(&e), "53300");
    assert!(message(&e).contains("2 concurrent transactions"), "{e:?}");
    // Another tenant is not held back.
    let q = connect(&env, &quiet).await.expect("quiet");
    assert!(names(&q).await.is_empty());
    // When one ends, there is room again.
    held[0].batch_execute("COMMIT").await.expect("commit");
    assert!(names(&third).await.is_empty());
    writer.flush().await;
    let noisy_id = env
        .dir
        .tenant(&"noisy".parse().expect("slug"))
        .await
        .expect("noisy")
        .id;
    let events = log.list(Some(&noisy_id), None, 100).await.expect("events");
    assert!(
        events.iter().any(|e| e.action == "gateway.limit_hit"
            && e.details["limit"] == "concurrency"
            && e.details["value"] == 2),
        "{events:?}"
    );
    let quiet_id = env
        .dir
        .tenant(&"quiet".parse().expect("slug"))
        .await
        .expect("quiet")
        .id;
    assert!(log
        .list(Some(&quiet_id), None, 100)
        .await
        .expect("events")
        .is_empty());
}

#[tokio::test]
async fn a_query_past_the_statement_timeout_is_cancelled_naming_the_limit() {
    let env = env_custom("pol_timeout", 2, limited).await;
    let key = tenant_key(&env, "slow", Mode::Schema).await;
    let c = connect(&env, &key).await.expect("login");
    let started = std::time::Instant::now();
    let e = c
        .simple_query("SELECT pg_sleep(5)")
        .await
        .expect_err("cancelled");
    assert_eq!(code(&e), "57014", "{e:?}");
    assert!(message(&e).contains("statement timeout of 300 ms"), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cancelled, not waited out"
    );
    // The session goes on, also with the extended protocol and inside a transaction.
    assert!(names(&c).await.is_empty());
    c.batch_execute("BEGIN").await.expect("begin");
    let e = c
        .query("SELECT pg_sleep(5)", &[])
        .await
        .expect_err("cancelled");
    assert_eq!(code(&e), "57014");
    c.batch_execute("ROLLBACK").await.expect("rollback");
    // A client cannot lift it: its own statement_timeout does not decide.
    c.batch_execute("BEGIN; SET LOCAL statement_timeout = 0")
        .await
        .expect("set local");
    let e = c
        .simple_query("SELECT pg_sleep(5)")
        .await
        .expect_err("still cancelled");
    assert_eq!(code(&e), "57014");
    c.batch_execute("ROLLBACK").await.expect("rollback");
    assert!(names(&c).await.is_empty());
}

#[tokio::test]
async fn a_tenant_over_its_rate_is_refused_naming_the_limit() {
    let env = env_custom("pol_rate", 4, limited).await;
    let id = tenant_in_tier(&env, "fast", Mode::Shared, Some("business")).await;
    let secret: String = (0..40)
        .map(|i| (b'a' + (i * 5 % 26) as u8) as char)
        .collect();
    let key = env.dir.issue_key(&id, &secret).await.expect("key").key;
    let c = connect(&env, &key).await.expect("login");
    let mut refused = 0;
    for _ in 0..20 {
        match c.simple_query("SELECT 1 FROM customers").await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(code(&e), "53300");
                assert!(message(&e).contains("5 transactions per second"), "{e:?}");
                refused += 1;
            }
        }
    }
    assert!(
        refused >= 10,
        "a burst of 20 against 5 per second: {refused} refused"
    );
}

/// The signed context of shared tenants (one role for all of them; see
/// `bulkhead_gateway::backend::Signer`): with the gateway bypassed, PostgreSQL itself refuses
/// a tenant setting without this backend's MAC, a MAC made for another backend, an empty MAC
/// and a read of the key; the gateway's own MAC is accepted.
#[tokio::test]
async fn a_shared_context_is_refused_by_postgresql_without_the_gateways_mac() {
    let env = env("pol_mac", 2).await;
    let key_a = tenant_key(&env, "mac-a", Mode::Shared).await;
    let b = tenant(&env, "mac-b", Mode::Shared).await;
    let client = connect(&env, &key_a).await.expect("login");
    client
        .batch_execute("INSERT INTO customers (id, name) VALUES (1, 'a')")
        .await
        .expect("insert through the gateway, signed");
    let cluster = env
        .dir
        .cluster(&"main".parse().expect("name"))
        .await
        .expect("cluster");
    let mut config: tokio_postgres::Config = cluster.admin_dsn.parse().expect("dsn");
    config.dbname(format!("bh_{}", env.service));
    let (admin, conn) = config.connect(tokio_postgres::NoTls).await.expect("admin");
    tokio::spawn(conn);
    let group = format!("bh_{}_rt", env.service);
    let mac_for = |pid: &str| {
        format!(
            "SELECT encode(sha256(opad || sha256(ipad || convert_to('{b}:' || {pid}, 'UTF8'))), 'hex') FROM bulkhead.context_key"
        )
    };
    let own: String = admin
        .query_one(&mac_for("pg_backend_pid()"), &[])
        .await
        .expect("mac")
        .get(0);
    let other: String = admin
        .query_one(&mac_for("(pg_backend_pid() + 1)"), &[])
        .await
        .expect("mac")
        .get(0);
    admin
        .batch_execute(&format!(
            "SET ROLE \"{group}\"; SET bulkhead.tenant_id = '{b}'"
        ))
        .await
        .expect("as the shared role");
    let customers = "SELECT name FROM customers";
    for (mac, sql, what) in [
        ("", customers, "no MAC"),
        ("00", customers, "a forged MAC"),
        (other.as_str(), customers, "another backend's MAC"),
        (
            own.as_str(),
            "SELECT key FROM bulkhead.context_key",
            "the key, read even with a valid MAC",
        ),
    ] {
        admin
            .batch_execute(&format!("SET bulkhead.tenant_mac = '{mac}'"))
            .await
            .expect("set");
        let e = admin.query(sql, &[]).await.expect_err(what);
        assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{what}: {e:?}"
        );
    }
    admin
        .batch_execute(&format!("SET bulkhead.tenant_mac = '{own}'"))
        .await
        .expect("set");
    let rows = admin
        .query("SELECT name FROM customers", &[])
        .await
        .expect("this backend's MAC of b");
    assert!(rows.is_empty(), "b sees none of a's rows");
}

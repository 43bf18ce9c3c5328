//! Service logins: a SCRAM-SHA-256 credential of the service, and the tenant chosen per
//! transaction (`SET LOCAL bulkhead.tenant|token`) or per session (`SET`), with real
//! PostgreSQL, tokio-postgres and psycopg.

use std::time::Duration;

use bulkhead_directory::{ServiceAuth, TenantRef};
use bulkhead_model::{Mode, TenantState};

mod support;
use support::*;

#[tokio::test]
async fn a_service_login_chooses_the_tenant_per_transaction_in_every_mode() {
    let env = env("svc_modes", 4).await;
    credential(&env, "app_svc").await;
    let tenants = [
        ("svc-shared", Mode::Shared),
        ("svc-schema", Mode::Schema),
        ("svc-db", Mode::Database),
    ];
    let mut ids = Vec::new();
    for (slug, mode) in tenants {
        ids.push(tenant(&env, slug, mode).await);
    }
    let mut client = service_client(&env, "app_svc", PASSWORD)
        .await
        .expect("login");
    // Writes: BEGIN (simple), SET LOCAL by id (simple), INSERT (prepared, extended).
    for (i, ((slug, _), id)) in tenants.iter().zip(&ids).enumerate() {
        let tx = client.transaction().await.expect("begin");
        tx.batch_execute(&format!("SET LOCAL bulkhead.tenant = '{id}'"))
            .await
            .expect("set local");
        tx.execute(
            "INSERT INTO customers (id, name) VALUES ($1, $2)",
            &[&(i as i64), &slug.to_string()],
        )
        .await
        .expect("insert");
        tx.commit().await.expect("commit");
    }
    // Reads: the tenant named by slug, with SET LOCAL sent in the extended protocol.
    for (slug, _) in tenants {
        let tx = client.transaction().await.expect("begin");
        tx.execute(&format!("SET LOCAL bulkhead.tenant = '{slug}'"), &[])
            .await
            .expect("set local (extended)");
        let rows: Vec<String> = tx
            .query("SELECT name FROM customers", &[])
            .await
            .expect("select")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            rows,
            vec![slug.to_string()],
            "{slug} sees only its own rows"
        );
        tx.commit().await.expect("commit");
    }
    // No tenant chosen: refused, and nothing ran.
    let e = client
        .query("SELECT name FROM customers", &[])
        .await
        .expect_err("no tenant");
    assert_eq!(code(&e), "42501", "{e:?}");
    assert!(message(&e).contains("no tenant"), "{e}");
    // The SET LOCAL of a finished transaction is gone.
    let e = client
        .simple_query("SELECT 1 FROM customers")
        .await
        .expect_err("still no tenant");
    assert_eq!(code(&e), "42501");
    // SET LOCAL and the statement in one query string (an implicit transaction).
    let rows = client
        .simple_query("SET LOCAL bulkhead.tenant = 'svc-schema'; SELECT name FROM customers")
        .await
        .expect("one string");
    let names_seen: Vec<_> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(names_seen, ["svc-schema"]);
    // For the session: SET, until RESET.
    client
        .batch_execute("SET bulkhead.tenant = 'svc-db'")
        .await
        .expect("session set");
    assert_eq!(names(&client).await, ["svc-db"]);
    assert_eq!(names(&client).await, ["svc-db"], "for every transaction");
    // SET LOCAL overrides the session's tenant for one transaction only.
    let tx = client.transaction().await.expect("begin");
    tx.batch_execute("SET LOCAL bulkhead.tenant = 'svc-shared'")
        .await
        .expect("override");
    assert_eq!(names(&tx).await, ["svc-shared"]);
    tx.commit().await.expect("commit");
    assert_eq!(names(&client).await, ["svc-db"]);
    client
        .batch_execute("RESET bulkhead.tenant")
        .await
        .expect("reset");
    assert!(client.query("SELECT 1 FROM customers", &[]).await.is_err());
    // The tenant of a transaction is fixed once its first statement ran.
    let tx = client.transaction().await.expect("begin");
    tx.batch_execute("SET LOCAL bulkhead.tenant = 'svc-shared'")
        .await
        .expect("set");
    assert_eq!(names(&tx).await, ["svc-shared"]);
    tx.batch_execute("SET LOCAL bulkhead.tenant = 'svc-shared'")
        .await
        .expect("the same tenant again is accepted");
    let e = tx
        .batch_execute("SET LOCAL bulkhead.tenant = 'svc-schema'")
        .await
        .expect_err("switch mid-transaction");
    assert_eq!(code(&e), "42501", "{e:?}");
    tx.rollback().await.expect("rollback");
    // Unknown, malformed and suspended tenants.
    let tx = client.transaction().await.expect("begin");
    let e = tx
        .batch_execute(&format!(
            "SET LOCAL bulkhead.tenant = '{}'",
            uuid::Uuid::new_v4()
        ))
        .await
        .expect_err("unknown");
    assert_eq!(code(&e), "28000", "{e:?}");
    tx.rollback().await.expect("rollback");
    let e = client
        .batch_execute("SET bulkhead.tenant = 'Not A Slug!'")
        .await
        .expect_err("malformed");
    assert_eq!(code(&e), "28000", "{e:?}");
    env.dir
        .set_tenant_state(&TenantRef::Id(ids[0]), TenantState::Suspended)
        .await
        .expect("suspend");
    let mut refused = None;
    for _ in 0..50 {
        match client
            .simple_query("SET LOCAL bulkhead.tenant = 'svc-shared'; SELECT 1 FROM customers")
            .await
        {
            Err(e) => {
                refused = Some(e);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let e = refused.expect("a suspended tenant is refused");
    assert_eq!(code(&e), "28000", "{e:?}");
    assert!(message(&e).contains("suspended"), "{e}");
    // Other tenants are still served on the same session.
    let rows = client
        .simple_query("SET LOCAL bulkhead.tenant = 'svc-db'; SELECT name FROM customers")
        .await
        .expect("another tenant");
    assert!(rows
        .iter()
        .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))));
}

#[tokio::test]
async fn a_wrong_password_fails_and_a_revoked_credential_ends_its_sessions() {
    let env = env("svc_auth", 2).await;
    credential(&env, "app_svc").await;
    let e = service_client(&env, "app_svc", "not-the-password")
        .await
        .expect_err("wrong password");
    assert_eq!(code(&e), "28P01", "{e:?}");
    let t = tenant(&env, "revoked-app", Mode::Shared).await;
    let client = service_client(&env, "app_svc", PASSWORD)
        .await
        .expect("login");
    client
        .batch_execute(&format!("SET bulkhead.tenant = '{t}'"))
        .await
        .expect("set");
    client
        .query("SELECT 1 FROM customers", &[])
        .await
        .expect("served");
    env.dir
        .revoke_credential(&env.service.parse().expect("s"), "app_svc")
        .await
        .expect("revoke");
    let mut ended = false;
    for _ in 0..50 {
        if client.query("SELECT 1 FROM customers", &[]).await.is_err() {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ended, "the revoked credential's session ended");
    assert!(client.is_closed());
    let e = service_client(&env, "app_svc", PASSWORD)
        .await
        .expect_err("revoked");
    assert_eq!(
        code(&e),
        "28P01",
        "a revoked credential is an unknown user: {e:?}"
    );
}

#[tokio::test]
async fn tokens_choose_tenants_and_a_service_can_require_them() {
    let env = env("svc_tokens", 2).await;
    credential(&env, "app_svc").await;
    let a = tenant(&env, "tok-a", Mode::Shared).await;
    let b = tenant(&env, "tok-b", Mode::Schema).await;
    env.dir
        .set_service_auth(
            &env.service.parse().expect("s"),
            &ServiceAuth {
                hs256_secret: Some(SECRET.into()),
                require_tokens: true,
                ..ServiceAuth::default()
            },
        )
        .await
        .expect("auth");
    let mut client = service_client(&env, "app_svc", PASSWORD)
        .await
        .expect("login");
    for (t, name) in [(a, "a"), (b, "b")] {
        let tx = client.transaction().await.expect("begin");
        tx.batch_execute(&format!(
            "SET LOCAL bulkhead.token = '{}'",
            token(&t, SECRET, now() + 60)
        ))
        .await
        .expect("token");
        tx.execute("INSERT INTO customers (id, name) VALUES (1, $1)", &[&name])
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
    }
    let tx = client.transaction().await.expect("begin");
    let e = tx
        .batch_execute(&format!("SET LOCAL bulkhead.tenant = '{a}'"))
        .await
        .expect_err("bare ids are refused when tokens are required");
    assert_eq!(code(&e), "42501", "{e:?}");
    assert!(message(&e).contains("requires signed tokens"), "{e}");
    tx.rollback().await.expect("rollback");
    for (bad, why) in [
        (token(&a, SECRET, now() - 3600), "expired"),
        (
            token(&a, "another-secret-another-secret-another", now() + 60),
            "signature",
        ),
        ("not.a.token".to_string(), "malformed"),
    ] {
        let tx = client.transaction().await.expect("begin");
        let e = tx
            .batch_execute(&format!("SET LOCAL bulkhead.token = '{bad}'"))
            .await
            .expect_err(why);
        assert_eq!(code(&e), "28P01", "{why}: {e:?}");
        assert!(message(&e).contains(why), "{why}: {e}");
        tx.rollback().await.expect("rollback");
    }
    // For the session, with a token.
    client
        .batch_execute(&format!(
            "SET bulkhead.token = '{}'",
            token(&b, SECRET, now() + 60)
        ))
        .await
        .expect("session token");
    assert_eq!(names(&client).await, ["b"]);
}

#[tokio::test]
async fn a_tenant_login_cannot_choose_another_tenant() {
    let env = env("svc_pinned", 2).await;
    let key = tenant_key(&env, "pinned-a", Mode::Shared).await;
    let b = tenant(&env, "pinned-b", Mode::Shared).await;
    let client = connect(&env, &key).await.expect("login");
    let e = client
        .batch_execute(&format!("SET bulkhead.tenant = '{b}'"))
        .await
        .expect_err("another tenant");
    assert_eq!(code(&e), "42501", "{e:?}");
    let e = client
        .batch_execute("BEGIN; SET LOCAL bulkhead.tenant = 'pinned-b'")
        .await
        .expect_err("another tenant by slug");
    assert_eq!(code(&e), "42501", "{e:?}");
    client.batch_execute("ROLLBACK").await.expect("rollback");
    client
        .batch_execute("SET bulkhead.tenant = 'pinned-a'")
        .await
        .expect("its own tenant is accepted");
    client
        .query("SELECT 1 FROM customers", &[])
        .await
        .expect("served");
}

#[tokio::test]
async fn service_sessions_switching_tenants_on_one_backend_never_leak() {
    let env = env("svc_leak", 1).await;
    credential(&env, "app_svc").await;
    let tenants = [
        tenant(&env, "leak-a", Mode::Shared).await,
        tenant(&env, "leak-b", Mode::Shared).await,
        tenant(&env, "leak-c", Mode::Schema).await,
    ];
    let one = service_client(&env, "app_svc", PASSWORD)
        .await
        .expect("one");
    let two = service_client(&env, "app_svc", PASSWORD)
        .await
        .expect("two");
    for round in 0..12i64 {
        for (i, c) in [&one, &two].into_iter().enumerate() {
            let t = tenants[(round as usize + i) % tenants.len()];
            let rows = c
                .simple_query(&format!(
                    "SET LOCAL bulkhead.tenant = '{t}'; INSERT INTO customers (id, name) VALUES ({}, '{t}'); \
                     SELECT current_setting('bulkhead.tenant_id'), count(*) FILTER (WHERE name <> '{t}') FROM customers",
                    round * 2 + i as i64
                ))
                .await
                .expect("round");
            let row = rows
                .iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some((r.get(0).map(str::to_string), r.get(1).map(str::to_string)))
                    }
                    _ => None,
                })
                .expect("row");
            assert_eq!(row.0.as_deref(), Some(t.to_string().as_str()));
            assert_eq!(row.1.as_deref(), Some("0"), "no other tenant's rows");
        }
    }
}

#[tokio::test]
async fn psycopg_service_login_chooses_tenants() {
    let env = env("svc_psycopg", 2).await;
    credential(&env, "app_svc").await;
    tenant(&env, "py-a", Mode::Shared).await;
    tenant(&env, "py-b", Mode::Schema).await;
    run_driver(
        &env,
        "psycopg_service.py",
        "app_svc",
        PASSWORD,
        &["py-a", "py-b"],
    )
    .await;
}

/// A connect with `options=-c bulkhead.tenant=<slug>` (what a per-tenant connection string of
/// a service credential carries): the session acts for that tenant from its first statement,
/// a transaction may still choose another, and a tenant that is not served, or a tenant
/// login naming another tenant, fails the login itself.
#[tokio::test]
async fn the_startup_packet_chooses_the_session_tenant() {
    let env = env("svc_startup", 2).await;
    credential(&env, "app_svc").await;
    let a = tenant(&env, "start-a", Mode::Schema).await;
    let b = tenant(&env, "start-b", Mode::Shared).await;
    let connect_with = |user: &'static str, password: String, options: String| {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(env.port)
            .dbname(&env.service)
            .user(user)
            .password(password)
            .options(&options)
            .connect_timeout(Duration::from_secs(5));
        async move {
            let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            Ok::<_, tokio_postgres::Error>(client)
        }
    };
    let client = connect_with(
        "app_svc",
        PASSWORD.into(),
        "-c bulkhead.tenant=start-a".into(),
    )
    .await
    .expect("login with a startup tenant");
    client
        .execute("INSERT INTO customers (id, name) VALUES (1, 'a')", &[])
        .await
        .expect("insert for the startup tenant");
    let tx_b = format!("BEGIN; SET LOCAL bulkhead.tenant = '{b}'; INSERT INTO customers (id, name) VALUES (2, 'b'); COMMIT");
    client
        .batch_execute(&tx_b)
        .await
        .expect("another tenant for one transaction");
    let names = |rows: Vec<tokio_postgres::Row>| {
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let rows = client
        .query("SELECT name FROM customers", &[])
        .await
        .expect("select");
    assert_eq!(
        names(rows),
        vec!["a"],
        "back to the startup tenant after it"
    );
    client
        .batch_execute("RESET bulkhead.tenant")
        .await
        .expect("reset");
    let e = client
        .query("SELECT 1 FROM customers", &[])
        .await
        .expect_err("no tenant after RESET");
    assert_eq!(code(&e), "42501", "{e:?}");
    // By id.
    let by_id = connect_with(
        "app_svc",
        PASSWORD.into(),
        format!("-c bulkhead.tenant={a}"),
    )
    .await
    .expect("by id");
    let rows = by_id
        .query("SELECT name FROM customers", &[])
        .await
        .expect("select");
    assert_eq!(names(rows), vec!["a"]);
    // Unknown tenant: the login fails, saying why.
    let e = connect_with(
        "app_svc",
        PASSWORD.into(),
        "-c bulkhead.tenant=nobody".into(),
    )
    .await
    .expect_err("unknown tenant");
    assert!(message(&e).contains("startup bulkhead.tenant"), "{e}");
    // A tenant login naming another tenant: refused at login; naming its own: accepted.
    let key = tenant_key(&env, "start-c", Mode::Shared).await;
    let e = connect_with("app", key.clone(), "-c bulkhead.tenant=start-a".into())
        .await
        .expect_err("a tenant login naming another");
    assert_eq!(code(&e), "42501", "{e:?}");
    let own = connect_with("app", key, "-c bulkhead.tenant=start-c".into())
        .await
        .expect("its own tenant");
    own.query("SELECT 1 FROM customers", &[])
        .await
        .expect("served");
}

/// Before it chose a tenant, a service login may read the catalogs (what drivers and ORMs
/// send when they connect: type lookups, `SELECT version()`, `SHOW`), in both protocols, as
/// the catalog role, which can read no tenant's rows; anything else waits for a tenant.
#[tokio::test]
async fn a_service_login_reads_the_catalogs_before_choosing_a_tenant() {
    let env = env("svc_catalog", 1).await;
    credential(&env, "cat_svc").await;
    let id = tenant(&env, "cat-shared", Mode::Shared).await;
    tenant(&env, "cat-schema", Mode::Schema).await;
    let client = service_client(&env, "cat_svc", PASSWORD)
        .await
        .expect("login");
    let oid: u32 = client
        .query_one("SELECT oid FROM pg_type WHERE typname = $1", &[&"int4"])
        .await
        .expect("a type lookup (extended protocol)")
        .get(0);
    assert_eq!(oid, 23);
    client
        .simple_query("SELECT version(); SHOW server_version")
        .await
        .expect("version (simple protocol)");
    let (role, tenant_setting): (String, String) = {
        let row = client
            .query_one(
                "SELECT current_user::text, current_setting('bulkhead.tenant_id', true)",
                &[],
            )
            .await
            .expect("who");
        (row.get(0), row.get(1))
    };
    assert!(role.starts_with("bh_cat_"), "{role}");
    assert_eq!(tenant_setting, "");
    // The catalog role is bound to no tenant and may read no tenant's rows.
    let e = client
        .query_one("SELECT bulkhead.current_tenant()", &[])
        .await
        .expect_err("no tenant");
    assert_eq!(code(&e), "42501", "{e}");
    assert!(message(&e).contains("no tenant context"), "{e}");
    for sql in [
        "SELECT name FROM customers",
        "SELECT * FROM pg_type, customers",
        "SELECT (SELECT count(*) FROM public.customers)",
    ] {
        let e = client.query(sql, &[]).await.expect_err(sql);
        assert_eq!(code(&e), "42501", "{sql}: {e}");
        assert!(message(&e).contains("no tenant"), "{sql}: {e}");
    }
    // A transaction that began with catalog reads stays on them: no tenant may be chosen
    // in it and no tenant data read.
    client.batch_execute("BEGIN").await.expect("begin");
    client.query("SELECT 1", &[]).await.expect("catalog read");
    let e = client
        .batch_execute(&format!("SET LOCAL bulkhead.tenant = '{id}'"))
        .await
        .expect_err("tenant after the first statement");
    assert_eq!(code(&e), "42501", "{e}");
    client.batch_execute("ROLLBACK").await.expect("rollback");
    client.batch_execute("BEGIN").await.expect("begin");
    client.query("SELECT 1", &[]).await.expect("catalog read");
    let e = client
        .query("SELECT name FROM customers", &[])
        .await
        .expect_err("tenant data on the catalog route");
    assert!(message(&e).contains("no tenant"), "{e}");
    client.batch_execute("ROLLBACK").await.expect("rollback");
    // And then a tenant, on the same pool of one.
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL bulkhead.tenant = '{id}'; INSERT INTO customers (id, name) VALUES (1, 'x'); COMMIT"
        ))
        .await
        .expect("a tenant's transaction after catalog reads");
}

/// A statement a service login prepared while acting for one schema-mode tenant, used while
/// acting for another on the same backend connection, reads the second tenant's table
/// (PostgreSQL plans a prepared statement again when the search_path or role it was planned
/// under changed).
#[tokio::test]
async fn a_prepared_statement_follows_the_tenant_of_each_transaction() {
    let env = env("svc_prepared", 1).await;
    credential(&env, "prep_svc").await;
    let a = tenant(&env, "prep-a", Mode::Schema).await;
    let b = tenant(&env, "prep-b", Mode::Schema).await;
    let mut client = service_client(&env, "prep_svc", PASSWORD)
        .await
        .expect("login");
    for (id, name) in [(a, "a-row"), (b, "b-row")] {
        client
            .batch_execute(&format!(
                "BEGIN; SET LOCAL bulkhead.tenant = '{id}'; INSERT INTO customers (id, name) VALUES (1, '{name}'); COMMIT"
            ))
            .await
            .expect("insert");
    }
    let tx = client.transaction().await.expect("begin");
    tx.batch_execute(&format!("SET LOCAL bulkhead.tenant = '{a}'"))
        .await
        .expect("choose a");
    let stmt = tx
        .prepare("SELECT name FROM customers")
        .await
        .expect("prepare for a");
    let seen: String = tx.query_one(&stmt, &[]).await.expect("a reads").get(0);
    assert_eq!(seen, "a-row");
    tx.commit().await.expect("commit");
    for (id, name) in [(b, "b-row"), (a, "a-row"), (b, "b-row")] {
        let tx = client.transaction().await.expect("begin");
        tx.batch_execute(&format!("SET LOCAL bulkhead.tenant = '{id}'"))
            .await
            .expect("choose");
        let seen: String = tx
            .query_one(&stmt, &[])
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .get(0);
        assert_eq!(seen, name);
        tx.commit().await.expect("commit");
    }
}

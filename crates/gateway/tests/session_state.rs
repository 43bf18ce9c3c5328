//! The client's virtual session over the wire: session settings a client chooses (SET, its
//! startup packet) follow it onto whichever pooled connection serves it and never reach
//! another client; pool resets and `application_name` are answered for it alone; what
//! would change who the session is stays refused.

use std::time::Duration;

use bulkhead_model::Mode;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

mod support;
use support::*;

/// The first column of the first row a simple query returns.
async fn one(c: &Client, sql: &str) -> String {
    for m in c.simple_query(sql).await.expect(sql) {
        if let SimpleQueryMessage::Row(r) = m {
            return r.get(0).unwrap_or_default().to_string();
        }
    }
    panic!("{sql}: no row");
}

async fn connect_with(env: &Env, key: &str, app: &str, options: &str) -> Client {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(env.port)
        .dbname(&env.service)
        .user("app")
        .password(key)
        .application_name(app)
        .options(options)
        .connect_timeout(Duration::from_secs(5));
    let (client, conn) = config.connect(NoTls).await.expect("login");
    tokio::spawn(conn);
    client
}

#[tokio::test]
async fn each_client_sees_its_own_settings_on_a_pool_of_one() {
    // One backend connection: every client's transactions run on it, in turn.
    let env = env("sess_tz", 1).await;
    let key_a = tenant_key(&env, "tz-a", Mode::Shared).await;
    let key_b = tenant_key(&env, "tz-b", Mode::Schema).await;
    let a = connect(&env, &key_a).await.expect("a");
    let b = connect(&env, &key_b).await.expect("b");
    let plain = connect(&env, &key_a).await.expect("plain");
    let default_tz = one(&plain, "SHOW TimeZone").await;

    a.batch_execute("SET TimeZone = 'America/New_York'")
        .await
        .expect("a sets");
    b.batch_execute("SET TIME ZONE 'Asia/Tokyo'")
        .await
        .expect("b sets");
    let instant = "SELECT '2020-01-01 00:00:00+00'::timestamptz::text";
    for _ in 0..3 {
        assert_eq!(one(&a, "SHOW TimeZone").await, "America/New_York");
        assert_eq!(one(&b, "SHOW TimeZone").await, "Asia/Tokyo");
        assert_eq!(one(&plain, "SHOW TimeZone").await, default_tz);
        assert_eq!(one(&a, instant).await, "2019-12-31 19:00:00-05");
        assert_eq!(one(&b, instant).await, "2020-01-01 09:00:00+09");
        // The extended protocol sees the same session.
        let row = b.query_one("SHOW TimeZone", &[]).await.expect("extended");
        assert_eq!(row.get::<_, String>(0), "Asia/Tokyo");
        let row = plain.query_one("SHOW TimeZone", &[]).await.expect("plain");
        assert_eq!(row.get::<_, String>(0), default_tz);
    }

    // A SET in a transaction that rolls back is undone, as in PostgreSQL; one that commits
    // stays.
    a.batch_execute("BEGIN; SET TimeZone = 'Europe/Paris'; ROLLBACK")
        .await
        .expect("rolled back");
    assert_eq!(one(&a, "SHOW TimeZone").await, "America/New_York");
    a.batch_execute("BEGIN").await.expect("begin");
    a.execute("SET extra_float_digits = 2", &[])
        .await
        .expect("extended SET");
    a.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(one(&a, "SHOW extra_float_digits").await, "2");
    assert_ne!(one(&b, "SHOW extra_float_digits").await, "2");

    // A session statement timeout holds for that client only.
    b.batch_execute("SET statement_timeout = '100ms'")
        .await
        .expect("timeout");
    let e = b
        .simple_query("SELECT pg_sleep(2)")
        .await
        .expect_err("timed out");
    assert_eq!(code(&e), "57014", "{e:?}");
    assert_eq!(one(&a, "SELECT pg_sleep(0.3)::text").await, "");

    // RESET and pool resets bring the client back to its startup settings.
    b.batch_execute("RESET statement_timeout")
        .await
        .expect("reset");
    assert_eq!(one(&b, "SELECT pg_sleep(0.2)::text").await, "");
    a.batch_execute("RESET ALL").await.expect("reset all");
    assert_eq!(one(&a, "SHOW TimeZone").await, default_tz);
    assert_eq!(one(&b, "SHOW TimeZone").await, "Asia/Tokyo");
    // asyncpg's reset on release, in one query string.
    b.batch_execute("SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;")
        .await
        .expect("asyncpg's reset");
    assert_eq!(one(&b, "SHOW TimeZone").await, default_tz);
    // The tenant context is untouched by any of it.
    let n: i64 = b
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .expect("still the tenant")
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn startup_settings_application_name_and_discard_all() {
    let env = env("sess_startup", 1).await;
    let key = tenant_key(&env, "st-a", Mode::Shared).await;
    let c = connect_with(
        &env,
        &key,
        "billing-web",
        "-c TimeZone=Asia/Kolkata -c role=postgres",
    )
    .await;
    assert_eq!(one(&c, "SHOW TimeZone").await, "Asia/Kolkata");
    assert_ne!(
        one(&c, "SELECT current_user").await,
        "postgres",
        "never who the session is"
    );
    assert_eq!(one(&c, "SHOW application_name").await, "billing-web");
    c.batch_execute("SET application_name = 'worker'")
        .await
        .expect("set name");
    assert_eq!(one(&c, "SHOW application_name").await, "worker");
    // In the extended protocol too (Describe, then Execute), in and out of a transaction:
    // the client's own name, never the connection's context token.
    for _ in 0..2 {
        let row = c
            .query_one("SHOW application_name", &[])
            .await
            .expect("show (extended)");
        assert_eq!(row.get::<_, String>(0), "worker");
        assert_eq!(row.columns()[0].name(), "application_name");
    }
    c.batch_execute("BEGIN; SELECT 1").await.expect("begin");
    let name: String = c
        .query_one("SHOW application_name", &[])
        .await
        .expect("show in a transaction")
        .get(0);
    assert_eq!(name, "worker");
    c.batch_execute("COMMIT").await.expect("commit");
    c.batch_execute("SET TimeZone = 'UTC'").await.expect("tz");
    // DISCARD ALL: back to the startup packet's settings and name; prepared statements gone.
    let st = c.prepare("SELECT 1").await.expect("prepare");
    c.batch_execute("DISCARD ALL").await.expect("discard");
    assert_eq!(one(&c, "SHOW TimeZone").await, "Asia/Kolkata");
    assert_eq!(one(&c, "SHOW application_name").await, "billing-web");
    assert!(c.query(&st, &[]).await.is_err(), "statement forgotten");
    c.batch_execute("BEGIN").await.expect("begin");
    let e = c
        .simple_query("DISCARD ALL")
        .await
        .expect_err("in a transaction");
    assert_eq!(code(&e), "25001", "{e:?}");
    c.batch_execute("ROLLBACK").await.expect("rollback");
    // Settings the gateway sets itself take only the value it uses.
    for ok in [
        "SET search_path = \"$user\", public",
        "SET standard_conforming_strings = on",
        "SET client_encoding = 'UTF8'",
    ] {
        c.batch_execute(ok).await.expect(ok);
    }
    for (refused, want) in [
        ("SET search_path = other", "42501"),
        ("SET standard_conforming_strings = off", "42501"),
        ("SET ROLE postgres", "42501"),
        ("SELECT 1; RESET ALL", "0A000"),
    ] {
        let e = c.simple_query(refused).await.expect_err(refused);
        assert_eq!(code(&e), want, "{refused}: {e:?}");
    }
}

#[tokio::test]
async fn a_service_login_keeps_its_settings_across_tenants() {
    let env = env("sess_service", 1).await;
    let t1 = tenant(&env, "sv-a", Mode::Shared).await;
    let t2 = tenant(&env, "sv-b", Mode::Database).await;
    credential(&env, "svc").await;
    let svc = service_client(&env, "svc", PASSWORD).await.expect("login");
    svc.batch_execute("SET DateStyle = 'German'")
        .await
        .expect("datestyle");
    for t in [t1, t2, t1] {
        svc.batch_execute(&format!("BEGIN; SET LOCAL bulkhead.tenant = '{t}'"))
            .await
            .expect("choose");
        assert_eq!(
            one(&svc, "SELECT DATE '2020-03-04'::text").await,
            "04.03.2020"
        );
        svc.batch_execute("COMMIT").await.expect("commit");
    }
    // A value the server refuses, set before any tenant: dropped with a warning when first
    // applied; the transaction runs.
    svc.batch_execute("SET TimeZone = 'Not/AZone'")
        .await
        .expect("kept");
    svc.batch_execute(&format!("BEGIN; SET LOCAL bulkhead.tenant = '{t1}'"))
        .await
        .expect("choose");
    assert_ne!(one(&svc, "SHOW TimeZone").await, "Not/AZone");
    svc.batch_execute("COMMIT").await.expect("commit");
}

/// SQL-level PREPARE / EXECUTE / DEALLOCATE on a pool of one: each client's statements are
/// its own (two tenants with the same name and text each read their own rows), prepared on
/// the connection when first executed there, judged by the guard like any statement, and
/// PostgreSQL's errors for unknown and duplicate names.
#[tokio::test]
async fn sql_prepare_and_execute_are_the_clients_own() {
    let env = env("sess_prepare", 1).await;
    let key_a = tenant_key(&env, "prep-a", Mode::Shared).await;
    let key_b = tenant_key(&env, "prep-b", Mode::Schema).await;
    let a = connect(&env, &key_a).await.expect("a");
    let b = connect(&env, &key_b).await.expect("b");
    for (c, name) in [(&a, "alice"), (&b, "bob")] {
        c.batch_execute(&format!(
            "INSERT INTO customers (id, name) VALUES (1, '{name}')"
        ))
        .await
        .expect("row");
    }
    let prepare = "PREPARE q (bigint) AS SELECT name FROM customers WHERE id = $1";
    a.batch_execute(prepare).await.expect("a prepares");
    b.batch_execute(prepare)
        .await
        .expect("b prepares the same name and text");
    for _ in 0..3 {
        assert_eq!(one(&a, "EXECUTE q(1)").await, "alice");
        assert_eq!(one(&b, "EXECUTE q (1)").await, "bob");
    }
    // In a transaction, among other statements, and twice in one string.
    assert_eq!(one(&a, "BEGIN; EXECUTE q(1)").await, "alice");
    a.batch_execute("EXECUTE q(1); COMMIT")
        .await
        .expect("in a transaction");
    let rows = a
        .simple_query("EXECUTE q(1); SELECT 2; EXECUTE q(1)")
        .await
        .expect("twice")
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(rows, ["alice", "2", "alice"]);
    // PostgreSQL's errors.
    let e = a.batch_execute(prepare).await.expect_err("duplicate");
    assert_eq!(code(&e), "42P05", "{e:?}");
    let e = a
        .batch_execute("EXECUTE nope(1)")
        .await
        .expect_err("unknown");
    assert_eq!(code(&e), "26000", "{e:?}");
    a.batch_execute("DEALLOCATE q").await.expect("deallocate");
    let e = a
        .batch_execute("EXECUTE q(1)")
        .await
        .expect_err("deallocated");
    assert_eq!(code(&e), "26000", "{e:?}");
    assert_eq!(one(&b, "EXECUTE q(1)").await, "bob", "b's is still there");
    let e = a.batch_execute("DEALLOCATE q").await.expect_err("twice");
    assert_eq!(code(&e), "26000", "{e:?}");
    b.batch_execute("DEALLOCATE ALL")
        .await
        .expect("deallocate all");
    let e = b
        .batch_execute("EXECUTE q(1)")
        .await
        .expect_err("after ALL");
    assert_eq!(code(&e), "26000", "{e:?}");
    // The guard judges the prepared statement and the EXECUTE's arguments.
    let e = a
        .batch_execute("PREPARE r AS SELECT set_config('role', 'postgres', false)")
        .await
        .expect_err("a refused function inside");
    assert_eq!(code(&e), "42501", "{e:?}");
    a.batch_execute("PREPARE s (text) AS SELECT $1")
        .await
        .expect("s");
    let e = a
        .batch_execute("EXECUTE s(set_config('role', 'postgres', false))")
        .await
        .expect_err("a refused function in the arguments");
    assert_eq!(code(&e), "42501", "{e:?}");
    assert_eq!(one(&a, "EXECUTE s('plain')").await, "plain");
    // A statement whose text fails on the server fails at EXECUTE, and the session goes on.
    a.batch_execute("PREPARE bad AS SELECT * FROM no_such_table")
        .await
        .expect("kept");
    let e = a
        .batch_execute("EXECUTE bad")
        .await
        .expect_err("server error");
    assert_eq!(code(&e), "42P01", "{e:?}");
    assert_eq!(one(&a, "EXECUTE s('after')").await, "after");
    // The extended protocol: PREPARE and DEALLOCATE are answered, EXECUTE is pointed at the
    // backend statement like in a simple query — with parameters of its own, unnamed and as
    // a named statement reused, on the pool of one that b's transactions share, whose
    // statements of the same name read b's rows.
    a.execute("PREPARE t AS SELECT 41 + 1", &[])
        .await
        .expect("extended PREPARE");
    assert_eq!(one(&a, "EXECUTE t").await, "42");
    let row = a
        .query_one("EXECUTE t", &[])
        .await
        .expect("extended EXECUTE");
    assert_eq!(row.get::<_, i32>(0), 42);
    for c in [&a, &b] {
        c.batch_execute("PREPARE r (bigint) AS SELECT name FROM customers WHERE id = $1")
            .await
            .expect("prepare r");
    }
    // A named statement that executes one, reused; PostgreSQL takes no parameters in
    // EXECUTE's arguments through the extended protocol, and neither does the gateway.
    let by_id = a.prepare("EXECUTE r(1)").await.expect("a named EXECUTE");
    for _ in 0..3 {
        let name: String = a.query_one(&by_id, &[]).await.expect("a").get(0);
        assert_eq!(name, "alice");
        let name: String = b.query_one("EXECUTE r(1)", &[]).await.expect("b").get(0);
        assert_eq!(name, "bob");
    }
    let with_parameter = a
        .prepare_typed("EXECUTE r($1)", &[tokio_postgres::types::Type::INT8])
        .await
        .expect("prepared");
    let e = a
        .query_one(&with_parameter, &[&1i64])
        .await
        .expect_err("as PostgreSQL: no parameters in EXECUTE");
    assert_eq!(code(&e), "42P02", "{e:?}");
    let e = a
        .query("EXECUTE nope", &[])
        .await
        .expect_err("unknown, extended");
    assert_eq!(code(&e), "26000", "{e:?}");
    a.execute("DEALLOCATE t", &[])
        .await
        .expect("extended DEALLOCATE");
    // DISCARD ALL forgets them too.
    a.batch_execute("DISCARD ALL").await.expect("discard");
    let e = a
        .batch_execute("EXECUTE s('x')")
        .await
        .expect_err("discarded");
    assert_eq!(code(&e), "26000", "{e:?}");
}

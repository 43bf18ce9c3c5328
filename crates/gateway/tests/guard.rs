//! The guard over the wire: every rule refuses in both protocols and in obfuscated
//! spellings, the session goes on after each refusal, and each kind of session state that
//! would outlive a transaction on a pooled connection is handled as decided (refused, or
//! scoped to the tenant and the transaction).

use bulkhead_model::Mode;
use tokio_postgres::SimpleQueryMessage;

mod support;
use support::*;

/// Statements a tenant session must never run, with the SQLSTATE of the refusal.
const REFUSED: &[(&str, &str)] = &[
    ("SET ROLE postgres", "42501"),
    ("set role postgres", "42501"),
    ("SET \"ROLE\" TO postgres", "42501"),
    ("SET U&\"rol\\0065\" TO postgres", "42501"),
    ("RESET ROLE", "42501"),
    ("/* x */ SET SESSION AUTHORIZATION postgres", "42501"),
    ("SET LOCAL search_path = t_other, public", "42501"),
    ("SET search_path TO other", "42501"),
    (
        "SET LOCAL \"Bulkhead\".\"Tenant_Id\" = '00000000-0000-0000-0000-000000000000'",
        "42501",
    ),
    ("SELECT set_config('role', 'postgres', true)", "42501"),
    (
        "SELECT ARRAY[pg_catalog.set_config('search_path', 'x', true)]",
        "42501",
    ),
    (
        "SELECT * FROM (VALUES (set_config('bulkhead.tenant_id', 'x', true))) v",
        "42501",
    ),
    (
        "SELECT 1; SELECT SET_CONFIG('role', 'postgres', true)",
        "42501",
    ),
    ("SET LOCAL standard_conforming_strings = off", "42501"),
    ("CREATE TABLE mine (id int)", "42501"),
    ("CREATE TEMP TABLE customers (id int)", "42501"),
    ("SELECT 1 INTO copied", "42501"),
    ("COPY customers TO '/tmp/x'", "42501"),
    ("COPY customers FROM PROGRAM 'id'", "42501"),
    ("SELECT pg_read_file('/etc/passwd')", "42501"),
    ("SELECT lo_import('/etc/passwd')", "42501"),
    (
        "SELECT * FROM dblink('dbname=postgres', 'select 1') AS t(a int)",
        "42501",
    ),
    (
        "SELECT query_to_xml('select set_config(''role'',''postgres'',true)', true, true, '')",
        "42501",
    ),
    ("DO $$ BEGIN PERFORM 1; END $$", "42501"),
    ("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE", "42501"),
    ("TRUNCATE customers", "42501"),
    ("SELECT pg_advisory_lock(1)", "42501"),
    ("SELECT pg_terminate_backend(1)", "42501"),
    ("NOTIFY someone_elses_channel", "42501"),
    ("SELECT pg_notify('someone_elses_channel', 'x')", "42501"),
    ("LISTEN events", "0A000"),
    ("SET work_mem = '2GB'", "42501"),
    ("SET max_parallel_workers_per_gather = 0", "0A000"),
    ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", "0A000"),
    ("SELEC 1", "42601"),
];

async fn still_works(c: &tokio_postgres::Client) {
    let n: i64 = c
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .expect("the session goes on")
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn every_rule_refuses_in_both_protocols_and_the_session_goes_on() {
    let env = env("guard_rules", 2).await;
    for (slug, mode) in [("g-shared", Mode::Shared), ("g-schema", Mode::Schema)] {
        let key = tenant_key(&env, slug, mode).await;
        let c = connect(&env, &key).await.expect("login");
        c.batch_execute("INSERT INTO customers (id, name) VALUES (1, 'me')")
            .await
            .expect("insert");
        for (sql, want) in REFUSED {
            let e = c.simple_query(sql).await.expect_err(sql);
            assert_eq!(code(&e), *want, "{slug}, simple: {sql}: {e:?}");
            still_works(&c).await;
            // The extended protocol: the Parse is refused, or (for what depends on the login
            // or tenant) its execution.
            let e = match c.prepare(sql).await {
                Err(e) => e,
                Ok(st) => c.execute(&st, &[]).await.expect_err(sql),
            };
            assert_eq!(code(&e), *want, "{slug}, extended: {sql}: {e:?}");
            still_works(&c).await;
            // Inside a transaction, the refusal fails the transaction like an error would.
            c.batch_execute("BEGIN").await.expect("begin");
            assert!(c.simple_query(sql).await.is_err(), "{sql} in a transaction");
            let e = c.simple_query("SELECT 1").await.expect_err("aborted");
            assert_eq!(code(&e), "25P02", "{sql}: {e:?}");
            c.batch_execute("ROLLBACK").await.expect("rollback");
        }
        // Parameters cannot smuggle a setting in either.
        let e = c
            .query("SELECT set_config($1, $2, true)", &[&"role", &"postgres"])
            .await
            .expect_err("set_config with parameters");
        assert_eq!(code(&e), "42501");
    }
}

#[tokio::test]
async fn empty_and_blank_queries_are_answered_and_the_session_goes_on() {
    let env = env("guard_empty", 1).await;
    let key = tenant_key(&env, "empty-t", Mode::Shared).await;
    let c = connect(&env, &key).await.expect("login");
    c.batch_execute("INSERT INTO customers (id, name) VALUES (1, 'me')")
        .await
        .expect("insert");
    for sql in ["", "   ", "\n\t", "-- only a comment", "/* only */"] {
        c.simple_query(sql).await.expect(sql);
        still_works(&c).await;
    }
}

#[tokio::test]
async fn ddl_passes_the_guard_only_with_the_migration_capability() {
    let env = env("guard_ddl", 2).await;
    let t = tenant(&env, "ddl-t", Mode::Schema).await;
    credential_with(&env, "plain_svc", false).await;
    credential_with(&env, "migrator_svc", true).await;
    let plain = service_client(&env, "plain_svc", PASSWORD)
        .await
        .expect("plain");
    let migrator = service_client(&env, "migrator_svc", PASSWORD)
        .await
        .expect("migrator");
    for c in [&plain, &migrator] {
        c.batch_execute(&format!("SET bulkhead.tenant = '{t}'"))
            .await
            .expect("tenant");
    }
    let e = plain
        .batch_execute("CREATE TABLE extra (id int)")
        .await
        .expect_err("no capability");
    assert_eq!(code(&e), "42501");
    assert!(message(&e).contains("DDL is refused"), "{e:?}");
    // With the capability the guard lets it through; the tenant role's privileges still
    // decide, and by default it may create nothing.
    let e = migrator
        .batch_execute("CREATE TABLE extra (id int)")
        .await
        .expect_err("no CREATE privilege");
    assert_eq!(code(&e), "42501");
    assert!(message(&e).contains("permission denied"), "{e:?}");
}

#[tokio::test]
async fn notify_works_only_on_the_tenants_own_channels() {
    let env = env("guard_notify", 2).await;
    let t = tenant(&env, "notify-t", Mode::Shared).await;
    let other = tenant(&env, "notify-o", Mode::Shared).await;
    let key = {
        let secret: String = (0..40)
            .map(|i| (b'a' + (i * 3 % 26) as u8) as char)
            .collect();
        env.dir.issue_key(&t, &secret).await.expect("key").key
    };
    let c = connect(&env, &key).await.expect("login");
    let own = format!("t_{}", t.simple());
    c.batch_execute(&format!("NOTIFY {own}_orders, 'x'"))
        .await
        .expect("own channel");
    c.batch_execute(&format!("SELECT pg_notify('{own}', 'x')"))
        .await
        .expect("own channel by function");
    for sql in [
        format!("NOTIFY t_{}_orders", other.simple()),
        format!("SELECT pg_notify('t_{}', 'x')", other.simple()),
        format!("NOTIFY {own}x"),
    ] {
        let e = c.batch_execute(&sql).await.expect_err(&sql);
        assert_eq!(code(&e), "42501", "{sql}");
    }
}

/// The value of `SHOW name` through the simple protocol.
async fn show(c: &tokio_postgres::Client, name: &str) -> String {
    c.simple_query(&format!("SHOW {name}"))
        .await
        .expect("show")
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn session_state_never_outlives_the_transaction_on_a_shared_backend() {
    // One backend connection, two tenants taking turns on it.
    let env = env("guard_state", 1).await;
    let a_key = tenant_key(&env, "state-a", Mode::Shared).await;
    let b_key = tenant_key(&env, "state-b", Mode::Schema).await;
    let a = connect(&env, &a_key).await.expect("a");
    let b = connect(&env, &b_key).await.expect("b");
    // Settings: SET LOCAL is the transaction's own; session SET is refused.
    let default_work_mem = show(&b, "work_mem").await;
    a.batch_execute("BEGIN; SET LOCAL work_mem = '7MB'")
        .await
        .expect("set local");
    assert_eq!(show(&a, "work_mem").await, "7MB");
    a.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(
        show(&b, "work_mem").await,
        default_work_mem,
        "b never sees a's setting"
    );
    // A session-level SET is the client's own: kept for it, never seen by b.
    a.batch_execute("SET work_mem = '7MB'")
        .await
        .expect("session set");
    assert_eq!(show(&a, "work_mem").await, "7MB");
    assert_eq!(
        show(&b, "work_mem").await,
        default_work_mem,
        "b never sees it"
    );
    assert_eq!(
        code(
            &a.batch_execute("SET max_parallel_workers_per_gather = 0")
                .await
                .expect_err("not a kept setting")
        ),
        "0A000"
    );
    // Cursors: a plain cursor ends with its transaction; WITH HOLD is refused.
    a.batch_execute("BEGIN; DECLARE c CURSOR FOR SELECT 1")
        .await
        .expect("declare");
    a.batch_execute("COMMIT").await.expect("commit");
    let e = b
        .batch_execute("BEGIN; FETCH c")
        .await
        .expect_err("no cursor left");
    assert_eq!(code(&e), "34000", "{e:?}");
    b.batch_execute("ROLLBACK").await.expect("rollback");
    // Temporary objects (which would shadow the next tenant's tables) are refused; LISTEN
    // too. (SQL PREPARE is the client's own: tests/session_state.rs.)
    for sql in ["CREATE TEMP TABLE customers (id int)", "LISTEN anything"] {
        assert!(a.batch_execute(sql).await.is_err(), "{sql}");
    }
    // Advisory locks: pg_advisory_* refused; the tenant-scoped transaction locks do not
    // collide across tenants but do within one.
    a.batch_execute("BEGIN").await.expect("begin");
    assert!(try_lock(&a).await, "the scoped lock helper works");
    a.batch_execute("COMMIT").await.expect("commit");
}

async fn try_lock(c: &tokio_postgres::Client) -> bool {
    c.query_one("SELECT bulkhead.try_advisory_xact_lock(42)", &[])
        .await
        .expect("try lock")
        .get(0)
}

#[tokio::test]
async fn tenant_scoped_advisory_locks_do_not_collide_across_tenants() {
    let env = env("guard_locks", 4).await;
    let a_key = tenant_key(&env, "lock-a", Mode::Shared).await;
    let b_key = tenant_key(&env, "lock-b", Mode::Shared).await;
    let a1 = connect(&env, &a_key).await.expect("a1");
    let a2 = connect(&env, &a_key).await.expect("a2");
    let b = connect(&env, &b_key).await.expect("b");
    a1.batch_execute("BEGIN").await.expect("begin");
    assert!(try_lock(&a1).await, "a takes key 42");
    b.batch_execute("BEGIN").await.expect("begin");
    assert!(try_lock(&b).await, "b's key 42 is another lock");
    a2.batch_execute("BEGIN").await.expect("begin");
    assert!(!try_lock(&a2).await, "a's own key 42 is taken");
    for c in [&a1, &a2, &b] {
        c.batch_execute("COMMIT").await.expect("commit");
    }
    // Released with the transactions.
    a2.batch_execute("BEGIN").await.expect("begin");
    assert!(try_lock(&a2).await);
    a2.batch_execute("COMMIT").await.expect("commit");
}

//! A backend connection keeps the tenant context it last served (see
//! `backend/held.rs`): these tests make one connection serve two tenants in turn and undo the
//! switch in every way a transaction can be undone — a client ROLLBACK, an error, a failed
//! COMMIT, a ROLLBACK at the end of a query string, the extended protocol — and check that
//! the next transaction of each tenant still sees only its own rows.

use bulkhead_model::Mode;
use tokio_postgres::SimpleQueryMessage;

mod support;
use support::*;

/// The names a client sees in `customers`, by the simple protocol.
async fn names(c: &tokio_postgres::Client) -> Vec<String> {
    let msgs = c
        .simple_query("SELECT name FROM customers ORDER BY id")
        .await
        .expect("select");
    msgs.into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect()
}

/// The same through a prepared statement (extended protocol).
async fn names_prepared(c: &tokio_postgres::Client) -> Vec<String> {
    c.query("SELECT name FROM customers ORDER BY id", &[])
        .await
        .expect("select")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn two_tenants(
    label: &str,
    a_mode: Mode,
    b_mode: Mode,
) -> (tokio_postgres::Client, tokio_postgres::Client) {
    let env = env(label, 1).await;
    let a_key = tenant_key(&env, "a", a_mode).await;
    let b_key = tenant_key(&env, "b", b_mode).await;
    let a = connect(&env, &a_key).await.expect("a");
    let b = connect(&env, &b_key).await.expect("b");
    a.simple_query("INSERT INTO customers (id, name) VALUES (1, 'a')")
        .await
        .expect("a writes");
    b.simple_query("INSERT INTO customers (id, name) VALUES (1, 'b')")
        .await
        .expect("b writes");
    (a, b)
}

#[tokio::test]
async fn a_switch_undone_by_rollback_is_redone_for_the_next_transaction() {
    for (label, a_mode, b_mode) in [
        ("held_rb_ss", Mode::Shared, Mode::Shared),
        ("held_rb_sc", Mode::Shared, Mode::Schema),
    ] {
        let (a, b) = two_tenants(label, a_mode, b_mode).await;
        // The one connection holds a's context.
        assert_eq!(names(&a).await, ["a"]);
        // b switches it inside a transaction that is then rolled back: the server reverts
        // to a's context, and the gateway must not believe it holds b's.
        b.batch_execute("BEGIN").await.expect("begin");
        assert_eq!(names(&b).await, ["b"]);
        b.batch_execute("ROLLBACK").await.expect("rollback");
        assert_eq!(names(&b).await, ["b"], "{label}: b after its rollback");
        assert_eq!(names_prepared(&b).await, ["b"], "{label}: b, extended");
        assert_eq!(names(&a).await, ["a"], "{label}: a again");
    }
}

#[tokio::test]
async fn a_switch_undone_by_an_error_or_a_trailing_rollback_is_redone() {
    let (a, b) = two_tenants("held_err", Mode::Shared, Mode::Schema).await;
    assert_eq!(names(&a).await, ["a"]);
    // An implicit transaction that fails after the switch.
    let e = b
        .simple_query("SELECT 1/0")
        .await
        .expect_err("division by zero");
    assert_eq!(code(&e), "22012");
    assert_eq!(names(&b).await, ["b"], "b after its failed statement");
    assert_eq!(names(&a).await, ["a"]);
    // A query string that rolls itself back at the end.
    b.simple_query("SELECT 1; ROLLBACK")
        .await
        .expect("select then rollback");
    assert_eq!(names(&b).await, ["b"], "b after a trailing ROLLBACK");
    assert_eq!(names(&a).await, ["a"]);
    // An explicit transaction whose COMMIT fails (a deferred check) is rolled back.
    b.batch_execute("BEGIN").await.expect("begin");
    let _ = b.simple_query("SELECT 1/0").await;
    let _ = b.batch_execute("COMMIT").await;
    assert_eq!(
        names_prepared(&b).await,
        ["b"],
        "b after a failed transaction"
    );
    assert_eq!(names(&a).await, ["a"]);
}

#[tokio::test]
async fn a_connection_keeps_serving_the_same_tenant_without_leaks() {
    let (a, b) = two_tenants("held_same", Mode::Schema, Mode::Database).await;
    for _ in 0..5 {
        assert_eq!(names(&a).await, ["a"]);
        assert_eq!(names(&a).await, ["a"]);
        assert_eq!(names_prepared(&a).await, ["a"]);
    }
    for _ in 0..5 {
        assert_eq!(names_prepared(&b).await, ["b"]);
        assert_eq!(names(&a).await, ["a"]);
    }
}

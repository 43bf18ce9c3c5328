//! The driver matrix: real drivers and ORMs of other languages, unchanged, through the
//! gateway, each against a tenant of every mode on a pool of one backend connection (so
//! every client's transactions share it): types round trip, each tenant sees only its rows,
//! and clients with their own TimeZone interleaved each see their own. The scripts are in
//! `tests/drivers`; `scripts/setup.sh` installs the drivers (PyPI, npm, Debian's pgJDBC,
//! ruby-pg and ruby-activerecord).

use bulkhead_model::Mode;

mod support;
use support::*;

/// A tenant key in each mode.
async fn keys(env: &Env, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for (suffix, mode) in [
        ("shared", Mode::Shared),
        ("schema", Mode::Schema),
        ("database", Mode::Database),
    ] {
        keys.push(tenant_key(env, &format!("{prefix}-{suffix}"), mode).await);
    }
    keys
}

#[tokio::test]
async fn psycopg_3() {
    let env = env("drv_psycopg", 1).await;
    let keys = keys(&env, "pg3").await;
    run_matrix(&env, &["python3", "matrix_psycopg.py"], &keys).await;
}

#[tokio::test]
async fn asyncpg_with_its_pool() {
    let env = env("drv_asyncpg", 1).await;
    let keys = keys(&env, "apg").await;
    run_matrix(&env, &["python3", "matrix_asyncpg.py"], &keys).await;
}

#[tokio::test]
async fn sqlalchemy_2_orm_on_psycopg2() {
    let env = env("drv_sqla", 1).await;
    let keys = keys(&env, "sqla").await;
    run_matrix(&env, &["python3", "matrix_sqlalchemy.py"], &keys).await;
}

#[tokio::test]
async fn node_postgres_and_knex() {
    let env = env("drv_node", 1).await;
    let keys = keys(&env, "node").await;
    run_matrix(&env, &["node", "matrix_node.js"], &keys).await;
}

#[tokio::test]
async fn pgjdbc() {
    let env = env("drv_jdbc", 1).await;
    let keys = keys(&env, "jdbc").await;
    let jar = "/usr/share/java/postgresql.jar";
    run_matrix(&env, &["java", "-cp", jar, "MatrixJdbc.java"], &keys).await;
}

#[tokio::test]
async fn ruby_pg_and_activerecord() {
    let env = env("drv_ruby", 1).await;
    let keys = keys(&env, "ruby").await;
    run_matrix(&env, &["ruby", "matrix_ruby.rb"], &keys).await;
}

#[tokio::test]
async fn django_orm() {
    let env = env("drv_django", 1).await;
    let keys = keys(&env, "dj").await;
    run_matrix(&env, &["python3", "matrix_django.py"], &keys).await;
}

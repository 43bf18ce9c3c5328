//! The driver matrix: real drivers and ORMs of other languages, unchanged, against a real
//! `bulkhead up` (embedded PostgreSQL, the gateway's pool at one backend connection per
//! cluster, so every client's transactions share it). Each gets a tenant of every mode, first
//! with the tenants' own API keys, then with one service login whose transactions choose
//! their tenant with `SET LOCAL bulkhead.tenant`: types round trip, each tenant sees only its
//! rows, a statement with no tenant chosen is refused, and clients with their own TimeZone
//! interleaved each see their own. The scripts are in `crates/gateway/tests/drivers`;
//! `scripts/setup.sh` installs the drivers (PyPI, npm, Debian's pgJDBC, ruby-pg and
//! ruby-activerecord). sqlx, a Rust driver, runs here in-process.

mod support;

use std::path::PathBuf;

use support::{ok, workspace, Up};

const SERVICE: &str = "shop";

/// A `bulkhead up` serving one service with a tenant in each mode, their keys, and a
/// service credential.
struct Matrix {
    up: Up,
    _ws: tempfile::TempDir,
    tenants: Vec<String>,
    keys: Vec<String>,
    user: String,
    password: String,
}

impl Matrix {
    fn start(prefix: &str) -> Self {
        let ws = workspace();
        let config = ws.path().join("bulkhead.toml");
        std::fs::write(&config, "[gateway]\npool_size = 1\n").expect("config");
        let up = Up::start(
            &ws.path().join(".bulkhead"),
            &["--config", config.to_str().expect("utf8")],
        );
        up.billing_service(SERVICE, &[]);
        let mut tenants = Vec::new();
        let mut keys = Vec::new();
        for mode in ["shared", "schema", "database"] {
            let slug = format!("{prefix}-{mode}");
            keys.push(up.tenant_with_key(&slug, SERVICE, mode));
            tenants.push(slug);
        }
        let made = ok(up.cli(&[
            "--json",
            "service",
            "credential",
            "create",
            SERVICE,
            "--user",
            &format!("{prefix}_svc"),
        ]));
        let made: serde_json::Value = serde_json::from_str(&made.stdout).expect("json");
        let field = |name: &str| made[name].as_str().expect(name).to_string();
        Matrix {
            user: field("username"),
            password: field("password"),
            up,
            _ws: ws,
            tenants,
            keys,
        }
    }

    fn gateway(&self) -> (&str, u16) {
        let (host, port) = self.up.gateway.rsplit_once(':').expect("host:port");
        (host, port.parse().expect("port"))
    }

    /// Runs `command` (a program and its script, in the scripts' folder) with the gateway's
    /// host, port, the service and the tenant keys as arguments, the service login and the
    /// tenants in `MATRIX_*`; asserts that it printed "ok" and exited 0.
    async fn run(&self, command: &[&str]) {
        let (host, port) = self.gateway();
        let (program, script) = (command[0], command[command.len() - 1]);
        let out = tokio::process::Command::new(program)
            .args(&command[1..])
            .arg(host)
            .arg(port.to_string())
            .arg(SERVICE)
            .args(&self.keys)
            .env("MATRIX_SERVICE_USER", &self.user)
            .env("MATRIX_SERVICE_PASSWORD", &self.password)
            .env("MATRIX_TENANTS", self.tenants.join(" "))
            .current_dir(scripts())
            .output()
            .await
            .unwrap_or_else(|e| {
                panic!("{program} runs (scripts/setup.sh installs the drivers): {e}")
            });
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("{script}:\n{stdout}");
        assert!(
            out.status.success() && stdout.lines().any(|l| l == "ok"),
            "{script} failed:\n{stdout}\n{stderr}"
        );
    }
}

fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gateway/tests/drivers")
}

#[tokio::test(flavor = "multi_thread")]
async fn psycopg_3() {
    Matrix::start("pg3")
        .run(&["python3", "matrix_psycopg.py"])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn asyncpg_with_its_pool() {
    Matrix::start("apg")
        .run(&["python3", "matrix_asyncpg.py"])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlalchemy_2_orm_on_psycopg2() {
    Matrix::start("sqla")
        .run(&["python3", "matrix_sqlalchemy.py"])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_postgres_and_knex() {
    Matrix::start("node").run(&["node", "matrix_node.js"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pgjdbc() {
    let jar = "/usr/share/java/postgresql.jar";
    Matrix::start("jdbc")
        .run(&["java", "-cp", jar, "MatrixJdbc.java"])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ruby_pg_and_activerecord() {
    Matrix::start("ruby").run(&["ruby", "matrix_ruby.rb"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn django_orm() {
    Matrix::start("dj")
        .run(&["python3", "matrix_django.py"])
        .await;
}

mod sqlx_driver {
    //! sqlx (its compile-time-free `query` API, a `PgPool` with its statement cache).

    use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
    use sqlx::Row;

    use super::Matrix;

    async fn pool(m: &Matrix, user: &str, password: &str, zone: Option<&str>) -> PgPool {
        let (host, port) = m.gateway();
        let mut options = PgConnectOptions::new()
            .host(host)
            .port(port)
            .database(super::SERVICE)
            .username(user)
            .password(password);
        if let Some(zone) = zone {
            options = options.options([("TimeZone", zone)]);
        }
        PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .expect("sqlx pool through the gateway")
    }

    /// Types round trip: int, bigint, numeric, text, bool, timestamptz, uuid, jsonb, bytea,
    /// an array and NULL.
    async fn round_trip<'e, E: sqlx::PgExecutor<'e>>(on: E) {
        let at = chrono::DateTime::parse_from_rfc3339("2020-01-02T03:04:05Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let id = uuid::Uuid::from_u128(5);
        let row = sqlx::query(
            "SELECT $1::int, $2::bigint, $3::numeric::text, $4::text, $5::bool, $6::timestamptz, \
             $7::uuid, $8::jsonb, $9::bytea, $10::int[], $11::text",
        )
        .bind(7i32)
        .bind(1i64 << 40)
        .bind("12.345")
        .bind("tëxt")
        .bind(true)
        .bind(at)
        .bind(id)
        .bind(serde_json::json!({"a": [1, 2]}))
        .bind(vec![0u8, 255])
        .bind(vec![1i32, 2, 3])
        .bind(None::<String>)
        .fetch_one(on)
        .await
        .expect("round trip");
        assert_eq!(row.get::<i32, _>(0), 7);
        assert_eq!(row.get::<i64, _>(1), 1 << 40);
        assert_eq!(row.get::<String, _>(2), "12.345");
        assert_eq!(row.get::<String, _>(3), "tëxt");
        assert!(row.get::<bool, _>(4));
        assert_eq!(row.get::<chrono::DateTime<chrono::Utc>, _>(5), at);
        assert_eq!(row.get::<uuid::Uuid, _>(6), id);
        assert_eq!(
            row.get::<serde_json::Value, _>(7),
            serde_json::json!({"a": [1, 2]})
        );
        assert_eq!(row.get::<Vec<u8>, _>(8), vec![0u8, 255]);
        assert_eq!(row.get::<Vec<i32>, _>(9), vec![1, 2, 3]);
        assert_eq!(row.get::<Option<String>, _>(10), None);
    }

    async fn names<'e, E: sqlx::PgExecutor<'e>>(on: E, like: &str) -> Vec<String> {
        sqlx::query_scalar("SELECT name FROM customers WHERE name LIKE $1 ORDER BY id")
            .bind(like)
            .fetch_all(on)
            .await
            .expect("names")
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn sqlx_query_api() {
        let m = Matrix::start("sqlx");
        for (n, key) in m.keys.iter().enumerate() {
            let pool = pool(&m, "app", key, None).await;
            round_trip(&pool).await;
            sqlx::query("INSERT INTO customers (id, name) VALUES ($1, $2)")
                .bind(n as i64)
                .bind(format!("mine-{n}"))
                .execute(&pool)
                .await
                .expect("insert");
            for _ in 0..5 {
                // The statement cache: prepared once per connection, reused.
                assert_eq!(names(&pool, "mine-%").await, [format!("mine-{n}")]);
            }
            let mut tx = pool.begin().await.expect("begin");
            sqlx::query("INSERT INTO customers (id, name) VALUES (500, 'rolled back')")
                .execute(&mut *tx)
                .await
                .expect("insert");
            tx.rollback().await.expect("rollback");
            assert_eq!(names(&pool, "rolled%").await, Vec::<String>::new());
            sqlx::query("DELETE FROM customers")
                .execute(&pool)
                .await
                .expect("delete");
            pool.close().await;
        }

        // A service login: each transaction names its tenant first (SET takes no
        // parameters, so the slug is a literal).
        let svc = pool(&m, &m.user, &m.password, None).await;
        for tenant in &m.tenants {
            let mut tx = svc.begin().await.expect("begin");
            sqlx::query(&format!("SET LOCAL bulkhead.tenant = '{tenant}'"))
                .execute(&mut *tx)
                .await
                .expect("choose the tenant");
            sqlx::query("INSERT INTO customers (id, name) VALUES ($1, $2)")
                .bind(900i64)
                .bind(format!("svc-{tenant}"))
                .execute(&mut *tx)
                .await
                .expect("insert");
            round_trip(&mut *tx).await;
            tx.commit().await.expect("commit");
        }
        for _ in 0..2 {
            for tenant in &m.tenants {
                let mut tx = svc.begin().await.expect("begin");
                sqlx::raw_sql(&format!("SET LOCAL bulkhead.tenant = '{tenant}'"))
                    .execute(&mut *tx)
                    .await
                    .expect("choose the tenant (simple protocol)");
                assert_eq!(names(&mut *tx, "svc-%").await, [format!("svc-{tenant}")]);
                tx.commit().await.expect("commit");
            }
        }
        let refused = sqlx::query("SELECT name FROM customers")
            .fetch_all(&svc)
            .await
            .expect_err("no tenant chosen");
        let db = refused.as_database_error().expect("a server error");
        assert_eq!(db.code().as_deref(), Some("42501"), "{db}");
        assert!(db.message().contains("no tenant"), "{db}");
        svc.close().await;

        // Two pools with their own TimeZone (startup options) on a gateway pool of one.
        let a = pool(&m, "app", &m.keys[0], Some("America/New_York")).await;
        let b = pool(&m, "app", &m.keys[2], Some("Asia/Tokyo")).await;
        for _ in 0..3 {
            let za: String = sqlx::query_scalar("SELECT current_setting('TimeZone')")
                .fetch_one(&a)
                .await
                .expect("a's zone");
            let zb: String = sqlx::query_scalar("SELECT current_setting('TimeZone')")
                .fetch_one(&b)
                .await
                .expect("b's zone");
            assert_eq!(
                (za.as_str(), zb.as_str()),
                ("America/New_York", "Asia/Tokyo")
            );
        }
    }
}

//! The gateway with real PostgreSQL and a real driver (tokio-postgres): routing in each
//! mode, context that never leaks between clients sharing a backend, prepared statements,
//! refusals, bad credentials, dropped clients and malformed input.

use std::path::Path;
use std::time::Duration;

use bulkhead_model::Mode;
use bulkhead_pgkit::shared_cluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::NoTls;

mod support;
use support::*;

#[tokio::test]
async fn one_connection_string_reaches_each_mode_and_sees_only_its_rows() {
    let env = env("modes", 4).await;
    let mut clients = Vec::new();
    for (slug, mode) in [
        ("alpha", Mode::Shared),
        ("beta", Mode::Shared),
        ("gamma", Mode::Schema),
        ("delta", Mode::Database),
    ] {
        let key = tenant_key(&env, slug, mode).await;
        clients.push((slug, connect(&env, &key).await.expect("connect")));
    }
    for (i, (slug, c)) in clients.iter().enumerate() {
        // Simple protocol.
        c.simple_query(&format!(
            "INSERT INTO customers (id, name) VALUES ({i}, '{slug}')"
        ))
        .await
        .expect("insert");
        // Extended protocol with a named prepared statement (tokio-postgres prepares).
        let stmt = c
            .prepare("INSERT INTO customers (id, name) VALUES ($1, $2)")
            .await
            .expect("prepare");
        c.execute(&stmt, &[&(100 + i as i64), &format!("{slug}-2")])
            .await
            .expect("execute");
    }
    for (slug, c) in &clients {
        let rows = c
            .query("SELECT name FROM customers ORDER BY id", &[])
            .await
            .expect("select");
        let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(
            names,
            [slug.to_string(), format!("{slug}-2")],
            "{slug} sees only its rows"
        );
        let countries: i64 = c
            .query_one("SELECT count(*) FROM countries", &[])
            .await
            .expect("ref")
            .get(0);
        assert_eq!(countries, 4, "{slug} reads reference data");
    }
}

#[tokio::test]
async fn context_never_leaks_between_tenants_sharing_one_backend() {
    let env = env("leak", 1).await;
    let a_key = tenant_key(&env, "a", Mode::Shared).await;
    let b_key = tenant_key(&env, "b", Mode::Schema).await;
    let a = connect(&env, &a_key).await.expect("a");
    let b = connect(&env, &b_key).await.expect("b");
    let who = "SELECT current_user::text, current_setting('bulkhead.tenant_id'), current_setting('search_path')";
    let mut seen = Vec::new();
    for round in 0..10 {
        for (name, c) in [("a", &a), ("b", &b)] {
            c.simple_query(&format!(
                "INSERT INTO customers (id, name) VALUES ({round}, '{name}')"
            ))
            .await
            .expect("insert");
            let row = c.query_one(who, &[]).await.expect("who");
            seen.push((
                name,
                row.get::<_, String>(0),
                row.get::<_, String>(1),
                row.get::<_, String>(2),
            ));
        }
    }
    let a_roles: std::collections::HashSet<_> = seen
        .iter()
        .filter(|s| s.0 == "a")
        .map(|s| (&s.1, &s.2, &s.3))
        .collect();
    let b_roles: std::collections::HashSet<_> = seen
        .iter()
        .filter(|s| s.0 == "b")
        .map(|s| (&s.1, &s.2, &s.3))
        .collect();
    assert_eq!(
        a_roles.len(),
        1,
        "a always runs in one context: {a_roles:?}"
    );
    assert_eq!(
        b_roles.len(),
        1,
        "b always runs in one context: {b_roles:?}"
    );
    assert!(a_roles.is_disjoint(&b_roles));
    for c in [&a, &b] {
        let n: i64 = c
            .query_one("SELECT count(*) FROM customers", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(n, 10);
    }
    // A transaction holds the one connection; the other tenant waits, then gets it.
    let tx_client = connect(&env, &a_key).await.expect("a2");
    tx_client.simple_query("BEGIN").await.expect("begin");
    tx_client
        .simple_query("INSERT INTO customers (id, name) VALUES (99, 'pending')")
        .await
        .expect("insert");
    let waiter = tokio::spawn(async move {
        let n: i64 = b
            .query_one("SELECT count(*) FROM customers", &[])
            .await
            .expect("b after wait")
            .get(0);
        n
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx_client.simple_query("COMMIT").await.expect("commit");
    assert_eq!(
        waiter.await.expect("join"),
        10,
        "b saw its own rows only, after a's commit"
    );
}

#[tokio::test]
async fn escapes_are_refused_over_the_wire_and_the_session_goes_on() {
    let env = env("guard", 2).await;
    let key = tenant_key(&env, "guarded", Mode::Shared).await;
    let c = connect(&env, &key).await.expect("connect");
    for sql in [
        "SET ROLE bulkhead_gateway",
        "RESET ROLE",
        "SET LOCAL bulkhead.tenant_id = '00000000-0000-0000-0000-000000000000'",
        "SELECT set_config('role', 'postgres', true)",
        "SET search_path = pg_temp, public",
        "DO $$ BEGIN END $$",
    ] {
        let err = c.simple_query(sql).await.expect_err(sql);
        assert_eq!(code(&err), "42501", "{sql}");
    }
    let err = c.simple_query("SELEC 1").await.expect_err("unparsable");
    assert_eq!(code(&err), "42601");
    // Inside a transaction a refusal fails the transaction, as PostgreSQL would.
    c.simple_query("BEGIN").await.expect("begin");
    c.simple_query("INSERT INTO customers (id, name) VALUES (1, 'x')")
        .await
        .expect("insert");
    assert!(c.simple_query("SET ROLE x").await.is_err());
    let err = c.simple_query("SELECT 1").await.expect_err("aborted");
    assert_eq!(code(&err), "25P02");
    c.simple_query("COMMIT")
        .await
        .expect("commit of a failed transaction rolls back");
    let n: i64 = c
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0, "the refused transaction left nothing");
    assert_eq!(
        c.query_one("SELECT 1::int", &[])
            .await
            .expect("usable")
            .get::<_, i32>(0),
        1
    );
}

#[tokio::test]
async fn bad_credentials_get_clear_errors() {
    let env = env("auth", 2).await;
    let key = tenant_key(&env, "keyed", Mode::Shared).await;
    let wrong = format!("{}x", &key[..key.len() - 1]);
    let err = connect(&env, &wrong).await.expect_err("wrong key");
    assert_eq!(code(&err), "28P01");
    let err = connect(&env, "hunter2").await.expect_err("not a key");
    assert_eq!(code(&err), "28P01");
    let err = connect(&env, "aaa.bbb.ccc").await.expect_err("bad token");
    assert_eq!(code(&err), "28P01");
    env.dir
        .set_tenant_state(
            &"keyed".parse().expect("r"),
            bulkhead_model::TenantState::Suspended,
        )
        .await
        .expect("suspend");
    let err = connect(&env, &key).await.expect_err("suspended");
    assert_eq!(code(&err), "28000");
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(env.port)
        .dbname("no_such_service")
        .user("x")
        .password(key.as_str());
    // Connection is not Debug, so expect_err is not available here.
    #[allow(clippy::err_expect)]
    let err = config.connect(NoTls).await.err().expect("unknown service");
    assert_eq!(code(&err), "3D000");
}

#[tokio::test]
async fn a_client_dropped_mid_transaction_leaves_nothing_and_a_clean_backend() {
    let env = env("drop", 1).await;
    let key = tenant_key(&env, "dropper", Mode::Shared).await;
    {
        let c = connect(&env, &key).await.expect("connect");
        c.simple_query("BEGIN").await.expect("begin");
        c.simple_query("INSERT INTO customers (id, name) VALUES (1, 'lost')")
            .await
            .expect("insert");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c = connect(&env, &key).await.expect("reconnect");
    let n: i64 = c
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0, "the dropped client's insert was rolled back");
}

#[tokio::test]
async fn malformed_input_closes_that_client_only() {
    let env = env("garbage", 2).await;
    let key = tenant_key(&env, "victim", Mode::Shared).await;
    let good = connect(&env, &key).await.expect("good");
    // Garbage as a startup packet.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", env.port))
        .await
        .expect("raw");
    raw.write_all(&[0xff; 64]).await.expect("write");
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
        .await
        .expect("answered")
        .unwrap_or(0);
    assert!(n == 0 || buf[0] == b'E', "closed or an error, not a hang");
    // An oversized message after login.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", env.port))
        .await
        .expect("raw");
    let mut startup = bytes::BytesMut::new();
    bulkhead_wire::to_server::startup(&mut startup, &[("user", "x"), ("database", &env.service)]);
    raw.write_all(&startup).await.expect("startup");
    let _ = raw.read(&mut buf).await;
    let mut pw = bytes::BytesMut::new();
    bulkhead_wire::to_server::password(&mut pw, &key);
    raw.write_all(&pw).await.expect("password");
    let _ = raw.read(&mut buf).await;
    raw.write_all(b"Q\x7f\xff\xff\xff").await.expect("huge");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut rest))
        .await
        .expect("closed");
    assert!(
        rest.windows(5).any(|w| w == b"08P01"),
        "a protocol-violation error before closing"
    );
    assert_eq!(
        good.query_one("SELECT 1::int", &[])
            .await
            .expect("others unaffected")
            .get::<_, i32>(0),
        1
    );
}

#[tokio::test]
async fn copy_works_both_ways() {
    use futures_util::{SinkExt, StreamExt};
    let env = env("copy", 2).await;
    let key = tenant_key(&env, "copier", Mode::Schema).await;
    let c = connect(&env, &key).await.expect("connect");
    let sink = c
        .copy_in("COPY customers (id, name) FROM STDIN")
        .await
        .expect("copy in");
    futures_util::pin_mut!(sink);
    for i in 0..100 {
        sink.send(bytes::Bytes::from(format!("{i}\tname-{i}\n")))
            .await
            .expect("row");
    }
    let n = sink.finish().await.expect("finish");
    assert_eq!(n, 100);
    let stream = c
        .copy_out("COPY (SELECT id, name FROM customers ORDER BY id) TO STDOUT")
        .await
        .expect("copy out");
    futures_util::pin_mut!(stream);
    let mut text = Vec::new();
    while let Some(chunk) = stream.next().await {
        text.extend_from_slice(&chunk.expect("chunk"));
    }
    let text = String::from_utf8(text).expect("utf8");
    assert_eq!(text.lines().count(), 100);
    assert!(text.starts_with("0\tname-0\n"));
    // The simple protocol path, from psql-like clients.
    let n: i64 = c
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 100);
}

#[tokio::test]
async fn a_cancel_request_reaches_the_running_query_and_a_wrong_key_does_nothing() {
    let env = env("cancel", 2).await;
    let key = tenant_key(&env, "canceller", Mode::Shared).await;
    let c = connect(&env, &key).await.expect("connect");
    let token = c.cancel_token();
    let started = std::time::Instant::now();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await
    });
    let err = c
        .simple_query("SELECT pg_sleep(20)")
        .await
        .expect_err("canceled");
    assert_eq!(code(&err), "57014");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "canceled promptly"
    );
    canceller.await.expect("join").expect("cancel sent");
    // The session goes on, on a clean connection.
    assert_eq!(
        c.query_one("SELECT 1::int", &[])
            .await
            .expect("usable")
            .get::<_, i32>(0),
        1
    );
    // A cancel with a made-up key reaches nothing.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", env.port))
        .await
        .expect("raw");
    let mut out = bytes::BytesMut::new();
    bulkhead_wire::to_server::cancel_request(&mut out, 1, &[9, 9, 9, 9]);
    raw.write_all(&out).await.expect("write");
    let other = connect(&env, &key).await.expect("other");
    let slept = other.simple_query("SELECT pg_sleep(0.3)").await;
    assert!(slept.is_ok(), "not canceled by a wrong key");
}

#[tokio::test]
async fn a_backend_restart_gives_clients_an_error_not_a_hang_and_the_gateway_recovers() {
    let env = env("restart", 2).await;
    let key = tenant_key(&env, "survivor", Mode::Shared).await;
    let c = connect(&env, &key).await.expect("connect");
    c.simple_query("SELECT 1").await.expect("warm the pool");
    // Kill every backend the gateway holds (as a server restart would).
    let pg = shared_cluster().expect("cluster");
    let admin = pg.connect("postgres").await.expect("admin");
    let role = env.dir.gateway_role().await.expect("role");
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
            &[&role],
        )
        .await
        .expect("terminate");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The next statement either fails cleanly (its pooled connection died) or succeeds on
    // a fresh one; it never hangs, and the one after it works.
    let first = tokio::time::timeout(Duration::from_secs(10), c.simple_query("SELECT 1"))
        .await
        .expect("no hang");
    if let Err(e) = first {
        assert_eq!(code(&e), "08006", "{e:?}");
    }
    let again = tokio::time::timeout(Duration::from_secs(10), c.query_one("SELECT 2::int", &[]))
        .await
        .expect("no hang")
        .expect("recovered");
    assert_eq!(again.get::<_, i32>(0), 2);
}

#[tokio::test]
async fn an_idle_connection_the_server_closed_is_not_handed_to_a_client() {
    let env = env("closed_idle", 2).await;
    let key = tenant_key(&env, "patient", Mode::Database).await;
    let c = connect(&env, &key).await.expect("connect");
    c.simple_query("SELECT 1").await.expect("warm the pool");
    let pg = shared_cluster().expect("cluster");
    let admin = pg.connect("postgres").await.expect("admin");
    // A database tenant's database is reached by the gateway's second login.
    let role = env.dir.gateway_role().await.expect("role");
    let login = bulkhead_directory::database_login_of(&role);
    let ended = admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
            &[&login],
        )
        .await
        .expect("terminate");
    assert_eq!(ended, 1, "the idle connection was terminated");
    // Idle past the re-check threshold, the dead connection is noticed at checkout and a
    // fresh one serves: the client sees no error at all.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let row = c
        .query_one("SELECT 3::int", &[])
        .await
        .expect("served by a fresh connection");
    assert_eq!(row.get::<_, i32>(0), 3);
}

#[tokio::test]
async fn psycopg_works_through_the_gateway() {
    let env = env("psycopg", 2).await;
    let key = tenant_key(&env, "pythonista", Mode::Schema).await;
    run_driver(&env, "psycopg_check.py", "app", &key, &[]).await;
}

fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    (cert, key)
}

async fn psycopg(dsn: &str, code: &str) -> (bool, String) {
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(format!("import psycopg, sys\ntry:\n{code}\nexcept psycopg.Error as e:\n    print('ERROR', e.sqlstate, e); sys.exit(1)"))
        .env("DSN", dsn)
        .output()
        .await
        .expect("python3");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn tls_is_negotiated_and_can_be_required() {
    let tmp = std::env::temp_dir().join(format!("bulkhead-tls-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmp");
    let (cert, key_file) = self_signed(&tmp);
    let acceptor = bulkhead_gateway::frontend::load_acceptor(&cert, &key_file).expect("acceptor");
    let env = env_with("tls", 2, Some(acceptor.clone()), false).await;
    let key = tenant_key(&env, "secure", Mode::Shared).await;
    let dsn = |mode: &str, port: u16, service: &str| {
        format!(
            "host=127.0.0.1 port={port} dbname={service} user=app password={key} sslmode={mode}"
        )
    };
    let check = "    c = psycopg.connect(__import__('os').environ['DSN'])\n    print('ssl', c.pgconn.ssl_in_use, c.execute('SELECT 41 + 1').fetchone()[0])";
    let (ok, out) = psycopg(&dsn("require", env.port, &env.service), check).await;
    assert!(ok && out.contains("ssl True 42"), "{out}");
    let (ok, out) = psycopg(&dsn("disable", env.port, &env.service), check).await;
    assert!(
        ok && out.contains("ssl False 42"),
        "plaintext still allowed when not required: {out}"
    );

    let strict = env_with("tls_strict", 2, Some(acceptor), true).await;
    let strict_key = tenant_key(&strict, "strict", Mode::Shared).await;
    let strict_dsn = |mode: &str| {
        format!(
            "host=127.0.0.1 port={} dbname={} user=app password={strict_key} sslmode={mode}",
            strict.port, strict.service
        )
    };
    let (ok, out) = psycopg(&strict_dsn("disable"), check).await;
    // libpq reports a refused connection by message only (no SQLSTATE reaches psycopg).
    assert!(!ok && out.contains("requires TLS"), "{out}");
    let (ok, out) = psycopg(&strict_dsn("require"), check).await;
    assert!(ok && out.contains("ssl True 42"), "{out}");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[tokio::test]
async fn suspending_a_tenant_ends_its_open_sessions_at_their_next_query() {
    let env = env("suspend", 2).await;
    let key = tenant_key(&env, "suspended", Mode::Shared).await;
    let c = connect(&env, &key).await.expect("connect");
    c.simple_query("SELECT 1").await.expect("works");
    env.dir
        .set_tenant_state(
            &"suspended".parse().expect("r"),
            bulkhead_model::TenantState::Suspended,
        )
        .await
        .expect("suspend");
    // The notification reaches the gateway asynchronously.
    let mut refused = None;
    for _ in 0..50 {
        match c.simple_query("SELECT 1").await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let err = refused.expect("refused within 5 s of the suspension");
    assert_eq!(code(&err), "28000", "{err:?}");
    assert!(
        c.is_closed() || c.simple_query("SELECT 1").await.is_err(),
        "the session is over"
    );
    env.dir
        .set_tenant_state(
            &"suspended".parse().expect("r"),
            bulkhead_model::TenantState::Active,
        )
        .await
        .expect("resume");
    let again = connect(&env, &key)
        .await
        .expect("resumed tenants log in again");
    again.simple_query("SELECT 1").await.expect("works again");
}

/// The backend process serving `client`'s next transaction.
async fn backend_pid(client: &tokio_postgres::Client) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0)
}

#[tokio::test]
async fn a_database_tenant_makes_room_by_closing_another_database_tenants_connection_first() {
    // Three connections: the pool database's (shared tenants) and two database tenants';
    // a third database tenant closes the other database tenants' before the pool database's.
    let three = env("evict_order", 3).await;
    let shared = connect(&three, &tenant_key(&three, "many", Mode::Shared).await)
        .await
        .expect("shared");
    let mut db = Vec::new();
    for slug in ["first", "second", "third"] {
        db.push(
            connect(&three, &tenant_key(&three, slug, Mode::Database).await)
                .await
                .expect("db tenant"),
        );
    }
    let pooled = backend_pid(&shared).await;
    // The pool database's connection is now the one idle longest: the eviction of the least
    // recently used would close it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first_pid = backend_pid(&db[0]).await;
    backend_pid(&db[1]).await;
    backend_pid(&db[2]).await;
    assert_eq!(
        backend_pid(&shared).await,
        pooled,
        "the pool database kept its connection"
    );
    assert_ne!(
        backend_pid(&db[0]).await,
        first_pid,
        "the first database tenant's connection was closed for the third's"
    );

    // With only the pool database's connection idle, and just given back, a database
    // tenant's checkout still gets one (after a short wait) rather than the pool timeout (53300).
    let alone = env("evict_alone", 1).await;
    let shared = connect(&alone, &tenant_key(&alone, "many", Mode::Shared).await)
        .await
        .expect("shared");
    let db = connect(&alone, &tenant_key(&alone, "own", Mode::Database).await)
        .await
        .expect("db");
    backend_pid(&shared).await;
    db.query_one("SELECT 1", &[])
        .await
        .expect("served after the short wait, not 53300 after the checkout timeout");
}

#[tokio::test]
async fn a_schema_tenant_goes_back_to_a_backend_that_has_run_in_its_schema() {
    // Two backends, one warmed by tenant a (in a transaction while b connects), the other by
    // b; other schema tenants come and go between their transactions. Each keeps going back
    // to its own backend (last in, first out would hand b the backend a just gave back).
    let two = env("affinity", 2).await;
    let a = connect(&two, &tenant_key(&two, "alpha", Mode::Schema).await)
        .await
        .expect("a");
    a.simple_query("BEGIN").await.expect("begin");
    let pa = backend_pid(&a).await;
    let b = connect(&two, &tenant_key(&two, "beta", Mode::Schema).await)
        .await
        .expect("b");
    let pb = backend_pid(&b).await;
    a.simple_query("COMMIT").await.expect("commit");
    assert_ne!(pa, pb, "two backends in use at once");
    // The gateway gives a connection back just after relaying the answer, and affinity never
    // waits for a busy one: each step waits for the last one's connection to be back.
    let settle = || tokio::time::sleep(Duration::from_millis(50));
    settle().await;
    for i in 0..6 {
        let other = connect(
            &two,
            &tenant_key(&two, &format!("other{i}"), Mode::Schema).await,
        )
        .await
        .expect("other");
        backend_pid(&other).await;
        settle().await;
        assert_eq!(backend_pid(&a).await, pa, "round {i}: a's backend");
        settle().await;
        assert_eq!(backend_pid(&b).await, pb, "round {i}: b's backend");
        settle().await;
    }
}

#[tokio::test]
async fn an_exhausted_pool_answers_53300_after_the_wait_and_recovers() {
    let env = env("exhausted", 1).await;
    let a_key = tenant_key(&env, "holder", Mode::Shared).await;
    let b_key = tenant_key(&env, "waiter", Mode::Shared).await;
    let a = connect(&env, &a_key).await.expect("a");
    let b = connect(&env, &b_key).await.expect("b");
    a.simple_query("BEGIN").await.expect("begin");
    a.simple_query("SELECT 1")
        .await
        .expect("holds the only connection");
    let started = std::time::Instant::now();
    let err = b
        .simple_query("SELECT 1")
        .await
        .expect_err("no connection for b");
    assert_eq!(code(&err), "53300", "{err:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "waited for the checkout timeout"
    );
    assert!(
        err.as_db_error()
            .is_some_and(|e| e.message().contains("busy")),
        "{err:?}"
    );
    a.simple_query("COMMIT").await.expect("commit");
    b.simple_query("SELECT 1")
        .await
        .expect("b gets the connection now");
}

/// Logs in over a raw socket and returns it after the first ReadyForQuery.
async fn raw_login(env: &Env, key: &str) -> (tokio::net::TcpStream, bytes::BytesMut) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", env.port))
        .await
        .expect("connect");
    let mut out = bytes::BytesMut::new();
    bulkhead_wire::to_server::startup(&mut out, &[("user", "app"), ("database", &env.service)]);
    s.write_all(&out).await.expect("startup");
    let mut buf = bytes::BytesMut::new();
    let mut sent_password = false;
    loop {
        while let Some(f) = bulkhead_wire::Frame::parse(&mut buf, 1 << 20).expect("frame") {
            match f.tag {
                b'R' if !sent_password && f.body[..4] == 3i32.to_be_bytes() => {
                    let mut pw = bytes::BytesMut::new();
                    bulkhead_wire::to_server::password(&mut pw, key);
                    s.write_all(&pw).await.expect("password");
                    sent_password = true;
                }
                b'Z' => return (s, buf),
                b'E' => panic!("login refused"),
                _ => {}
            }
        }
        s.read_buf(&mut buf).await.expect("read");
    }
}

/// Reads frames until one with `tag` arrives; returns the tags seen.
async fn read_until(s: &mut tokio::net::TcpStream, buf: &mut bytes::BytesMut, tag: u8) -> Vec<u8> {
    let mut tags = Vec::new();
    loop {
        while let Some(f) = bulkhead_wire::Frame::parse(buf, 1 << 20).expect("frame") {
            tags.push(f.tag);
            if f.tag == tag {
                return tags;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read_buf(buf))
            .await
            .expect("reply before timeout")
            .expect("read");
        assert!(n > 0, "closed");
    }
}

#[tokio::test]
async fn flush_without_sync_returns_results_and_the_unit_ends_at_sync() {
    let env = env("flush", 2).await;
    let key = tenant_key(&env, "flusher", Mode::Shared).await;
    let (mut s, mut buf) = raw_login(&env, &key).await;
    let mut out = bytes::BytesMut::new();
    bulkhead_wire::to_server::parse(&mut out, "q", "SELECT 41 + 1", &[]);
    bulkhead_wire::to_server::bind(&mut out, "", "q", &[], &[], &[]);
    bulkhead_wire::to_server::describe(&mut out, b'P', "");
    bulkhead_wire::to_server::execute(&mut out, "", 0);
    bulkhead_wire::to_server::flush(&mut out);
    s.write_all(&out).await.expect("send");
    let tags = read_until(&mut s, &mut buf, b'C').await;
    assert_eq!(
        tags,
        [b'1', b'2', b'T', b'D', b'C'],
        "results arrive before any Sync"
    );
    let mut out = bytes::BytesMut::new();
    bulkhead_wire::to_server::sync(&mut out);
    s.write_all(&out).await.expect("sync");
    let tags = read_until(&mut s, &mut buf, b'Z').await;
    assert_eq!(tags, [b'Z']);
    // The statement stays usable in the next unit.
    let mut out = bytes::BytesMut::new();
    bulkhead_wire::to_server::bind(&mut out, "", "q", &[], &[], &[]);
    bulkhead_wire::to_server::execute(&mut out, "", 0);
    bulkhead_wire::to_server::sync(&mut out);
    s.write_all(&out).await.expect("again");
    let tags = read_until(&mut s, &mut buf, b'Z').await;
    assert_eq!(tags, [b'2', b'D', b'C', b'Z']);
}

#[tokio::test]
async fn an_error_after_flush_skips_to_sync_and_the_session_goes_on() {
    let env = env("flusherr", 2).await;
    let key = tenant_key(&env, "flusherr", Mode::Shared).await;
    let (mut s, mut buf) = raw_login(&env, &key).await;
    let mut out = bytes::BytesMut::new();
    // Not constant-folded: the error comes at execution, after BindComplete.
    bulkhead_wire::to_server::parse(&mut out, "bad", "SELECT 1 / (random() * 0)::int", &[]);
    bulkhead_wire::to_server::bind(&mut out, "", "bad", &[], &[], &[]);
    bulkhead_wire::to_server::execute(&mut out, "", 0);
    bulkhead_wire::to_server::flush(&mut out);
    s.write_all(&out).await.expect("send");
    assert_eq!(read_until(&mut s, &mut buf, b'E').await, [b'1', b'2', b'E']);
    // Sent after the error: skipped by the server until Sync, and owed nothing.
    let mut out = bytes::BytesMut::new();
    bulkhead_wire::to_server::bind(&mut out, "", "bad", &[], &[], &[]);
    bulkhead_wire::to_server::execute(&mut out, "", 0);
    bulkhead_wire::to_server::close(&mut out, b'S', "bad");
    bulkhead_wire::to_server::sync(&mut out);
    s.write_all(&out).await.expect("rest");
    assert_eq!(read_until(&mut s, &mut buf, b'Z').await, [b'Z']);
    let mut out = bytes::BytesMut::new();
    bulkhead_wire::to_server::query(&mut out, "SELECT 2");
    s.write_all(&out).await.expect("next");
    assert_eq!(
        read_until(&mut s, &mut buf, b'Z').await,
        [b'T', b'D', b'C', b'Z']
    );
}

#[tokio::test]
async fn a_refusal_after_flush_skips_everything_up_to_sync() {
    let env = env("flushrefuse", 2).await;
    let key = tenant_key(&env, "flushrefuse", Mode::Shared).await;
    let (mut s, mut buf) = raw_login(&env, &key).await;
    let mut out = bytes::BytesMut::new();
    bulkhead_wire::to_server::parse(
        &mut out,
        "ins",
        "INSERT INTO customers (id, name) VALUES (7, 'before')",
        &[],
    );
    bulkhead_wire::to_server::bind(&mut out, "", "ins", &[], &[], &[]);
    bulkhead_wire::to_server::execute(&mut out, "", 0);
    bulkhead_wire::to_server::flush(&mut out);
    s.write_all(&out).await.expect("send");
    assert_eq!(read_until(&mut s, &mut buf, b'C').await, [b'1', b'2', b'C']);
    let mut out = bytes::BytesMut::new();
    bulkhead_wire::to_server::parse(&mut out, "bad", "SET ROLE postgres", &[]);
    bulkhead_wire::to_server::flush(&mut out);
    s.write_all(&out).await.expect("refused");
    assert_eq!(read_until(&mut s, &mut buf, b'E').await, [b'E']);
    // Sent after the refusal, before Sync: must not run.
    let mut out = bytes::BytesMut::new();
    bulkhead_wire::to_server::parse(
        &mut out,
        "",
        "INSERT INTO customers (id, name) VALUES (8, 'after')",
        &[],
    );
    bulkhead_wire::to_server::bind(&mut out, "", "", &[], &[], &[]);
    bulkhead_wire::to_server::execute(&mut out, "", 0);
    bulkhead_wire::to_server::sync(&mut out);
    s.write_all(&out).await.expect("rest");
    assert_eq!(read_until(&mut s, &mut buf, b'Z').await, [b'Z']);
    let c = connect(&env, &key).await.expect("connect");
    let n: i64 = c
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        n, 0,
        "neither the statement after the refusal nor the failed unit's insert remains"
    );
}

#[tokio::test]
async fn rollback_of_a_failed_transaction_in_the_extended_protocol_gets_every_reply() {
    let env = env("abortext", 2).await;
    let key = tenant_key(&env, "abortext", Mode::Shared).await;
    let (mut s, mut buf) = raw_login(&env, &key).await;
    let mut out = bytes::BytesMut::new();
    bulkhead_wire::to_server::query(&mut out, "BEGIN");
    bulkhead_wire::to_server::query(&mut out, "SET ROLE postgres");
    s.write_all(&out).await.expect("send");
    read_until(&mut s, &mut buf, b'Z').await;
    let tags = read_until(&mut s, &mut buf, b'Z').await;
    assert_eq!(tags, [b'E', b'Z'], "refused, and the transaction failed");
    // A bare Sync reports the failed state; ROLLBACK through Parse/Bind/Execute ends it.
    let mut out = bytes::BytesMut::new();
    bulkhead_wire::to_server::sync(&mut out);
    bulkhead_wire::to_server::parse(&mut out, "", "ROLLBACK", &[]);
    bulkhead_wire::to_server::bind(&mut out, "", "", &[], &[], &[]);
    bulkhead_wire::to_server::describe(&mut out, b'P', "");
    bulkhead_wire::to_server::execute(&mut out, "", 0);
    bulkhead_wire::to_server::sync(&mut out);
    s.write_all(&out).await.expect("send");
    let tags = read_until(&mut s, &mut buf, b'Z').await;
    assert_eq!(tags, [b'Z']);
    let tags = read_until(&mut s, &mut buf, b'Z').await;
    assert_eq!(tags, [b'1', b'2', b'n', b'C', b'Z']);
}

#[tokio::test]
async fn rollback_to_a_savepoint_recovers_a_failed_transaction() {
    // What ORMs do around each nested block (Django's atomic, SQLAlchemy's begin_nested).
    let env = env("savepoint", 1).await;
    let key = tenant_key(&env, "savepoint", Mode::Shared).await;
    let mut c = connect(&env, &key).await.expect("login");
    let tx = c.transaction().await.expect("begin");
    tx.execute("INSERT INTO customers (id, name) VALUES (1, 'kept')", &[])
        .await
        .expect("insert");
    tx.batch_execute("SAVEPOINT s1").await.expect("savepoint");
    tx.execute("INSERT INTO customers (id, name) VALUES (2, 'undone')", &[])
        .await
        .expect("insert");
    // A failure on the backend: simple and extended ROLLBACK TO both recover.
    tx.batch_execute("SELECT 1/0")
        .await
        .expect_err("division by zero");
    tx.batch_execute("SELECT 1")
        .await
        .expect_err("the transaction is failed");
    tx.batch_execute("ROLLBACK TO SAVEPOINT s1")
        .await
        .expect("rollback to, simple protocol");
    tx.batch_execute("SAVEPOINT s2").await.expect("savepoint");
    tx.execute("SELECT 1/0", &[]).await.expect_err("fails");
    tx.execute("ROLLBACK TO s2", &[])
        .await
        .expect("rollback to, extended protocol");
    // A refusal by the gateway fails the transaction the same way, and recovers the same way.
    let e = tx
        .batch_execute("SET ROLE postgres")
        .await
        .expect_err("refused");
    assert_eq!(code(&e), "42501", "{e:?}");
    tx.batch_execute("ROLLBACK TO SAVEPOINT s2; SELECT 1")
        .await
        .expect("rollback to and a statement in one string");
    // A savepoint that does not exist: PostgreSQL's own error, and the transaction is failed.
    let e = tx
        .batch_execute("ROLLBACK TO SAVEPOINT nope")
        .await
        .expect_err("no such savepoint");
    assert_eq!(code(&e), "3B001", "{e:?}");
    tx.batch_execute("ROLLBACK TO SAVEPOINT s1")
        .await
        .expect("an existing one still recovers");
    tx.commit().await.expect("commit");
    assert_eq!(names(&c).await, vec!["kept"]);
}

#[tokio::test]
async fn the_opening_and_the_clients_statements_share_one_string_safely() {
    let env = env("onestring", 1).await;
    let key = tenant_key(&env, "onestring", Mode::Schema).await;
    let c = connect(&env, &key).await.expect("login");
    let row = c
        .query_one("SELECT current_user::text -- a trailing comment", &[])
        .await
        .expect("comment");
    let role: String = row.get(0);
    assert!(role.starts_with("bh_t_"), "{role}");
    let rows = c
        .simple_query("SELECT 1 -- one\n; SELECT current_setting('search_path') /* two */")
        .await
        .expect("two statements");
    let n = rows
        .iter()
        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
        .count();
    assert_eq!(n, 2);
    // A failing statement in an implicit transaction: rolled back, the one connection clean.
    let e = c
        .simple_query("INSERT INTO customers (id, name) VALUES (1, 'x'); SELECT 1 / 0")
        .await
        .expect_err("division by zero");
    assert_eq!(code(&e), "22012");
    let rows = c
        .query("SELECT count(*) FROM customers", &[])
        .await
        .expect("clean connection");
    assert_eq!(rows[0].get::<_, i64>(0), 0, "the insert was rolled back");
}

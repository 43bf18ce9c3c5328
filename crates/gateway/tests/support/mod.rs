//! What the gateway tests share: a directory and a gateway on the test binary's cluster,
//! tenants, and clients.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

#[path = "../../../provisioner/tests/support/fixture.rs"]
mod fixture;

use bulkhead_directory::{Directory, NewTenant};
use bulkhead_gateway::backend::PoolSettings;
use bulkhead_gateway::{serve, GatewaySettings, GatewayState};
use bulkhead_model::{Mode, TenantId};
use bulkhead_provisioner::{create_tenant, CreateTenant};
use tokio_postgres::{Client, GenericClient, NoTls};

#[derive(Clone)]
pub struct Env {
    pub dir: Directory,
    pub port: u16,
    pub service: String,
}

pub async fn env(label: &str, pool_size: usize) -> Env {
    env_with(label, pool_size, None, false).await
}

pub async fn env_with(
    label: &str,
    pool_size: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tls_required: bool,
) -> Env {
    env_custom(label, pool_size, |s, _| {
        s.tls = tls;
        s.tls_required = tls_required;
    })
    .await
}

/// An env whose gateway settings `adjust` changes (limits, TLS).
pub async fn env_custom(
    label: &str,
    pool_size: usize,
    adjust: impl FnOnce(&mut GatewaySettings, &Directory),
) -> Env {
    let service = format!("gw_{label}");
    let dir = fixture::billing(label, &service).await;
    let mut settings = GatewaySettings {
        pool: PoolSettings {
            size: pool_size,
            checkout_timeout: Duration::from_secs(2),
            ..Default::default()
        },
        ..Default::default()
    };
    adjust(&mut settings, &dir);
    let state = GatewayState::new(dir.clone(), settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(serve(listener, state, std::future::pending::<()>()));
    Env { dir, port, service }
}

pub async fn tenant_key(env: &Env, slug: &str, mode: Mode) -> String {
    let id = tenant(env, slug, mode).await;
    let secret: String = (0..40)
        .map(|i| (b'a' + (i * 7 % 26) as u8) as char)
        .collect();
    env.dir.issue_key(&id, &secret).await.expect("key").key
}

/// Creates and provisions a tenant in the env's service.
pub async fn tenant(env: &Env, slug: &str, mode: Mode) -> TenantId {
    tenant_in_tier(env, slug, mode, None).await
}

/// Creates and provisions a tenant of `tier` in the env's service.
pub async fn tenant_in_tier(env: &Env, slug: &str, mode: Mode, tier: Option<&str>) -> TenantId {
    let created = create_tenant(
        &env.dir,
        &CreateTenant {
            tenant: NewTenant {
                slug: slug.parse().expect("slug"),
                id: None,
                tier: tier.map(|t| t.parse().expect("tier")),
                region: None,
            },
            service: Some(env.service.parse().expect("s")),
            mode: Some(mode),
            cluster: None,
        },
    )
    .await
    .expect("tenant");
    created.tenant.id
}

pub async fn connect(env: &Env, password: &str) -> Result<Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(env.port)
        .dbname(&env.service)
        .user("app")
        .password(password)
        .connect_timeout(Duration::from_secs(5));
    let (client, conn) = config.connect(NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

pub fn code(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// `tests/drivers`: the driver scripts (the matrix's, run by `crates/bulkhead/tests/drivers.rs`) and packages.
pub fn drivers_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers")
}

/// Runs a driver script from `tests/drivers` with a DSN for `user` and `password` and more
/// arguments; it must exit 0 and print "ok".
pub async fn run_driver(env: &Env, script: &str, user: &str, password: &str, args: &[&str]) {
    let script = drivers_dir().join(script);
    let dsn = format!(
        "host=127.0.0.1 port={} dbname={} user={user} password={password}",
        env.port, env.service
    );
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(&dsn)
        .args(args)
        .output()
        .await
        .expect("python3 runs (scripts/setup.sh installs psycopg)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ok"),
        "{} failed:\n{stdout}\n{stderr}",
        script.display()
    );
}

pub const PASSWORD: &str = "a-service-password-for-the-tests-0123";
pub const SECRET: &str = "an-hs256-secret-for-the-service-tests-0123";

pub async fn credential(env: &Env, user: &str) {
    credential_with(env, user, false).await
}

/// A service credential, with the migration capability when `may_ddl`.
pub async fn credential_with(env: &Env, user: &str, may_ddl: bool) {
    let verifier = postgres_protocol::password::scram_sha_256(PASSWORD.as_bytes());
    env.dir
        .create_credential(&env.service.parse().expect("s"), user, &verifier, may_ddl)
        .await
        .expect("credential");
}

pub async fn service_client(
    env: &Env,
    user: &str,
    password: &str,
) -> Result<Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(env.port)
        .dbname(&env.service)
        .user(user)
        .password(password)
        .connect_timeout(Duration::from_secs(5));
    let (client, conn) = config.connect(NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

pub fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

pub fn token(tenant: &TenantId, secret: &str, exp: i64) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"tenant_id": tenant.to_string(), "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token")
}

pub async fn names(c: &impl GenericClient) -> Vec<String> {
    c.query("SELECT name FROM customers ORDER BY id", &[])
        .await
        .expect("select")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

//! What the gateway tests share: a directory and a gateway on the test binary's cluster,
//! tenants, and clients.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use bulkhead_directory::{Directory, NewCluster, NewService, NewTenant};
use bulkhead_gateway::backend::PoolSettings;
use bulkhead_gateway::{serve, GatewaySettings, GatewayState};
use bulkhead_model::{Mode, TenantId};
use bulkhead_pgkit::shared_cluster;
use bulkhead_provisioner::migrate::read_migrations_dir;
use bulkhead_provisioner::{add_cluster, create_service, create_tenant, CreateTenant};
use tokio_postgres::{Client, NoTls};

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
    let pg = shared_cluster().expect("cluster");
    let control = pg.create_database(label).await.expect("control");
    let dir = Directory::connect(&control.dsn).await.expect("dir");
    dir.migrate().await.expect("migrate");
    add_cluster(
        &dir,
        &NewCluster {
            name: "main".parse().expect("n"),
            region: "local".parse().expect("r"),
            admin_dsn: pg.dsn("postgres"),
            capacity: None,
        },
    )
    .await
    .expect("cluster");
    let service = format!("gw_{label}");
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../provisioner/tests/fixtures/billing");
    create_service(
        &dir,
        &NewService {
            name: service.parse().expect("s"),
            default_mode: Mode::Shared,
            tier_modes: Default::default(),
            cluster: None,
            reference_tables: vec!["countries".into()],
            migrations: read_migrations_dir(&fixtures).expect("fixtures"),
        },
    )
    .await
    .expect("service");
    let settings = GatewaySettings {
        pool: PoolSettings {
            size: pool_size,
            checkout_timeout: Duration::from_secs(2),
            ..Default::default()
        },
        tls,
        tls_required,
        ..Default::default()
    };
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
    let created = create_tenant(
        &env.dir,
        &CreateTenant {
            tenant: NewTenant {
                slug: slug.parse().expect("slug"),
                id: None,
                tier: None,
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

/// Runs a driver script from `tests/drivers` with a DSN for `user` and `password` and more
/// arguments; it must exit 0 and print "ok".
pub async fn run_driver(env: &Env, script: &str, user: &str, password: &str, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/drivers")
        .join(script);
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

//! What the move tests share: a directory, a gateway and a service on the test binary's
//! cluster, tenants reached through the gateway, and a writer that records every write the
//! gateway acknowledged.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead_directory::Directory;
use bulkhead_gateway::backend::PoolSettings;
use bulkhead_gateway::{serve, GatewaySettings, GatewayState};
use bulkhead_model::{Mode, TenantId};
use tokio_postgres::{Client, NoTls};

#[path = "../../../provisioner/tests/support/fixture.rs"]
mod fixture;

#[derive(Clone)]
pub struct Env {
    pub dir: Directory,
    pub port: u16,
    pub service: String,
}

/// A control database, the shared cluster as `main`, a service with the billing fixtures and
/// a gateway in front.
pub async fn env(label: &str) -> Env {
    let service = format!("mv_{label}");
    let dir = fixture::billing(label, &service).await;
    let settings = GatewaySettings {
        pool: PoolSettings {
            size: 8,
            checkout_timeout: Duration::from_secs(5),
            ..Default::default()
        },
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

/// Creates a tenant in `mode` and returns its id and an API key.
pub async fn tenant(env: &Env, slug: &str, mode: Mode) -> (TenantId, String) {
    tenant_placed(env, slug, mode, None, None).await
}

/// Creates a tenant in `mode` on `cluster` (default: the service's), pinned to `region`.
pub async fn tenant_placed(
    env: &Env,
    slug: &str,
    mode: Mode,
    cluster: Option<&str>,
    region: Option<&str>,
) -> (TenantId, String) {
    let id = fixture::place_tenant(&env.dir, &env.service, slug, mode, cluster, region).await;
    let secret: String = (0..40)
        .map(|i| (b'a' + (i * 7 % 26) as u8) as char)
        .collect();
    let key = env.dir.issue_key(&id, &secret).await.expect("key").key;
    (id, key)
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

/// What the writer was told committed.
#[derive(Default)]
pub struct Acked {
    /// customers: id → name.
    pub customers: BTreeMap<i64, String>,
    /// events ids handed out.
    pub events: Vec<i64>,
    /// Transactions acknowledged.
    pub commits: u64,
    /// Errors seen (the transaction did not commit).
    pub errors: Vec<String>,
}

/// A writer through the gateway: each transaction inserts a customer, renames the previous
/// one, deletes an older one every fourth time and adds an event.
pub struct Writer {
    pub acked: Arc<Mutex<Acked>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    pub async fn start(env: &Env, key: &str, first_id: i64) -> Writer {
        let acked = Arc::new(Mutex::new(Acked::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (env, key) = (env.clone(), key.to_string());
        let (a, s) = (acked.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut client = connect(&env, &key).await.expect("writer connects");
            let mut i = first_id;
            while !s.load(Ordering::Relaxed) {
                match write_once(&mut client, i).await {
                    Ok(event) => {
                        let mut a = a.lock().expect("acked");
                        a.customers.insert(i, format!("c{i}"));
                        if a.customers.contains_key(&(i - 1)) {
                            a.customers.insert(i - 1, format!("u{}", i - 1));
                        }
                        if i % 4 == 0 {
                            a.customers.remove(&(i - 3));
                        }
                        a.events.push(event);
                        a.commits += 1;
                    }
                    Err(e) => {
                        let text = e
                            .as_db_error()
                            .map(|d| format!("{}: {}", d.code().code(), d.message()))
                            .unwrap_or_else(|| e.to_string());
                        a.lock().expect("acked").errors.push(text);
                        if client.is_closed() {
                            client = connect(&env, &key).await.expect("writer reconnects");
                        }
                    }
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        Writer { acked, stop, task }
    }

    /// Stops and returns what was acknowledged.
    pub async fn stop(self) -> Acked {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("writer");
        Arc::try_unwrap(self.acked)
            .ok()
            .expect("sole owner")
            .into_inner()
            .expect("acked")
    }

    pub fn commits(&self) -> u64 {
        self.acked.lock().expect("acked").commits
    }
}

async fn write_once(client: &mut Client, i: i64) -> Result<i64, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO customers (id, name) VALUES ($1::bigint, 'c' || $1::bigint::text)",
        &[&i],
    )
    .await?;
    tx.execute(
        "UPDATE customers SET name = 'u' || id::text WHERE id = $1",
        &[&(i - 1)],
    )
    .await?;
    if i % 4 == 0 {
        tx.execute("DELETE FROM customers WHERE id = $1", &[&(i - 3)])
            .await?;
    }
    let event: i64 = tx
        .query_one("INSERT INTO events (kind) VALUES ('w') RETURNING id", &[])
        .await?
        .get(0);
    tx.commit().await?;
    Ok(event)
}

/// The tenant's customers and event ids as the gateway shows them now.
pub async fn snapshot(env: &Env, key: &str) -> (BTreeMap<i64, String>, Vec<i64>) {
    let c = connect(env, key).await.expect("connect");
    let customers = c
        .query("SELECT id, name FROM customers ORDER BY id", &[])
        .await
        .expect("customers")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let events = c
        .query("SELECT id FROM events ORDER BY id", &[])
        .await
        .expect("events")
        .iter()
        .map(|r| r.get(0))
        .collect();
    (customers, events)
}

/// Waits until the writer has committed `n` more transactions.
pub async fn wait_commits(w: &Writer, n: u64) {
    let target = w.commits() + n;
    for _ in 0..2000 {
        if w.commits() >= target {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let errors = w.acked.lock().expect("acked").errors.clone();
    panic!(
        "the writer made no progress: {:?}",
        &errors[errors.len().saturating_sub(3)..]
    );
}

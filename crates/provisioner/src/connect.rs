//! Administrator connections to a database on a cluster, from the cluster's admin DSN, with a
//! small cache of idle ones: provisioning a tenant would otherwise pay two fresh SCRAM
//! handshakes and backend starts.
//!
//! Invariant: only a connection handed back with [`AdminConn::release`] is reused, and only
//! callers that leave it clean (no open transaction, no session settings) release it. A
//! connection to a template database is never released: `CREATE DATABASE ... TEMPLATE`
//! needs the template free of connections. Connections are reused only on the runtime that
//! opened them: their I/O task lives there and dies with it.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use bulkhead_directory::Cluster;
use tokio_postgres::{Client, NoTls};

use crate::ProvisionError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_PER_DATABASE: usize = 4;

static IDLE: Mutex<Option<HashMap<String, Vec<Client>>>> = Mutex::new(None);

/// A connection as the cluster's administrator; closed when dropped unless released.
pub struct AdminConn {
    client: Option<Client>,
    key: String,
    /// False for a template database: `CREATE DATABASE ... TEMPLATE` needs it to have no
    /// session at all, so an idle connection kept here would fail every database tenant's
    /// creation (55006) for as long as this process lives. Found by bench/fleet.sh.
    reusable: bool,
}

impl AdminConn {
    /// Hands the connection back for reuse. Call only when it is clean.
    pub fn release(mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if client.is_closed() {
            return;
        }
        if !self.reusable {
            return;
        }
        if let Ok(mut idle) = IDLE.lock() {
            let idle = idle.get_or_insert_with(HashMap::new);
            // Drop what died meanwhile (a dropped database, a runtime that shut down).
            idle.retain(|_, list| {
                list.retain(|c| !c.is_closed());
                !list.is_empty()
            });
            let list = idle.entry(self.key.clone()).or_default();
            if list.len() < IDLE_PER_DATABASE {
                list.push(client);
            }
        }
    }
}

impl Deref for AdminConn {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client
            .as_ref()
            .unwrap_or_else(|| unreachable!("an AdminConn holds its client until dropped"))
    }
}

impl DerefMut for AdminConn {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .unwrap_or_else(|| unreachable!("an AdminConn holds its client until dropped"))
    }
}

/// Connects as the cluster's administrator to `database`, reusing an idle connection when
/// one is cached; the connection task runs on the current runtime.
pub async fn admin_connect(cluster: &Cluster, database: &str) -> Result<AdminConn, ProvisionError> {
    let runtime = tokio::runtime::Handle::try_current()
        .map(|h| h.id().to_string())
        .unwrap_or_default();
    let key = format!("{runtime}\u{0}{}\u{0}{database}", cluster.admin_dsn);
    if let Ok(mut idle) = IDLE.lock() {
        if let Some(list) = idle.get_or_insert_with(HashMap::new).get_mut(&key) {
            while let Some(client) = list.pop() {
                if !client.is_closed() {
                    return Ok(AdminConn {
                        client: Some(client),
                        key,
                        reusable: true,
                    });
                }
            }
        }
    }
    let client = connect(cluster, database).await?;
    Ok(AdminConn {
        client: Some(client),
        key,
        reusable: !crate::naming::is_template_database(database),
    })
}

async fn connect(cluster: &Cluster, database: &str) -> Result<Client, ProvisionError> {
    let context = || {
        format!(
            "connecting to database {database} on cluster {}",
            cluster.name
        )
    };
    let mut config =
        tokio_postgres::Config::from_str(&cluster.admin_dsn).map_err(|e| ProvisionError::Sql {
            context: context(),
            message: e.to_string(),
        })?;
    config
        .dbname(database)
        .connect_timeout(CONNECT_TIMEOUT)
        .application_name("bulkhead-provisioner");
    let (client, conn) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls))
        .await
        .map_err(|_| ProvisionError::Sql {
            context: context(),
            message: format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
        })?
        .map_err(ProvisionError::sql(context()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "provisioner connection ended");
        }
    });
    Ok(client)
}

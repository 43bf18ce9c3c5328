//! The connection to the control database.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::DirectoryError;

/// The notification channel on which every directory change is announced.
pub const CHANGE_CHANNEL: &str = "bulkhead_directory";

/// A handle on the directory; cheap to clone.
#[derive(Clone)]
pub struct Directory {
    pool: Pool,
    dsn: String,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").finish_non_exhaustive()
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Directory {
    /// Opens a pool on the control database at `dsn` and checks that it answers.
    pub async fn connect(dsn: &str) -> Result<Self, DirectoryError> {
        let mut config =
            tokio_postgres::Config::from_str(dsn).map_err(|e| DirectoryError::InvalidDsn {
                cluster: "control".into(),
                reason: e.to_string(),
            })?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("bulkhead-directory");
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| DirectoryError::Pool(e.to_string()))?;
        let dir = Self {
            pool,
            dsn: dsn.to_string(),
        };
        dir.ping().await?;
        Ok(dir)
    }

    /// Checks that the control database answers.
    pub async fn ping(&self) -> Result<(), DirectoryError> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// A pooled connection to the control database.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, DirectoryError> {
        Ok(self.pool.get().await?)
    }

    /// The control database's DSN (a secret: contains its password).
    pub fn dsn(&self) -> &str {
        &self.dsn
    }
}

/// Creates database `name` on the server at `admin_dsn` if it does not exist yet.
pub async fn ensure_database(admin_dsn: &str, name: &str) -> Result<(), DirectoryError> {
    let (client, conn) = tokio_postgres::connect(admin_dsn, NoTls).await?;
    let task = tokio::spawn(conn);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        let sql = format!("CREATE DATABASE {}", quote_ident(name));
        if let Err(e) = client.batch_execute(&sql).await {
            // Two processes racing to create it: the loser finds it there.
            if e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) {
                return Err(e.into());
            }
        }
    }
    drop(client);
    let _ = task.await;
    Ok(())
}

/// True for an identifier PostgreSQL never needs quoted: lowercase letters, digits and `_`,
/// not starting with a digit, at most 63 bytes.
pub(crate) fn is_plain_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Quotes an SQL identifier (doubling embedded quotes).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An advisory lock in the control database, held on a connection of its own: dropping the
/// guard closes that connection, and PostgreSQL releases the lock, even if the holder
/// panics. Serializes work across every Bulkhead process sharing the directory.
#[derive(Debug)]
pub struct DirectoryLock {
    _client: tokio_postgres::Client,
}

impl Directory {
    /// Waits for the advisory lock named `key` (up to `timeout`).
    pub async fn lock(
        &self,
        key: &str,
        timeout: Duration,
    ) -> Result<DirectoryLock, DirectoryError> {
        self.lock_as(key, false, timeout).await
    }

    /// Waits for the advisory lock named `key` in shared mode: many holders at once, none
    /// while [`Directory::lock`] holds it.
    pub async fn lock_shared(
        &self,
        key: &str,
        timeout: Duration,
    ) -> Result<DirectoryLock, DirectoryError> {
        self.lock_as(key, true, timeout).await
    }

    /// Takes the advisory lock named `key` when nobody holds it; `None` when somebody does.
    /// Held for as long as the returned guard lives (its own connection): a process that
    /// dies lets go of it, which is how others tell a live worker from a dead one.
    pub async fn try_lock(&self, key: &str) -> Result<Option<DirectoryLock>, DirectoryError> {
        let (client, conn) = tokio_postgres::connect(&self.dsn, NoTls).await?;
        tokio::spawn(conn);
        let got: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&key],
            )
            .await?
            .get(0);
        Ok(got.then_some(DirectoryLock { _client: client }))
    }

    async fn lock_as(
        &self,
        key: &str,
        shared: bool,
        timeout: Duration,
    ) -> Result<DirectoryLock, DirectoryError> {
        let (client, conn) = tokio_postgres::connect(&self.dsn, NoTls).await?;
        tokio::spawn(conn);
        let sql = if shared {
            "SELECT pg_advisory_lock_shared(hashtextextended($1, 0))"
        } else {
            "SELECT pg_advisory_lock(hashtextextended($1, 0))"
        };
        let locked = tokio::time::timeout(timeout, client.execute(sql, &[&key])).await;
        match locked {
            Ok(Ok(_)) => Ok(DirectoryLock { _client: client }),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(DirectoryError::Pool(format!(
                "waited {}s for `{key}`: another Bulkhead process is working on it",
                timeout.as_secs()
            ))),
        }
    }
}

//! Throwaway clusters for tests: a temporary folder, a free port, fsync off.
//!
//! Invariant: no PostgreSQL process and no folder outlives the test process. Three layers
//! keep it: `Drop` (owned clusters, also while a panic unwinds), an `atexit` hook (the
//! per-binary [`shared_cluster`], which lives in a static and is never dropped), and a
//! watchdog shell process that stops the server and removes the folder if the test process
//! dies without running either (SIGKILL, abort).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use crate::server::{free_port, random_password};
use crate::{Durability, PgBinaries, PgKitError, RunAs, Server, ServerSpec};

/// A private PostgreSQL server in a temporary folder, gone when dropped.
#[derive(Debug)]
pub struct ThrowawayCluster {
    server: Server,
    root: PathBuf,
    watchdog: Option<Child>,
    password: String,
}

/// A fresh database on a throwaway cluster, for one test.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// The database name.
    pub name: String,
    /// A superuser URL for it.
    pub dsn: String,
}

/// Live throwaway servers: (postmaster pid, folder), stopped by the atexit hook.
static LIVE: Mutex<Vec<(i32, PathBuf)>> = Mutex::new(Vec::new());
static ATEXIT: Once = Once::new();
static SHARED: OnceLock<Result<ThrowawayCluster, String>> = OnceLock::new();
static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// The one cluster of this test binary, started on first use and stopped at process exit.
pub fn shared_cluster() -> Result<&'static ThrowawayCluster, String> {
    SHARED
        .get_or_init(|| ThrowawayCluster::start().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| format!("could not start the test PostgreSQL cluster: {e}"))
}

impl ThrowawayCluster {
    /// Starts a new throwaway cluster (initdb takes about a second).
    pub fn start() -> Result<Self, PgKitError> {
        Self::start_with_settings(&[])
    }

    /// Production durability (fsync, synchronous_commit and full_page_writes on), sized like
    /// `bulkhead up`'s embedded cluster: the settings of [`ThrowawayCluster::start_durable`].
    pub const DURABLE: &'static [(&'static str, &'static str)] = &[
        ("fsync", "on"),
        ("synchronous_commit", "on"),
        ("full_page_writes", "on"),
        ("shared_buffers", "1GB"),
        ("wal_buffers", "64MB"),
        ("max_wal_size", "4GB"),
    ];

    /// A throwaway cluster with production durability, for benchmarks.
    pub fn start_durable() -> Result<Self, PgKitError> {
        Self::start_with_settings(Self::DURABLE)
    }

    /// Starts a throwaway cluster with some settings changed, e.g. `("wal_level", "replica")`.
    pub fn start_with_settings(settings: &[(&str, &str)]) -> Result<Self, PgKitError> {
        ATEXIT.call_once(|| {
            // SAFETY: registering a plain extern "C" function with no captured state.
            unsafe {
                libc::atexit(stop_all_at_exit);
            }
        });
        let bins = PgBinaries::locate()?;
        let run_as = RunAs::detect()?;
        let root = tempfile::Builder::new()
            .prefix("bulkhead-pg-")
            .tempdir()
            .map_err(PgKitError::io("creating a temporary folder"))?
            .keep();
        let settings = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let result = Self::start_in(&bins, &run_as, &root, settings);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&root);
        }
        result
    }

    fn start_in(
        bins: &PgBinaries,
        run_as: &RunAs,
        root: &Path,
        extra_settings: Vec<(String, String)>,
    ) -> Result<Self, PgKitError> {
        run_as.allow_traverse(root)?;
        let password = random_password();
        let mut spec = ServerSpec {
            data_dir: root.join("data"),
            port: 0,
            superuser: "bulkhead".into(),
            password: password.clone(),
            durability: Durability::Throwaway,
            log_file: root.join("postgres.log"),
            extra_settings,
        };
        Server::init_if_needed(bins, run_as, &spec)?;
        let mut attempt = 0;
        let server = loop {
            spec.port = free_port()?;
            match Server::start(bins, run_as, spec.clone()) {
                Ok(server) => break server,
                // Another process may take the port between our probe and the bind.
                Err(PgKitError::Start { tail, .. })
                    if tail.contains("could not") && attempt < 5 =>
                {
                    attempt += 1
                }
                Err(e) => return Err(e),
            }
        };
        let pid = server.pid().unwrap_or_default();
        if let Ok(mut live) = LIVE.lock() {
            live.push((pid, root.to_path_buf()));
        }
        let watchdog = spawn_watchdog(pid, root).ok();
        Ok(Self {
            server,
            root: root.to_path_buf(),
            watchdog,
            password,
        })
    }

    /// The running server.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A superuser URL for database `dbname`.
    pub fn dsn(&self, dbname: &str) -> String {
        self.server.dsn(dbname)
    }

    /// Connects as the superuser to `dbname`; the connection task runs on the current runtime.
    pub async fn connect(&self, dbname: &str) -> Result<tokio_postgres::Client, PgKitError> {
        let (client, conn) = tokio_postgres::connect(&self.dsn(dbname), tokio_postgres::NoTls)
            .await
            .map_err(|source| PgKitError::Sql {
                context: format!("connecting to {dbname}"),
                source,
            })?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// Creates a fresh, uniquely named database; `label` helps reading the server log.
    pub async fn create_database(&self, label: &str) -> Result<TestDatabase, PgKitError> {
        let n = DB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let clean: String = label
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect::<String>()
            .to_ascii_lowercase();
        let name = format!("test_{clean}_{}_{n}", std::process::id());
        let admin = self.connect("postgres").await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(|source| PgKitError::Sql {
                context: format!("creating database {name}"),
                source,
            })?;
        Ok(TestDatabase {
            dsn: self.dsn(&name),
            name,
        })
    }

    /// The temporary folder holding the data folder and the log.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for ThrowawayCluster {
    fn drop(&mut self) {
        let pid = self.server.pid();
        let _ = self.server.stop();
        let _ = std::fs::remove_dir_all(&self.root);
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|(p, _)| Some(*p) != pid);
        }
        if let Some(mut dog) = self.watchdog.take() {
            let _ = kill(Pid::from_raw(-(dog.id() as i32)), Signal::SIGKILL);
            let _ = dog.wait();
        }
    }
}

const WATCHDOG: &str = r#"
parent=$1; pg=$2; dir=$3
while kill -0 "$parent" 2>/dev/null; do sleep 0.5; done
kill -INT "$pg" 2>/dev/null
i=0
while kill -0 "$pg" 2>/dev/null && [ "$i" -lt 80 ]; do sleep 0.25; i=$((i+1)); done
kill -KILL "$pg" 2>/dev/null
rm -rf "$dir"
"#;

fn spawn_watchdog(pg_pid: i32, root: &Path) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("bulkhead-pg-watchdog")
        .arg(std::process::id().to_string())
        .arg(pg_pid.to_string())
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
}

extern "C" fn stop_all_at_exit() {
    let live = match LIVE.lock() {
        Ok(mut live) => std::mem::take(&mut *live),
        Err(_) => return,
    };
    for (pid, _) in &live {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGINT);
    }
    for (pid, root) in &live {
        let deadline = Instant::now() + Duration::from_secs(20);
        let pid = Pid::from_raw(*pid);
        loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                    break;
                }
                _ => break,
            }
        }
        let _ = std::fs::remove_dir_all(root);
    }
}

//! The side instance: a throwaway PostgreSQL restored by pgBackRest from a base backup and
//! replayed to the target time, on a free port of this machine, with archiving off (it must
//! never push its new timeline into the cluster's archive). It lives in a scratch folder under
//! the cluster's work folder and is stopped and removed when dropped or closed; one left by a
//! process that died is found by [`sweep`] (its owner's pid is recorded beside it).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use bulkhead_directory::Cluster;
use bulkhead_pgkit::{
    free_port, postmaster_pid, process_running, stop_orphan, Durability, PgBinaries, RunAs, Server,
    ServerSpec,
};
use bulkhead_provisioner::admin_connect;
use chrono::{DateTime, Utc};

use crate::repo::Repo;
use crate::PitrError;

/// How long WAL replay to the target may take before the rewind gives up.
pub const REPLAY_TIMEOUT: Duration = Duration::from_secs(1800);

/// Settings the side instance must have at least as large as its cluster's, or recovery
/// stops ("insufficient parameter settings").
const CARRIED: &str = "SELECT name, setting FROM pg_settings WHERE name IN
    ('max_connections', 'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions',
     'max_locks_per_transaction')";

/// A side instance's scratch folder, and its server once started.
pub struct SideInstance {
    server: Option<Server>,
    dir: PathBuf,
    cluster: Cluster,
}

impl SideInstance {
    /// Restores the base backup `label` of `repo` into a new scratch folder under
    /// `work_dir`, set to replay to `at` and promote there; only database `db_include` (and
    /// the system databases) when given. `live` is the cluster it is a copy of.
    pub async fn restore(
        repo: &Repo,
        work_dir: &Path,
        live: &Cluster,
        label: &str,
        at: DateTime<Utc>,
        db_include: Option<&str>,
    ) -> Result<Self, PitrError> {
        let run_as = RunAs::detect()?;
        let name = format!("side-{}", uuid::Uuid::new_v4().simple());
        let dir = work_dir.join(&name);
        std::fs::write(
            work_dir.join(format!("{name}.owner")),
            std::process::id().to_string(),
        )
        .map_err(PitrError::io(format!(
            "writing the owner of {}",
            dir.display()
        )))?;
        run_as.own_private_dir(&dir)?;
        let side = SideInstance {
            server: None,
            dir,
            cluster: live.clone(),
        };
        let mut args = vec![
            format!("--pg1-path={}", side.dir.display()),
            format!("--set={label}"),
            "--type=time".into(),
            format!("--target={}", at.format("%Y-%m-%d %H:%M:%S%.6f+00")),
            "--target-action=promote".into(),
            "--archive-mode=off".into(),
        ];
        if let Some(db) = db_include {
            args.push(format!("--db-include={db}"));
        }
        repo.run("restore", &args).await?;
        Ok(side)
    }

    /// Starts the restored server on a free port and waits until it replayed to the target
    /// and promoted; then [`SideInstance::cluster`] reaches it.
    pub async fn start(&mut self) -> Result<(), PitrError> {
        let live = admin_connect(&self.cluster, "postgres").await?;
        let carried: Vec<(String, String)> = live
            .query(CARRIED, &[])
            .await
            .map_err(PitrError::sql("reading the cluster's settings"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        live.release();
        let config = tokio_postgres::Config::from_str(&self.cluster.admin_dsn).map_err(|e| {
            PitrError::Refused(format!("the cluster's admin DSN is unreadable: {e}"))
        })?;
        let user = config.get_user().unwrap_or("postgres").to_string();
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        let port = free_port()?;
        let mut extra = carried;
        extra.extend([
            ("archive_mode".to_string(), "off".to_string()),
            ("hot_standby".to_string(), "on".to_string()),
        ]);
        let spec = ServerSpec {
            data_dir: self.dir.clone(),
            port,
            superuser: user.clone(),
            password: password.clone(),
            durability: Durability::Throwaway,
            log_file: self.dir.with_extension("log"),
            extra_settings: extra,
        };
        let server = tokio::task::spawn_blocking(move || {
            let bins = PgBinaries::locate()?;
            let run_as = RunAs::detect()?;
            Server::start_within(&bins, &run_as, spec, REPLAY_TIMEOUT)
        })
        .await
        .map_err(|e| PitrError::Io {
            context: "starting the side instance".into(),
            source: std::io::Error::other(e),
        })??;
        let pid = server.pid();
        self.server = Some(server);
        self.cluster.admin_dsn = format!(
            "host=127.0.0.1 port={port} user={} password={} dbname=postgres",
            quote(&user),
            quote(&password)
        );
        self.wait_promoted(pid).await
    }

    /// A hot standby accepts connections before it reached its target: wait until recovery
    /// ended and the server promoted, or report why it stopped (a target past the end of the
    /// archived WAL stops the server with a FATAL in its log).
    async fn wait_promoted(&self, pid: Option<i32>) -> Result<(), PitrError> {
        let deadline = std::time::Instant::now() + REPLAY_TIMEOUT;
        loop {
            if !pid.is_some_and(process_running) {
                return Err(PitrError::Refused(format!(
                    "the side instance stopped during recovery:\n{}",
                    self.log_tail()
                )));
            }
            if let Ok(c) = admin_connect(&self.cluster, "postgres").await {
                if let Ok(r) = c
                    .query_one("SELECT pg_catalog.pg_is_in_recovery()", &[])
                    .await
                {
                    let recovering: bool = r.get(0);
                    if !recovering {
                        drop(c);
                        return Ok(());
                    }
                }
            }
            if std::time::Instant::now() > deadline {
                return Err(PitrError::Refused(format!(
                    "the side instance did not reach the instant within {} s:\n{}",
                    REPLAY_TIMEOUT.as_secs(),
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// The side instance as a cluster (same name as the one it copies, its own address).
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Stops the server and removes the scratch folder.
    pub async fn close(mut self) {
        let server = self.server.take();
        let dir = self.dir.clone();
        let _ = tokio::task::spawn_blocking(move || remove(server, &dir)).await;
    }
}

impl Drop for SideInstance {
    fn drop(&mut self) {
        remove(self.server.take(), &self.dir);
    }
}

fn remove(server: Option<Server>, dir: &Path) {
    if let Some(mut s) = server {
        let _ = s.stop();
    }
    let _ = std::fs::remove_dir_all(dir);
    // The last side instance's server log is kept beside the work folder, for diagnosis.
    let log = dir.with_extension("log");
    if let Some(parent) = dir.parent().and_then(Path::parent) {
        let _ = std::fs::rename(&log, parent.join("side-last.log"));
    }
    let _ = std::fs::remove_file(log);
    let _ = std::fs::remove_file(dir.with_extension("owner"));
}

/// A libpq key=value value, quoted.
fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Stops and removes side instances under `work_dir` whose owner process is gone (a rewind
/// killed midway). Returns how many it removed.
pub fn sweep(work_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let path = e.path();
        let is_side = path.is_dir()
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("side-"));
        if !is_side {
            continue;
        }
        let owner = std::fs::read_to_string(path.with_extension("owner"))
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        if owner.is_some_and(process_running) {
            continue;
        }
        if let Some(pid) = postmaster_pid(&path).filter(|p| *p > 0 && process_running(*p)) {
            stop_orphan(pid);
        }
        remove(None, &path);
        removed += 1;
        tracing::warn!(side = %path.display(), "removed a side instance left by a rewind that died");
    }
    removed
}

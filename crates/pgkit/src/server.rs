//! One PostgreSQL server process: create its data folder, start it, wait until it accepts
//! connections, stop it. The postmaster is our direct child in a process group of its own, so
//! the terminal's Ctrl-C reaches us first and we decide the order of shutdown.
//!
//! Invariant: a [`Server`] that is dropped stops its postmaster.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::{PgBinaries, PgKitError, RunAs};

/// How much PostgreSQL should care about surviving a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Defaults: fsync on. For `bulkhead up`.
    Durable,
    /// fsync, synchronous_commit and full_page_writes off. For tests only.
    Throwaway,
}

/// Everything needed to create and start one server.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// The data folder (PGDATA).
    pub data_dir: PathBuf,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// Name of the bootstrap superuser.
    pub superuser: String,
    /// Its password (SCRAM-SHA-256 over TCP).
    pub password: String,
    /// fsync or not.
    pub durability: Durability,
    /// Where the server's stdout and stderr go.
    pub log_file: PathBuf,
    /// Settings passed with `-c` after the defaults, so they override them.
    pub extra_settings: Vec<(String, String)>,
}

/// A running postmaster that we started.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    spec: ServerSpec,
}

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const FAST_STOP_TIMEOUT: Duration = Duration::from_secs(30);

impl Server {
    /// Runs initdb in `spec.data_dir` unless it already holds a cluster. Returns whether it did.
    pub fn init_if_needed(
        bins: &PgBinaries,
        run_as: &RunAs,
        spec: &ServerSpec,
    ) -> Result<bool, PgKitError> {
        if spec.data_dir.join("PG_VERSION").is_file() {
            return Ok(false);
        }
        run_as.check_reachable(&spec.data_dir)?;
        run_as.own_private_dir(&spec.data_dir)?;
        // The password file must be readable by the PostgreSQL account: keep it in the data
        // folder's parent only for the duration of initdb.
        let pwfile = spec.data_dir.with_extension("pwfile");
        write_private(&pwfile, &spec.password)?;
        if let RunAs::Account { uid, gid, .. } = run_as {
            nix::unistd::chown(&pwfile, Some((*uid).into()), Some((*gid).into())).map_err(|e| {
                PgKitError::Io {
                    context: "giving the password file to the PostgreSQL account".into(),
                    source: e.into(),
                }
            })?;
        }
        let mut cmd = Command::new(bins.program("initdb"));
        cmd.arg("-D")
            .arg(&spec.data_dir)
            .arg("-U")
            .arg(&spec.superuser)
            .arg(format!("--pwfile={}", pwfile.display()))
            .args([
                "--auth-host=scram-sha-256",
                "--auth-local=peer",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]);
        if spec.durability == Durability::Throwaway {
            cmd.arg("--no-sync");
        }
        run_as.apply(&mut cmd);
        let out = cmd.output().map_err(PgKitError::io("running initdb"));
        let _ = std::fs::remove_file(&pwfile);
        let out = out?;
        if !out.status.success() {
            return Err(PgKitError::InitDb {
                dir: spec.data_dir.clone(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(true)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(bins: &PgBinaries, run_as: &RunAs, spec: ServerSpec) -> Result<Self, PgKitError> {
        Self::start_within(bins, run_as, spec, READY_TIMEOUT)
    }

    /// Starts the server and waits up to `timeout` until it accepts connections (a hot
    /// standby does so while still recovering: check `pg_is_in_recovery()` if that matters).
    pub fn start_within(
        bins: &PgBinaries,
        run_as: &RunAs,
        spec: ServerSpec,
        timeout: Duration,
    ) -> Result<Self, PgKitError> {
        if let Some(pid) = running_postmaster(&spec.data_dir) {
            return Err(PgKitError::AlreadyRunning {
                pid,
                dir: spec.data_dir.clone(),
            });
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log_file)
            .map_err(PgKitError::io(format!(
                "opening {}",
                spec.log_file.display()
            )))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log_err = log
            .try_clone()
            .map_err(PgKitError::io("duplicating the log file handle"))?;
        let mut cmd = Command::new(bins.program("postgres"));
        cmd.arg("-D").arg(&spec.data_dir);
        for (key, value) in settings(&spec) {
            cmd.arg("-c").arg(format!("{key}={value}"));
        }
        for (key, value) in &spec.extra_settings {
            cmd.arg("-c").arg(format!("{key}={value}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        run_as.apply(&mut cmd);
        let child = cmd.spawn().map_err(PgKitError::io("starting postgres"))?;
        let mut server = Server {
            child: Some(child),
            spec,
        };
        if let Err(reason) = server.wait_ready(timeout) {
            let _ = server.stop();
            return Err(PgKitError::Start {
                port: server.spec.port,
                reason,
                log: server.spec.log_file.clone(),
                tail: log_tail(&server.spec.log_file, log_start),
            });
        }
        Ok(server)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let Some(pid) = self.pid() else {
            return Err("server process vanished".into());
        };
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("postgres exited during startup ({status})"));
                }
            }
            if postmaster_status(&self.spec.data_dir, pid).as_deref() == Some("ready") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after {}s", timeout.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The postmaster's process id, while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.spec.port
    }

    /// The bootstrap superuser's name.
    pub fn superuser(&self) -> &str {
        &self.spec.superuser
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.spec.data_dir
    }

    /// A libpq URL for the superuser on database `dbname`.
    pub fn dsn(&self, dbname: &str) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            self.spec.superuser, self.spec.password, self.spec.port, dbname
        )
    }

    /// Stops the server: fast shutdown (SIGINT), escalating to immediate (SIGQUIT) and then
    /// SIGKILL if it does not exit in time. Idempotent.
    pub fn stop(&mut self) -> Result<(), PgKitError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = Pid::from_raw(child.id() as i32);
        for (signal, wait) in [
            (Signal::SIGINT, FAST_STOP_TIMEOUT),
            (Signal::SIGQUIT, Duration::from_secs(5)),
            (Signal::SIGKILL, Duration::from_secs(5)),
        ] {
            let _ = kill(pid, signal);
            let deadline = Instant::now() + wait;
            while Instant::now() < deadline {
                match child.try_wait() {
                    Ok(Some(_)) => return Ok(()),
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                    Err(e) => {
                        return Err(PgKitError::Io {
                            context: "waiting for postgres to exit".into(),
                            source: e,
                        })
                    }
                }
            }
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn settings(spec: &ServerSpec) -> Vec<(&'static str, String)> {
    let mut s = vec![
        ("listen_addresses", "127.0.0.1".to_string()),
        ("port", spec.port.to_string()),
        ("unix_socket_directories", String::new()),
        ("wal_level", "logical".into()),
        ("max_connections", "300".into()),
        ("max_wal_senders", "20".into()),
        ("max_replication_slots", "20".into()),
        ("max_locks_per_transaction", "256".into()),
        ("password_encryption", "scram-sha-256".into()),
    ];
    if spec.durability == Durability::Durable {
        // Creating a database-mode tenant copies its template through WAL (PostgreSQL 15's
        // WAL_LOG strategy, about 8 MB a copy); with the 4 MB default WAL buffers that costs
        // 200-300 ms a tenant on this class of machine, with 64 MB about 30-80 ms.
        s.extend([
            ("shared_buffers", "512MB".to_string()),
            ("wal_buffers", "64MB".into()),
            ("max_wal_size", "4GB".into()),
        ]);
    }
    if spec.durability == Durability::Throwaway {
        s.extend([
            ("fsync", "off".to_string()),
            ("synchronous_commit", "off".into()),
            ("full_page_writes", "off".into()),
        ]);
    }
    s
}

/// The pid of a live postmaster recorded in `data_dir/postmaster.pid`, if any.
pub(crate) fn running_postmaster(data_dir: &Path) -> Option<i32> {
    postmaster_pid(data_dir).filter(|pid| *pid > 0 && process_running(*pid))
}

/// Line 8 of postmaster.pid (`starting`, `ready`, `stopping`) when its line 1 is `pid`.
fn postmaster_status(data_dir: &Path, pid: i32) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim().parse::<i32>().ok()? != pid {
        return None;
    }
    lines.nth(6).map(|s| s.trim().to_string())
}

fn write_private(path: &Path, content: &str) -> Result<(), PgKitError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(PgKitError::io(format!("writing {}", path.display())))?;
    f.write_all(content.as_bytes())
        .map_err(PgKitError::io(format!("writing {}", path.display())))
}

fn log_tail(path: &Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.seek(SeekFrom::Start(from));
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Whether process `pid` runs; a zombie (exited, not yet reaped) counts as gone.
pub fn process_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// The pid recorded in `data_dir/postmaster.pid`, whether or not it still runs.
pub fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Stops a postmaster we did not start (left by a process that died): fast shutdown, then
/// SIGKILL if it has not exited within 30 s.
pub fn stop_orphan(pid: i32) {
    let target = Pid::from_raw(pid);
    for (signal, wait) in [
        (Signal::SIGINT, Duration::from_secs(30)),
        (Signal::SIGKILL, Duration::from_secs(5)),
    ] {
        let _ = kill(target, signal);
        let deadline = Instant::now() + wait;
        while process_running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if !process_running(pid) {
            return;
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, PgKitError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(PgKitError::io("finding a free port"))?;
    let port = listener
        .local_addr()
        .map_err(PgKitError::io("finding a free port"))?
        .port();
    Ok(port)
}

/// A random password of 32 alphanumeric characters.
pub fn random_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

//! Runs the real `bulkhead` binary: `up` in a temporary data folder, and CLI commands
//! against it.

#![allow(dead_code)]

pub mod writes;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub const BIN: &str = env!("CARGO_BIN_EXE_bulkhead");

/// A temporary folder the PostgreSQL account can enter (tests may run as root).
pub fn workspace() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("bulkhead-test-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// A running `bulkhead up`; sent SIGTERM when dropped.
pub struct Up {
    child: Option<Child>,
    pub api_url: String,
    pub gateway: String,
    pub data_dir: PathBuf,
    pub stdout: Vec<String>,
}

/// `bulkhead --data-dir DIR up` on free ports (no port is shared between parallel tests).
pub fn up_command(data_dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir").arg(data_dir).args([
        "up",
        "--api-listen",
        "127.0.0.1:0",
        "--gateway-listen",
        "127.0.0.1:0",
    ]);
    cmd
}

impl Up {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = up_command(data_dir)
            .args(extra)
            .env("BULKHEAD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn bulkhead up");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining after the test stops listening, so the server never sees a
            // closed pipe because of the test.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut lines = Vec::new();
        let mut gateway = String::new();
        let api_url = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    panic!("bulkhead up did not report ready within 60s: {lines:?}")
                });
            lines.push(line.clone());
            if let Some(rest) = line.trim().strip_prefix("gateway") {
                gateway = rest
                    .split_whitespace()
                    .next()
                    .expect("gateway address")
                    .to_string();
            }
            if let Some(rest) = line.trim().strip_prefix("HTTP API") {
                break rest.split_whitespace().next().expect("url").to_string();
            }
        };
        Up {
            child: Some(child),
            api_url,
            gateway,
            data_dir: data_dir.to_path_buf(),
            stdout: lines,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child
            .as_ref()
            .map(|c| c.id() as i32)
            .unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.terminate().expect("was running")
    }

    fn terminate(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        for _ in 0..600 {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Runs a CLI command against this instance (found through the data folder).
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        cli(&self.data_dir, args)
    }

    /// `service create NAME` with the billing fixtures (`countries` as reference data) and
    /// `extra` arguments; asserts that it succeeded.
    pub fn billing_service(&self, name: &str, extra: &[&str]) -> CliOutput {
        let fixtures =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../provisioner/tests/fixtures/billing");
        let mut args = vec![
            "service",
            "create",
            name,
            "--migrations",
            fixtures.to_str().expect("utf8"),
            "--reference",
            "countries",
        ];
        args.extend_from_slice(extra);
        ok(self.cli(&args))
    }

    /// `tenant create SLUG --service SERVICE --mode MODE`, then `tenant key create SLUG`;
    /// asserts both succeeded and returns the new API key.
    pub fn tenant_with_key(&self, slug: &str, service: &str, mode: &str) -> String {
        ok(self.cli(&[
            "tenant",
            "create",
            slug,
            "--service",
            service,
            "--mode",
            mode,
        ]));
        ok(self.cli(&["tenant", "key", "create", slug]))
            .stdout
            .trim()
            .to_string()
    }

    /// The API's bearer token (from the instance file).
    pub fn api_token(&self) -> String {
        bulkhead_server::Instance::read(&self.data_dir)
            .expect("read")
            .expect("instance")
            .token
    }

    /// POSTs a JSON body to the API with the bearer token.
    pub async fn post_json(&self, path: &str, body: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}{path}", self.api_url))
            .bearer_auth(self.api_token())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("post")
    }

    /// A superuser DSN of the embedded PostgreSQL for `database`.
    pub fn postgres_dsn(&self, database: &str) -> String {
        let embedded: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(self.data_dir.join("embedded.json")).expect("embedded.json"),
        )
        .expect("json");
        let password = std::fs::read_to_string(self.data_dir.join("secrets/postgres-password"))
            .expect("password");
        format!(
            "host=127.0.0.1 port={} user=bulkhead password={} dbname={database}",
            embedded["port"],
            password.trim()
        )
    }
}

/// A copy of the billing fixtures' migration files in `dir/migrations`, to add files to.
pub fn billing_migrations(dir: &Path) -> PathBuf {
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).expect("mkdir");
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../provisioner/tests/fixtures/billing");
    for entry in std::fs::read_dir(&fixtures).expect("fixtures") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), migrations.join(entry.file_name())).expect("copy");
    }
    migrations
}

/// A running `bulkhead gateway` beside an `Up` (its own process); SIGTERM when dropped.
pub struct ExtraGateway {
    child: Option<Child>,
    /// Where it listens (host:port).
    pub addr: String,
}

impl ExtraGateway {
    /// `bulkhead --data-dir DIR gateway --listen 127.0.0.1:0` against `up`'s directory.
    pub fn start(up: &Up) -> Self {
        Self::start_on(up, "127.0.0.1:0")
    }

    /// The same on `listen` (a gateway restarted where the last one was).
    pub fn start_on(up: &Up, listen: &str) -> Self {
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(&up.data_dir)
            .args(["gateway", "--listen", listen])
            .env("BULKHEAD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn bulkhead gateway");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let addr = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("bulkhead gateway did not report ready within 60s");
            if let Some(rest) = line.trim().strip_prefix("gateway ") {
                break rest.split_whitespace().next().expect("address").to_string();
            }
        };
        ExtraGateway {
            child: Some(child),
            addr,
        }
    }
}

impl ExtraGateway {
    /// SIGKILL: the process dies at once, its sockets closed by the kernel.
    pub fn kill9(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

impl Drop for ExtraGateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            for _ in 0..200 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// `out`, asserting that the command succeeded (its output shown when not).
pub fn ok(out: CliOutput) -> CliOutput {
    assert_eq!(
        out.code, 0,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    out
}

/// A client logged in at the gateway `gateway` (host:port) to `service` as `user`.
pub async fn gateway_client(
    gateway: &str,
    service: &str,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (host, port) = gateway.rsplit_once(':').expect("host:port");
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port.parse().expect("port"))
        .dbname(service)
        .user(user)
        .password(password)
        .connect_timeout(Duration::from_secs(5));
    let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn cli(data_dir: &Path, args: &[&str]) -> CliOutput {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("BULKHEAD_URL")
        .env_remove("BULKHEAD_TOKEN")
        .output()
        .expect("run bulkhead");
    CliOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[allow(unused_imports)]
pub use bulkhead_pgkit::{postmaster_pid, process_running as alive};

//! The CLI's HTTP client: finds the running instance (through `--url` or the data folder's
//! instance file) and turns API error bodies into messages and exit codes.

use std::time::Duration;

use bulkhead_server::Instance;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::Cli;

/// A failed command: what to print and the process exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub message: String,
    pub code: u8,
}

/// Exit codes, documented in the README.
pub(crate) mod exit {
    pub const INTERNAL: u8 = 1;
    pub const INVALID: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const CONFLICT: u8 = 4;
    pub const UNSUITABLE: u8 = 5;
    pub const UNAUTHORIZED: u8 = 6;
    pub const UNREACHABLE: u8 = 7;
    pub const PARTIAL: u8 = 8;
    /// `verify` found a failure or `probe` a leak.
    pub const ISOLATION: u8 = 9;
}

impl Failure {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code,
        }
    }

    pub(crate) fn startup(e: impl std::fmt::Display) -> Self {
        Self::new(exit::INTERNAL, e.to_string())
    }
}

/// The exit code of an error kind.
pub(crate) fn code_of(kind: bulkhead_directory::ErrorKind) -> u8 {
    use bulkhead_directory::ErrorKind;
    match kind {
        ErrorKind::Invalid => exit::INVALID,
        ErrorKind::NotFound => exit::NOT_FOUND,
        ErrorKind::Conflict => exit::CONFLICT,
        ErrorKind::Unsuitable => exit::UNSUITABLE,
        ErrorKind::Internal => exit::INTERNAL,
    }
}

pub(crate) struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// The control database, when the instance was found through the data folder: long
    /// work then runs in this process and shows live progress.
    pub control_dsn: Option<String>,
    /// The data folder's secrets (the master key), under the same condition.
    pub secrets_dir: Option<std::path::PathBuf>,
}

impl ApiClient {
    pub(crate) fn resolve(cli: &Cli) -> Result<Self, Failure> {
        let (base, mut token, control_dsn) = match &cli.url {
            Some(url) => (url.trim_end_matches('/').to_string(), None, None),
            None => {
                let instance = Instance::read(&cli.data_dir)
                    .map_err(|e| Failure::new(exit::UNREACHABLE, e.to_string()))?
                    .ok_or_else(|| {
                        Failure::new(
                            exit::UNREACHABLE,
                            format!(
                                "no running Bulkhead found in {} (start one with `bulkhead up`, or point at one with --url)",
                                cli.data_dir.display()
                            ),
                        )
                    })?;
                (
                    instance.api_url,
                    Some(instance.token),
                    Some(instance.control_dsn),
                )
            }
        };
        if cli.token.is_some() {
            token = cli.token.clone();
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| {
                Failure::new(exit::INTERNAL, format!("cannot build an HTTP client: {e}"))
            })?;
        let secrets_dir = control_dsn.as_ref().map(|_| cli.data_dir.join("secrets"));
        Ok(Self {
            http,
            base,
            token,
            control_dsn,
            secrets_dir,
        })
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|e| {
            Failure::new(
                exit::UNREACHABLE,
                format!(
                    "Bulkhead at {} does not answer ({e}); is `bulkhead up` running?",
                    self.base
                ),
            )
        })?;
        let status = resp.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        let body: Value = resp.json().await.map_err(|e| {
            Failure::new(exit::INTERNAL, format!("unreadable answer from {url}: {e}"))
        })?;
        if status.is_success() {
            return Ok(body);
        }
        Err(failure_of(&body))
    }

    /// A request with a binary body or answer (archives).
    pub(crate) async fn call_bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, Failure> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method, &url)
            .timeout(Duration::from_secs(3600));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/octet-stream")
                .body(body);
        }
        let resp = req.send().await.map_err(|e| {
            Failure::new(
                exit::UNREACHABLE,
                format!("Bulkhead at {} does not answer ({e})", self.base),
            )
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| {
            Failure::new(exit::INTERNAL, format!("unreadable answer from {url}: {e}"))
        })?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Err(failure_of(&body))
    }
}

/// The failure an API error body describes.
fn failure_of(body: &Value) -> Failure {
    {
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("request failed")
            .to_string();
        let code = match body["error"]["kind"].as_str() {
            Some("invalid") => exit::INVALID,
            Some("not_found") => exit::NOT_FOUND,
            Some("conflict") => exit::CONFLICT,
            Some("unsuitable") => exit::UNSUITABLE,
            Some("unauthorized") => exit::UNAUTHORIZED,
            _ => exit::INTERNAL,
        };
        Failure::new(code, message)
    }
}

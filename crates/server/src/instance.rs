//! The instance file: how CLI commands in another terminal find the running server.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::datadir::write_private;
use crate::ServerError;

/// What a running `bulkhead up` publishes in `<data dir>/instance.json` (mode 0600).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Instance {
    /// The server's process id.
    pub pid: u32,
    /// Base URL of the HTTP API.
    pub api_url: String,
    /// The API's bearer token.
    pub token: String,
    /// The read-only console token (also a bearer token for GET requests).
    #[serde(default)]
    pub console_token: Option<String>,
    /// The control database's DSN, so local CLI commands can run long work themselves and
    /// show progress (a secret: the file is 0600).
    pub control_dsn: String,
    /// When it started (RFC 3339).
    pub started_at: String,
}

impl Instance {
    /// The instance file of a data folder.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("instance.json")
    }

    /// Reads the instance file of `data_dir`, if there is one.
    pub fn read(data_dir: &Path) -> Result<Option<Self>, ServerError> {
        let path = Self::path(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| ServerError::Io {
                    context: format!("reading {}", path.display()),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ServerError::io(format!("reading {}", path.display()))(e)),
        }
    }

    pub(crate) fn write(&self, data_dir: &Path) -> Result<(), ServerError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| ServerError::Io {
            context: "encoding the instance file".into(),
            source: std::io::Error::other(e),
        })?;
        write_private(&Self::path(data_dir), &text)
    }

    pub(crate) fn remove(data_dir: &Path) {
        let _ = std::fs::remove_file(Self::path(data_dir));
    }
}

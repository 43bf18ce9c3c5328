//! pgBackRest, the tool that does the WAL work: one stanza per cluster, run as the PostgreSQL
//! account (it reads the data folder and owns the repository). We call its commands and read
//! its JSON; we never touch the repository's files ourselves.

use std::path::PathBuf;
use std::process::Command;

use bulkhead_pgkit::RunAs;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::PitrError;

/// A cluster's stanza and the configuration file that describes it.
#[derive(Debug, Clone)]
pub struct Repo {
    /// The stanza.
    pub stanza: String,
    /// pgBackRest's configuration file.
    pub config: PathBuf,
    run_as: RunAs,
}

/// One base backup in the repository.
#[derive(Debug, Clone, Serialize)]
pub struct BaseBackup {
    /// pgBackRest's label (`--set` on restore).
    pub label: String,
    /// full, diff or incr.
    pub kind: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it stopped: the earliest instant it can be recovered to.
    pub stopped_at: DateTime<Utc>,
    /// The cluster's size it copied.
    pub bytes: i64,
    /// What it takes in the repository.
    pub repo_bytes: i64,
}

/// What `pgbackrest info` says of the stanza.
#[derive(Debug, Clone)]
pub struct Info {
    /// Its status message (`ok`, or why not).
    pub status: String,
    /// Base backups, oldest first.
    pub backups: Vec<BaseBackup>,
    /// The oldest and newest WAL segment in the archive.
    pub wal: Option<(String, String)>,
}

#[derive(Deserialize)]
struct RawStanza {
    status: RawStatus,
    #[serde(default)]
    backup: Vec<RawBackup>,
    #[serde(default)]
    archive: Vec<RawArchive>,
}

#[derive(Deserialize)]
struct RawStatus {
    message: String,
}

#[derive(Deserialize)]
struct RawBackup {
    label: String,
    #[serde(rename = "type")]
    kind: String,
    timestamp: RawStamp,
    info: RawSizes,
    #[serde(default)]
    error: Option<bool>,
}

#[derive(Deserialize)]
struct RawStamp {
    start: i64,
    stop: i64,
}

#[derive(Deserialize)]
struct RawSizes {
    size: i64,
    repository: RawRepoSize,
}

#[derive(Deserialize)]
struct RawRepoSize {
    #[serde(default)]
    delta: i64,
}

#[derive(Deserialize)]
struct RawArchive {
    min: Option<String>,
    max: Option<String>,
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).single().unwrap_or_default()
}

impl Repo {
    /// The stanza `stanza` configured in `config`.
    pub fn new(stanza: &str, config: PathBuf) -> Result<Self, PitrError> {
        Ok(Self {
            stanza: stanza.to_string(),
            config,
            run_as: RunAs::detect()?,
        })
    }

    /// Runs `pgbackrest <command> <args>` for the stanza; its standard output.
    pub async fn run(&self, command: &str, args: &[String]) -> Result<String, PitrError> {
        let mut cmd = Command::new("pgbackrest");
        cmd.arg(format!("--config={}", self.config.display()))
            .arg(format!("--stanza={}", self.stanza))
            .arg("--log-level-console=error")
            .args(args)
            .arg(command);
        self.run_as.apply(&mut cmd);
        let command = command.to_string();
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .map_err(|e| PitrError::Io {
                context: format!("running pgbackrest {command}"),
                source: std::io::Error::other(e),
            })?
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    PitrError::Tool {
                        command: command.clone(),
                        output: "pgbackrest is not installed (Debian: apt-get install pgbackrest)"
                            .into(),
                    }
                } else {
                    PitrError::Io {
                        context: format!("running pgbackrest {command}"),
                        source: e,
                    }
                }
            })?;
        if !out.status.success() {
            return Err(PitrError::Tool {
                command,
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates the stanza (idempotent: an existing one that matches is kept).
    pub async fn create_stanza(&self) -> Result<(), PitrError> {
        self.run("stanza-create", &[]).await.map(|_| ())
    }

    /// Takes a base backup: full, or incremental on the newest one.
    pub async fn backup(&self, full: bool) -> Result<(), PitrError> {
        let kind = if full { "full" } else { "incr" };
        self.run("backup", &[format!("--type={kind}")])
            .await
            .map(|_| ())
    }

    /// Removes base backups (and the WAL only they need) beyond the newest `keep` full ones.
    pub async fn expire(&self, keep: u32) -> Result<(), PitrError> {
        self.run("expire", &[format!("--repo1-retention-full={keep}")])
            .await
            .map(|_| ())
    }

    /// The stanza's backups and archive.
    pub async fn info(&self) -> Result<Info, PitrError> {
        let text = self.run("info", &["--output=json".into()]).await?;
        let stanzas: Vec<RawStanza> = serde_json::from_str(&text).map_err(|e| PitrError::Tool {
            command: "info".into(),
            output: format!("unreadable JSON ({e}): {text}"),
        })?;
        let Some(s) = stanzas.into_iter().next() else {
            return Err(PitrError::Tool {
                command: "info".into(),
                output: format!("no stanza {} in the repository", self.stanza),
            });
        };
        let mut backups: Vec<BaseBackup> = s
            .backup
            .into_iter()
            .filter(|b| b.error != Some(true))
            .map(|b| BaseBackup {
                label: b.label,
                kind: b.kind,
                started_at: at(b.timestamp.start),
                stopped_at: at(b.timestamp.stop),
                bytes: b.info.size,
                repo_bytes: b.info.repository.delta,
            })
            .collect();
        backups.sort_by_key(|b| b.stopped_at);
        let wal = s
            .archive
            .into_iter()
            .filter_map(|a| Some((a.min?, a.max?)))
            .next();
        Ok(Info {
            status: s.status.message,
            backups,
            wal,
        })
    }
}

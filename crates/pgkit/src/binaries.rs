//! Finding the PostgreSQL server binaries: BULKHEAD_PG_BINDIR alone when it is set (an
//! explicit choice is never silently replaced), otherwise `pg_config --bindir`, then PATH,
//! then `/usr/lib/postgresql/*/bin` (newest major version first).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::PgKitError;

/// The folder holding `initdb` and `postgres`, and the version they report.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    bindir: PathBuf,
    version: String,
}

impl PgBinaries {
    /// Locates the newest usable PostgreSQL server binaries on this machine.
    pub fn locate() -> Result<Self, PgKitError> {
        let candidates = candidate_dirs();
        for dir in &candidates {
            if is_server_bindir(dir) {
                let version = server_version(dir)?;
                return Ok(Self {
                    bindir: dir.clone(),
                    version,
                });
            }
        }
        let searched = candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Err(PgKitError::BinariesNotFound { searched })
    }

    /// Path of one of the PostgreSQL programs (`initdb`, `postgres`, `pg_dump`, ...).
    pub fn program(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    /// The folder the binaries were found in.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The version line of `postgres --version`, e.g. `postgres (PostgreSQL) 15.18`.
    pub fn version(&self) -> &str {
        &self.version
    }
}

fn is_server_bindir(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

fn server_version(dir: &Path) -> Result<String, PgKitError> {
    let out = Command::new(dir.join("postgres"))
        .arg("--version")
        .output()
        .map_err(PgKitError::io(format!(
            "running {}/postgres --version",
            dir.display()
        )))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("BULKHEAD_PG_BINDIR") {
        return vec![PathBuf::from(dir)];
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.extend(versioned_dirs(Path::new("/usr/lib/postgresql")));
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    dirs
}

/// `/usr/lib/postgresql/<major>/bin`, newest major version first.
fn versioned_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major = e.file_name().to_str()?.split('.').next()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    versions.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_dirs_are_newest_first() {
        let root = tempfile::tempdir().expect("tempdir");
        for v in ["9.6", "15", "13", "16"] {
            std::fs::create_dir_all(root.path().join(v).join("bin")).expect("mkdir");
        }
        let found: Vec<String> = versioned_dirs(root.path())
            .iter()
            .map(|p| {
                p.parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(found, ["16", "15", "13", "9.6"]);
    }
}

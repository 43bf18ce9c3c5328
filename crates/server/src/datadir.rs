//! The data folder (`./.bulkhead` by default): the embedded cluster's files, secrets, the
//! instance file CLI commands read, and the lock that keeps a second `up` out.
//!
//! Layout: `lock`, `instance.json`, `embedded.json`, `secrets/` (0700), `pgdata/` (owned by
//! the PostgreSQL account), `postgres.log`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};

use crate::ServerError;

/// A data folder held exclusively by this process; clones share the lock, which is released
/// when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    _lock: Arc<Flock<File>>,
}

impl DataDir {
    /// Creates (if needed) and locks the data folder; refuses if another process holds it.
    pub fn acquire(path: &Path) -> Result<Self, ServerError> {
        std::fs::create_dir_all(path).map_err(ServerError::io(format!(
            "creating data folder {}",
            path.display()
        )))?;
        let root = path
            .canonicalize()
            .map_err(ServerError::io(format!("resolving {}", path.display())))?;
        let lock_path = root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(ServerError::io(format!("opening {}", lock_path.display())))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, _)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(ServerError::DataDirInUse {
                    pid: pid.trim().to_string(),
                    dir: root,
                });
            }
        };
        lock.set_len(0)
            .map_err(ServerError::io("writing the lock file"))?;
        lock.write_all(std::process::id().to_string().as_bytes())
            .map_err(ServerError::io("writing the lock file"))?;
        let dir = Self {
            root,
            _lock: Arc::new(lock),
        };
        std::fs::create_dir_all(dir.secrets_dir())
            .map_err(ServerError::io("creating the secrets folder"))?;
        std::fs::set_permissions(dir.secrets_dir(), std::fs::Permissions::from_mode(0o700))
            .map_err(ServerError::io("protecting the secrets folder"))?;
        Ok(dir)
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The embedded cluster's PGDATA.
    pub fn pgdata(&self) -> PathBuf {
        self.root.join("pgdata")
    }

    /// The embedded cluster's log.
    pub fn postgres_log(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// Where secrets (passwords, tokens, keys) are kept, readable by this account only.
    pub fn secrets_dir(&self) -> PathBuf {
        self.root.join("secrets")
    }

    /// A secret by name: read it, or generate and store it on first use.
    pub fn secret(
        &self,
        name: &str,
        generate: impl FnOnce() -> String,
    ) -> Result<String, ServerError> {
        let path = self.secrets_dir().join(name);
        match std::fs::read_to_string(&path) {
            Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ServerError::io(format!("reading {}", path.display()))(e)),
        }
        let value = generate();
        write_private(&path, &value)?;
        Ok(value)
    }
}

/// Writes `content` to `path` with mode 0600, atomically (write then rename).
pub(crate) fn write_private(path: &Path, content: &str) -> Result<(), ServerError> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(ServerError::io(format!("writing {}", tmp.display())))?;
    f.write_all(content.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(ServerError::io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(ServerError::io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let tmp = tempfile::tempdir().expect("tmp");
        let first = DataDir::acquire(tmp.path()).expect("first");
        let err = DataDir::acquire(tmp.path()).expect_err("second");
        assert!(
            err.to_string().contains(&std::process::id().to_string()),
            "{err}"
        );
        drop(first);
        DataDir::acquire(tmp.path()).expect("free again after the first is dropped");
    }

    #[test]
    fn secrets_are_generated_once_and_private() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = DataDir::acquire(tmp.path()).expect("dir");
        let a = dir.secret("token", || "first".into()).expect("a");
        let b = dir.secret("token", || "second".into()).expect("b");
        assert_eq!((a.as_str(), b.as_str()), ("first", "first"));
        let mode = std::fs::metadata(dir.secrets_dir().join("token"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

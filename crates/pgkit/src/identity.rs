//! Which operating-system account runs PostgreSQL. PostgreSQL refuses to run as root, so when
//! we are root we run it as an unprivileged account (`postgres`, or BULKHEAD_PG_USER) and hand
//! that account the folders it needs.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::unistd::{chown, Gid, Uid, User};

use crate::PgKitError;

/// The account PostgreSQL processes run as.
#[derive(Debug, Clone)]
pub enum RunAs {
    /// We are not root: PostgreSQL runs as us.
    Current,
    /// We are root: PostgreSQL runs as this unprivileged account.
    Account {
        /// Its name, for messages.
        name: String,
        /// Its user id.
        uid: u32,
        /// Its primary group id.
        gid: u32,
    },
}

impl RunAs {
    /// Chooses the account: ourselves unless we are root.
    pub fn detect() -> Result<Self, PgKitError> {
        if !Uid::effective().is_root() {
            return Ok(RunAs::Current);
        }
        let name = std::env::var("BULKHEAD_PG_USER").unwrap_or_else(|_| "postgres".to_string());
        match User::from_name(&name) {
            Ok(Some(user)) if !user.uid.is_root() => Ok(RunAs::Account {
                name,
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
            }),
            _ => Err(PgKitError::NoUnprivilegedUser(name)),
        }
    }

    /// The account's name (PostgreSQL's peer authentication over a Unix socket maps it to
    /// the database role of the same name).
    pub fn name(&self) -> Result<String, PgKitError> {
        match self {
            RunAs::Account { name, .. } => Ok(name.clone()),
            RunAs::Current => match User::from_uid(Uid::effective()) {
                Ok(Some(user)) => Ok(user.name),
                _ => Err(PgKitError::NoUnprivilegedUser(format!(
                    "uid {}",
                    Uid::effective()
                ))),
            },
        }
    }

    /// Makes `cmd` run as this account.
    pub fn apply(&self, cmd: &mut Command) {
        if let RunAs::Account { uid, gid, .. } = self {
            // std also clears root's supplementary groups before switching the uid.
            cmd.uid(*uid).gid(*gid);
        }
    }

    /// Creates `dir` (and parents) if missing and makes it private to this account (0700).
    pub fn own_private_dir(&self, dir: &Path) -> Result<(), PgKitError> {
        std::fs::create_dir_all(dir)
            .map_err(PgKitError::io(format!("creating {}", dir.display())))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
            PgKitError::io(format!("setting permissions of {}", dir.display())),
        )?;
        if let RunAs::Account { uid, gid, .. } = self {
            chown(dir, Some(Uid::from_raw(*uid)), Some(Gid::from_raw(*gid))).map_err(|e| {
                PgKitError::Io {
                    context: format!("giving {} to the PostgreSQL account", dir.display()),
                    source: e.into(),
                }
            })?;
        }
        Ok(())
    }

    /// Checks that this account can enter every folder above `dir`, so that a data folder
    /// under, say, `/root` is refused with a clear message instead of an initdb failure.
    pub fn check_reachable(&self, dir: &Path) -> Result<(), PgKitError> {
        let RunAs::Account { name, uid, gid } = self else {
            return Ok(());
        };
        let mut cur = dir.parent();
        while let Some(p) = cur {
            if let Ok(meta) = std::fs::metadata(p) {
                use std::os::unix::fs::MetadataExt;
                let mode = meta.mode();
                let can_enter = if meta.uid() == *uid {
                    mode & 0o100 != 0
                } else if meta.gid() == *gid {
                    mode & 0o010 != 0
                } else {
                    mode & 0o001 != 0
                };
                if !can_enter {
                    return Err(PgKitError::NotReachable {
                        user: name.clone(),
                        path: p.to_path_buf(),
                    });
                }
            }
            cur = p.parent();
        }
        Ok(())
    }

    /// Lets this account enter (but not list) `dir`, which we own: 0711 when we are root.
    pub fn allow_traverse(&self, dir: &Path) -> Result<(), PgKitError> {
        if matches!(self, RunAs::Account { .. }) {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).map_err(
                PgKitError::io(format!("setting permissions of {}", dir.display())),
            )?;
        }
        Ok(())
    }
}

//! Turning continuous archiving on for a cluster: a folder holding pgBackRest's repository,
//! configuration, logs, locks and the side instances' scratch folders; the server settings
//! that make PostgreSQL push every WAL segment there; the stanza, a role for pgBackRest and a
//! first full base backup; the cluster's registration in the directory.
//!
//! pgBackRest talks to PostgreSQL over a Unix socket only, authenticated by the operating
//! system (peer): the server gets a socket in this folder (private to the PostgreSQL account)
//! and a superuser role named after that account, usable by nobody else.

use std::path::{Path, PathBuf};

use bulkhead_directory::{ClusterPitr, Directory};
use bulkhead_model::ClusterName;
use bulkhead_pgkit::RunAs;
use bulkhead_provisioner::admin_connect;
use bulkhead_provisioner::naming::ident;

use crate::repo::Repo;
use crate::PitrError;

/// How often PostgreSQL closes a WAL segment that is not full, so the archive is never
/// more than this behind on a quiet cluster.
pub const ARCHIVE_TIMEOUT_S: u32 = 60;

/// The folder of one cluster's archiving.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    stanza: String,
}

impl Layout {
    /// Archiving of stanza `stanza` under `root`.
    pub fn new(root: &Path, stanza: &str) -> Self {
        Self {
            root: root.to_path_buf(),
            stanza: stanza.to_string(),
        }
    }

    /// pgBackRest's configuration file.
    pub fn config(&self) -> PathBuf {
        self.root.join("pgbackrest.conf")
    }

    /// The repository (posix; object storage is a matter of configuration, see the README).
    pub fn repository(&self) -> PathBuf {
        self.root.join("repo")
    }

    /// The Unix socket folder pgBackRest reaches the server through.
    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("sock")
    }

    /// Where side instances are restored.
    pub fn work_dir(&self) -> PathBuf {
        self.root.join("side")
    }

    /// Settings the server needs (set when it starts: `archive_mode` needs a restart).
    pub fn server_settings(&self) -> Vec<(String, String)> {
        vec![
            ("archive_mode".into(), "on".into()),
            (
                "archive_command".into(),
                format!(
                    "pgbackrest --config='{}' --stanza={} archive-push %p",
                    self.config().display(),
                    self.stanza
                ),
            ),
            ("archive_timeout".into(), format!("{ARCHIVE_TIMEOUT_S}s")),
            (
                "unix_socket_directories".into(),
                self.socket_dir().display().to_string(),
            ),
        ]
    }

    /// Creates the folders (owned by the PostgreSQL account) and writes the configuration
    /// for a server whose data folder is `pg_path`, listening on `port`.
    pub fn prepare(&self, pg_path: &Path, port: u16) -> Result<(), PitrError> {
        self.create_folders()?;
        self.write_config(pg_path, port)
    }

    /// Creates the folders, owned by the PostgreSQL account (the socket folder must exist
    /// before the server starts).
    pub fn create_folders(&self) -> Result<(), PitrError> {
        let run_as = RunAs::detect()?;
        run_as.own_private_dir(&self.root)?;
        run_as.allow_traverse(&self.root)?;
        for d in ["repo", "log", "lock", "spool", "sock", "side"] {
            run_as.own_private_dir(&self.root.join(d))?;
        }
        Ok(())
    }

    /// Writes pgBackRest's configuration for a server whose data folder is `pg_path`,
    /// listening on `port`.
    pub fn write_config(&self, pg_path: &Path, port: u16) -> Result<(), PitrError> {
        let run_as = RunAs::detect()?;
        let text = format!(
            "# Written by Bulkhead: continuous archiving of one cluster (see the README).\n\
             [global]\n\
             repo1-path={repo}\n\
             repo1-retention-full=4\n\
             log-path={root}/log\n\
             lock-path={root}/lock\n\
             spool-path={root}/spool\n\
             log-level-file=info\n\
             start-fast=y\n\
             compress-type=lz4\n\
             process-max=2\n\
             \n\
             [{stanza}]\n\
             pg1-path={pg}\n\
             pg1-port={port}\n\
             pg1-socket-path={sock}\n\
             pg1-user={user}\n",
            repo = self.repository().display(),
            root = self.root.display(),
            stanza = self.stanza,
            pg = pg_path.display(),
            sock = self.socket_dir().display(),
            user = run_as.name()?,
        );
        let path = self.config();
        std::fs::write(&path, text)
            .map_err(PitrError::io(format!("writing {}", path.display())))?;
        if let RunAs::Account { uid, gid, .. } = run_as {
            nix::unistd::chown(&path, Some(uid.into()), Some(gid.into())).map_err(|e| {
                PitrError::Io {
                    context: format!("giving {} to the PostgreSQL account", path.display()),
                    source: e.into(),
                }
            })?;
        }
        Ok(())
    }
}

/// Turns point-in-time recovery on for `cluster`, whose server was started with
/// [`Layout::server_settings`] after [`Layout::prepare`]: the role pgBackRest logs in as, the
/// stanza, a first full base backup unless the repository has one, the directory's record.
pub async fn enable(
    dir: &Directory,
    cluster: &ClusterName,
    layout: &Layout,
) -> Result<ClusterPitr, PitrError> {
    let c = dir.cluster(cluster).await?;
    let admin = admin_connect(&c, "postgres").await?;
    let mode: String = admin
        .query_one("SELECT current_setting('archive_mode')", &[])
        .await
        .map_err(PitrError::sql("reading archive_mode"))?
        .get(0);
    if mode == "off" {
        return Err(PitrError::Refused(format!(
            "cluster {cluster} runs with archive_mode = off: start it with {} (archive_mode needs a restart)",
            layout
                .server_settings()
                .iter()
                .map(|(k, v)| format!("{k} = '{v}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let account = RunAs::detect()?.name()?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&account])
        .await
        .map_err(PitrError::sql("looking up pgBackRest's role"))?
        .is_some();
    if !exists {
        admin
            .batch_execute(&format!("CREATE ROLE {} SUPERUSER LOGIN", ident(&account)))
            .await
            .map_err(PitrError::sql("creating pgBackRest's role"))?;
    }
    admin.release();
    let repo = Repo::new(&layout.stanza, layout.config())?;
    repo.create_stanza().await?;
    if repo.info().await?.backups.is_empty() {
        repo.backup(true).await?;
    }
    let record = dir
        .set_cluster_pitr(
            cluster,
            &layout.stanza,
            &layout.config().display().to_string(),
            &layout.work_dir().display().to_string(),
        )
        .await?;
    tracing::info!(%cluster, stanza = %layout.stanza, "point-in-time recovery is on");
    Ok(record)
}

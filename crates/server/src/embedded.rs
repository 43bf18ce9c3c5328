//! The embedded PostgreSQL of `bulkhead up` without configuration: a durable cluster in
//! `<data dir>/pgdata`, on a port chosen once and kept in `embedded.json`, with a generated
//! superuser password kept in `secrets/`.

use bulkhead_pgkit::{
    free_port, random_password, stop_orphan, Durability, PgBinaries, PgKitError, RunAs, Server,
    ServerSpec,
};
use serde::{Deserialize, Serialize};

use crate::datadir::write_private;
use crate::{DataDir, ServerError};

#[derive(Serialize, Deserialize)]
struct EmbeddedState {
    port: u16,
}

/// Creates (first run) and starts the embedded cluster, archiving its WAL into `pitr`'s
/// repository when given. Blocking: call from `spawn_blocking`.
pub(crate) fn start(
    dir: &DataDir,
    pitr: Option<&bulkhead_pitr::Layout>,
) -> Result<Server, ServerError> {
    let bins = PgBinaries::locate()?;
    let run_as = RunAs::detect()?;
    run_as.check_reachable(&dir.root().join("pgdata"))?;
    run_as.allow_traverse(dir.root())?;
    let state_path = dir.root().join("embedded.json");
    let state = match std::fs::read_to_string(&state_path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| ServerError::Io {
            context: format!("reading {}", state_path.display()),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?,
        Err(_) => {
            let state = EmbeddedState { port: free_port()? };
            let text = serde_json::to_string(&state).map_err(|e| ServerError::Io {
                context: "encoding embedded.json".into(),
                source: std::io::Error::other(e),
            })?;
            write_private(&state_path, &text)?;
            state
        }
    };
    let spec = ServerSpec {
        data_dir: dir.pgdata(),
        port: state.port,
        superuser: "bulkhead".into(),
        password: dir.secret("postgres-password", random_password)?,
        durability: Durability::Durable,
        log_file: dir.postgres_log(),
        extra_settings: Vec::new(),
    };
    let mut spec = spec;
    if let Some(layout) = pitr {
        layout
            .prepare(&spec.data_dir, spec.port)
            .map_err(|e| ServerError::Io {
                context: "preparing WAL archiving".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
        spec.extra_settings.extend(layout.server_settings());
    }
    if Server::init_if_needed(&bins, &run_as, &spec)? {
        tracing::info!(data = %spec.data_dir.display(), "created the embedded PostgreSQL cluster");
    }
    match Server::start(&bins, &run_as, spec.clone()) {
        Err(PgKitError::AlreadyRunning { pid, .. }) => {
            // We hold the data folder's lock, so this postmaster belongs to an earlier
            // Bulkhead that died without stopping it. Stop it and start our own.
            tracing::warn!(
                pid,
                "stopping a PostgreSQL left running by an earlier Bulkhead"
            );
            stop_orphan(pid);
            Ok(Server::start(&bins, &run_as, spec)?)
        }
        other => Ok(other?),
    }
}

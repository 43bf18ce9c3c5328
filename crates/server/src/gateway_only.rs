//! `bulkhead gateway`: a gateway process of its own, without the embedded cluster, the API
//! or the schedules, against the directory of an installation that `bulkhead up` runs.
//! Several of them (and `up`'s own gateway) serve the same tenants at once: each hears
//! every directory change (suspensions, revoked keys, a move's hold and switch) on the
//! directory's notification channel.
//!
//! Invariant: it never migrates the directory and never makes a master key: a directory of
//! another version, or a missing key (the audit log's MACs would not verify), stops it before
//! it accepts a client.

use std::path::PathBuf;

use bulkhead_directory::{Directory, SCHEMA_VERSION};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::{Config, ServerError};

/// What `bulkhead gateway` needs.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// The control database (the `control_dsn` of `up`'s instance file, or `[control] dsn`).
    pub control_dsn: String,
    /// Where the installation's `master.key` is (unless `BULKHEAD_MASTER_KEY` is set).
    pub secrets_dir: PathBuf,
    /// Gateway settings (`[gateway]`, `[limits]`, `[metering]`); `gateway.listen` is where
    /// it listens.
    pub config: Config,
}

/// Runs a gateway until SIGINT or SIGTERM; `on_ready` gets the address it listens on.
pub async fn gateway(
    opts: GatewayOptions,
    on_ready: impl FnOnce(std::net::SocketAddr),
) -> Result<(), ServerError> {
    let mut terminate = signal(SignalKind::terminate())
        .map_err(ServerError::io("installing the SIGTERM handler"))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(ServerError::io("installing the SIGINT handler"))?;
    let directory = Directory::connect(&opts.control_dsn).await?;
    let version = directory.schema_version().await?;
    if version != SCHEMA_VERSION {
        return Err(ServerError::Gateway(if version < SCHEMA_VERSION {
            format!("the directory is at schema version {version} and this gateway needs {SCHEMA_VERSION}: start `bulkhead up` of this version first (it migrates the directory)")
        } else {
            format!("the directory is at schema version {version}, newer than this gateway knows ({SCHEMA_VERSION}): upgrade this gateway")
        }));
    }
    let master = bulkhead_keys::MasterKey::load_existing(&opts.secrets_dir)
        .map_err(|e| ServerError::Gateway(format!("loading the master key: {e}")))?
        .ok_or_else(|| {
            ServerError::Gateway(format!(
                "no master key at {}: a gateway records in the installation's audit log and needs its key; copy the data folder's secrets/master.key there or set {}",
                opts.secrets_dir.join("master.key").display(),
                bulkhead_keys::MASTER_KEY_ENV
            ))
        })?;
    let audit = bulkhead_audit::AuditLog::new(directory.clone(), master);
    let audit_writer = audit.writer();
    let settings = crate::run::gateway_settings(&opts.config, audit_writer.clone())?;
    let listener = TcpListener::bind(&opts.config.gateway.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: opts.config.gateway.listen.clone(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(ServerError::io("reading the gateway address"))?;
    let std_listener = listener
        .into_std()
        .map_err(ServerError::io("handing over the gateway listener"))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = bulkhead_gateway::start(
        opts.control_dsn.clone(),
        settings,
        std_listener,
        opts.config.gateway.threads,
        stop_rx,
    )
    .await
    .map_err(|e| ServerError::Gateway(e.to_string()))?;
    on_ready(addr);
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received, stopping the gateway"),
        _ = interrupt.recv() => tracing::info!("SIGINT received, stopping the gateway"),
    }
    let _ = stop_tx.send(true);
    running.stopped().await;
    audit_writer.flush().await;
    Ok(())
}

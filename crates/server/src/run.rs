//! The lifecycle of `bulkhead up`.

use std::path::PathBuf;
use std::str::FromStr;

use bulkhead_api::ApiState;
use bulkhead_directory::{ensure_database, Directory, NewCluster};
use bulkhead_model::{ClusterName, Region};
use bulkhead_pgkit::{random_password, Server};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::{embedded, Config, DataDir, Instance, ServerError};

/// What `up` needs.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The data folder.
    pub data_dir: PathBuf,
    /// The validated configuration.
    pub config: Config,
}

/// Where everything listens, handed to the caller once all of it is up.
#[derive(Debug, Clone)]
pub struct Ready {
    /// The data folder.
    pub data_dir: PathBuf,
    /// The embedded PostgreSQL's address and data folder, when embedded.
    pub embedded_postgres: Option<(String, PathBuf)>,
    /// The HTTP API's base URL.
    pub api_url: String,
    /// Where the gateway listens.
    pub gateway: String,
    /// The clusters registered at start.
    pub clusters: Vec<String>,
}

/// The name of the control database on the embedded cluster.
pub const CONTROL_DATABASE: &str = "bulkhead";

/// Runs until SIGINT or SIGTERM, then stops everything it started.
pub async fn up(opts: UpOptions, on_ready: impl FnOnce(&Ready)) -> Result<(), ServerError> {
    let dir = DataDir::acquire(&opts.data_dir)?;
    let mut postgres: Option<Server> = None;
    let result = serve(&dir, &opts.config, &mut postgres, on_ready).await;
    Instance::remove(dir.root());
    if let Some(mut server) = postgres {
        tracing::info!("stopping the embedded PostgreSQL");
        let stopped = tokio::task::spawn_blocking(move || server.stop()).await;
        if let Ok(Err(e)) = stopped {
            tracing::error!(error = %e, "stopping the embedded PostgreSQL failed");
        }
    }
    result
}

async fn serve(
    dir: &DataDir,
    config: &Config,
    postgres: &mut Option<Server>,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), ServerError> {
    let mut terminate = signal(SignalKind::terminate())
        .map_err(ServerError::io("installing the SIGTERM handler"))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(ServerError::io("installing the SIGINT handler"))?;

    let pitr = embedded_pitr(dir, config);
    let (control_dsn, local) = match &config.control {
        Some(control) => (control.dsn.clone(), None),
        None => {
            let held = dir.clone();
            let layout = pitr.clone();
            let server =
                tokio::task::spawn_blocking(move || embedded::start(&held, layout.as_ref()))
                    .await
                    .map_err(|e| {
                        ServerError::io("starting the embedded PostgreSQL")(std::io::Error::other(
                            e,
                        ))
                    })??;
            ensure_database(&server.dsn("postgres"), CONTROL_DATABASE).await?;
            let dsn = server.dsn(CONTROL_DATABASE);
            let local = (
                server.dsn("postgres"),
                server.port(),
                server.data_dir().to_path_buf(),
            );
            *postgres = Some(server);
            (dsn, Some(local))
        }
    };

    let directory = Directory::connect(&control_dsn).await?;
    let report = directory.migrate().await?;
    if !report.applied.is_empty() {
        tracing::info!(applied = ?report.applied, "migrated the directory schema");
    }
    warn_of_unfinished_moves(&directory).await;
    let mut clusters = Vec::new();
    if let Some((admin_dsn, _, _)) = &local {
        let c = bulkhead_provisioner::upsert_cluster(&directory, &local_cluster(admin_dsn)).await?;
        clusters.push(c.name.to_string());
    }
    for c in &config.clusters {
        let registered = bulkhead_provisioner::upsert_cluster(
            &directory,
            &NewCluster {
                name: c.name.clone(),
                region: c.region.clone(),
                admin_dsn: c.admin_dsn.clone(),
                capacity: c.capacity,
            },
        )
        .await?;
        clusters.push(registered.name.to_string());
    }
    prepare_other_clusters(&directory, &clusters).await;
    upgrade_names(&directory).await;
    warn_of_id_shaped_slugs(&directory).await;

    let listener = TcpListener::bind(&config.api.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.api.listen.clone(),
            source,
        })?;
    let api_addr = listener
        .local_addr()
        .map_err(ServerError::io("reading the API address"))?;
    let gateway_listener = TcpListener::bind(&config.gateway.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.gateway.listen.clone(),
            source,
        })?;
    let gateway_addr = gateway_listener
        .local_addr()
        .map_err(ServerError::io("reading the gateway address"))?;
    let token = match &config.api.token {
        Some(t) => t.clone(),
        None => dir.secret("api-token", random_password)?,
    };
    let console_token = match &config.api.console_token {
        Some(t) => t.clone(),
        None => dir.secret("console-token", random_password)?,
    };
    let api_url = format!("http://{api_addr}");
    Instance {
        pid: std::process::id(),
        api_url: api_url.clone(),
        token: token.clone(),
        console_token: Some(console_token.clone()),
        control_dsn: control_dsn.clone(),
        started_at: chrono::Utc::now().to_rfc3339(),
    }
    .write(dir.root())?;

    let embedded = local.is_some();
    on_ready(&Ready {
        data_dir: dir.root().to_path_buf(),
        embedded_postgres: local.map(|(_, port, data)| (format!("127.0.0.1:{port}"), data)),
        api_url,
        gateway: gateway_addr.to_string(),
        clusters,
    });

    let master = bulkhead_keys::MasterKey::load(&dir.secrets_dir())
        .map_err(|e| ServerError::Gateway(format!("loading the master key: {e}")))?;
    let audit = bulkhead_audit::AuditLog::new(directory.clone(), master);
    let audit_writer = audit.writer();
    let settings = gateway_settings(config, audit_writer.clone())?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let std_listener = gateway_listener
        .into_std()
        .map_err(ServerError::io("handing over the gateway listener"))?;
    let gateway = bulkhead_gateway::start(
        directory.dsn().to_string(),
        settings,
        std_listener,
        config.gateway.threads,
        stop_rx.clone(),
    )
    .await
    .map_err(|e| ServerError::Gateway(e.to_string()))?;
    let archiving = tokio::spawn(keep_archiving(
        directory.clone(),
        pitr.filter(|_| embedded),
        config.pitr.clone(),
        stop_rx.clone(),
    ));
    let schedule = config
        .backups
        .to_schedule(&dir.root().join("backups"))
        .map_err(|message| ServerError::Config {
            source_name: "backups".into(),
            message,
        })?;
    let scheduler = tokio::spawn(run_schedule(
        directory.clone(),
        bulkhead_backup::MasterKey::load(&dir.secrets_dir())
            .map_err(|e| ServerError::Gateway(format!("loading the master key: {e}")))?,
        schedule.clone(),
        audit.clone(),
        std::time::Duration::from_secs(config.backups.check_seconds.unwrap_or(60)),
        stop_rx.clone(),
    ));
    let releaser = tokio::spawn(release_abandoned_holds(
        directory.clone(),
        audit.clone(),
        stop_rx.clone(),
    ));
    let collector = tokio::spawn(collect_usage(
        directory.clone(),
        std::time::Duration::from_secs(config.metering.collect_seconds),
        stop_rx.clone(),
    ));
    let app = bulkhead_api::router(
        ApiState::new(directory, &token)
            .with_read_token(&console_token)
            .with_audit(audit)
            .with_prices(bulkhead_metering::Prices(config.metering.prices.clone()))
            .with_gateway(gateway.state.clone())
            .with_gateway_addr(gateway_addr)
            .with_secrets_dir(dir.secrets_dir())
            .with_schedule(schedule),
    );
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received, stopping"),
            _ = interrupt.recv() => tracing::info!("SIGINT received, stopping"),
        }
        let _ = stop_tx.send(true);
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServerError::io("serving the HTTP API"))?;
    gateway.stopped().await;
    // Everything recorded before the stop is written before `up` returns.
    audit_writer.flush().await;
    let _ = collector.await;
    let _ = releaser.await;
    let _ = scheduler.await;
    let _ = archiving.await;
    Ok(())
}

/// The gateway's settings from the configuration (TLS loaded), recording in `audit`.
pub(crate) fn gateway_settings(
    config: &Config,
    audit: bulkhead_audit::AuditWriter,
) -> Result<bulkhead_gateway::GatewaySettings, ServerError> {
    let tls = match (&config.gateway.tls_cert, &config.gateway.tls_key) {
        (Some(cert), Some(key)) => Some(
            bulkhead_gateway::frontend::load_acceptor(cert, key).map_err(|message| {
                ServerError::Config {
                    source_name: "gateway.tls_cert / gateway.tls_key".into(),
                    message,
                }
            })?,
        ),
        _ => None,
    };
    Ok(bulkhead_gateway::GatewaySettings {
        audit: Some(audit),
        usage_flush: std::time::Duration::from_secs(config.metering.flush_seconds),
        tls,
        tls_required: config.gateway.tls_required,
        limits: config.limits.to_limits(),
        pool: bulkhead_gateway::backend::PoolSettings {
            size: config.gateway.pool_size,
            checkout_timeout: std::time::Duration::from_secs(config.gateway.checkout_timeout_secs),
            network_timeout: std::time::Duration::from_secs(config.gateway.network_timeout_secs),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// The embedded cluster's archiving layout, when `[pitr]` wants it and pgBackRest is here.
fn embedded_pitr(dir: &DataDir, config: &Config) -> Option<bulkhead_pitr::Layout> {
    if !config.embedded() || !config.pitr.enabled {
        return None;
    }
    let installed = std::process::Command::new("pgbackrest")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        tracing::warn!("pgbackrest is not installed: the embedded cluster's WAL is not archived and no tenant can be rewound to a point in time (Debian: apt-get install pgbackrest)");
        return None;
    }
    Some(bulkhead_pitr::Layout::new(
        &dir.root().join("pitr"),
        "local",
    ))
}

/// Turns point-in-time recovery on for the embedded cluster (a first full base backup in the
/// background), then takes a full base backup whenever the newest is older than
/// `pitr.full_every` and expires those beyond `pitr.keep_full`.
async fn keep_archiving(
    directory: Directory,
    layout: Option<bulkhead_pitr::Layout>,
    config: crate::config::PitrConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Some(layout) = layout else {
        return;
    };
    let local =
        ClusterName::from_str("local").unwrap_or_else(|_| unreachable!("`local` is a valid name"));
    let enabled = tokio::select! {
        r = bulkhead_pitr::enable(&directory, &local, &layout) => r,
        _ = stop.wait_for(|s| *s) => return,
    };
    let pitr = match enabled {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "turning point-in-time recovery on failed; tenants cannot be rewound until it works (see `bulkhead pitr status`)");
            return;
        }
    };
    let every = bulkhead_pitr::schedule::parse_duration(&config.full_every)
        .unwrap_or(std::time::Duration::from_secs(86_400));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(300)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let Ok(repo) =
            bulkhead_pitr::repo::Repo::new(&pitr.stanza, pitr.config_path.clone().into())
        else {
            continue;
        };
        let newest = match repo.info().await {
            Ok(info) => info.backups.last().map(|b| b.stopped_at),
            Err(e) => {
                tracing::warn!(error = %e, "reading the WAL archive failed");
                continue;
            }
        };
        let due =
            newest.is_none_or(|t| (chrono::Utc::now() - t).to_std().unwrap_or_default() >= every);
        if due {
            match repo.backup(true).await {
                Ok(()) => tracing::info!("took a full base backup of the embedded cluster"),
                Err(e) => tracing::warn!(error = %e, "a full base backup failed"),
            }
            if let Err(e) = repo.expire(config.keep_full).await {
                tracing::warn!(error = %e, "expiring old base backups failed");
            }
        }
    }
}

/// How often `up` looks for tenants held by a mover that died during its cutover.
pub const HOLD_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Releases tenants held by a dead mover (see `bulkhead_mover::release_abandoned`): a tenant
/// is held at most about [`HOLD_CHECK`] (plus the abort) after its mover died.
async fn release_abandoned_holds(
    directory: Directory,
    audit: bulkhead_audit::AuditLog,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match bulkhead_mover::release_abandoned(&directory).await {
            Ok(released) => {
                for m in released {
                    tracing::warn!(tenant = %m.tenant_id, service = %m.service, "a move's mover stopped during its cutover: the tenant was released where it was; run the move again to retry");
                    audit
                        .record_or_log(
                            bulkhead_audit::Event::new(
                                bulkhead_audit::action::MOVE_ROLLED_BACK,
                                "bulkhead",
                            )
                            .tenant(m.tenant_id)
                            .details(bulkhead_audit::move_details(&m)),
                        )
                        .await;
                }
            }
            Err(e) => tracing::debug!(error = %e, "looking for abandoned moves failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(HOLD_CHECK) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Scheduled logical backups: one pass every `every`.
async fn run_schedule(
    directory: Directory,
    master: bulkhead_backup::MasterKey,
    schedule: bulkhead_pitr::schedule::Schedule,
    audit: bulkhead_audit::AuditLog,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // Runs even without a policy: backups taken on demand (the console's "take a backup")
    // expire too.
    loop {
        match bulkhead_pitr::schedule::run_once(
            &directory,
            &master,
            &schedule,
            Some(&audit),
            chrono::Utc::now(),
        )
        .await
        {
            Ok(p) if !p.taken.is_empty() || p.pruned > 0 || !p.failed.is_empty() => {
                tracing::info!(
                    taken = p.taken.len(),
                    pruned = p.pruned,
                    failed = p.failed.len(),
                    "scheduled backups"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "a pass of the backup schedule failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Harvests the usage outboxes and samples storage every `every` (and once at start).
async fn collect_usage(
    directory: Directory,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match bulkhead_metering::outbox::harvest(&directory).await {
            Ok(h) if h.rows > 0 => {
                tracing::info!(
                    rows = h.rows,
                    counted = h.counted,
                    "harvested usage outboxes"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "harvesting usage outboxes failed"),
        }
        if let Err(e) = bulkhead_metering::storage::sample(&directory).await {
            tracing::warn!(error = %e, "sampling tenant storage failed");
        }
        let day_ago = chrono::Utc::now() - chrono::Duration::days(1);
        if let Err(e) = directory.prune_gateway_usage(day_ago).await {
            tracing::warn!(error = %e, "pruning old gateway usage events failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

fn local_cluster(admin_dsn: &str) -> NewCluster {
    NewCluster {
        name: ClusterName::from_str("local")
            .unwrap_or_else(|_| unreachable!("`local` is a valid name")),
        region: Region::from_str("local")
            .unwrap_or_else(|_| unreachable!("`local` is a valid region")),
        admin_dsn: admin_dsn.to_string(),
        capacity: None,
    }
}

/// Renames tenant objects still named after tenant ids (installations before directory
/// version 9, or a place provisioned under the old names while an upgrade ran). A failure
/// (an unreachable cluster) is reported and the rest is served; the next `up` finishes it.
async fn upgrade_names(directory: &Directory) {
    let progress = |line: &str| tracing::info!("{line}");
    match bulkhead_provisioner::rename_legacy_objects(directory, &progress).await {
        Ok(r) if r.renamed > 0 || !r.already_keyed => tracing::info!(
            places = r.places, renamed = r.renamed, databases = r.databases,
            "tenant roles, schemas and databases now have opaque names (no tenant id in the catalogs)"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(
            error = %e,
            "renaming tenant objects named after tenant ids failed; their names still show tenant ids in the catalogs every role can read. Fix the cause and start `bulkhead up` again to finish"
        ),
    }
}

/// Tenants whose slug has the shape of a tenant id (written before such slugs were
/// refused): named at startup; the gateway does not route them until they are renamed.
async fn warn_of_id_shaped_slugs(directory: &Directory) {
    let Ok(tenants) = directory.id_shaped_slugs().await else {
        return;
    };
    for t in tenants {
        tracing::warn!(
            tenant = %t.id, slug = %t.slug,
            "tenant {}'s slug `{}` has the shape of a tenant id and could be mistaken for another tenant; it is not served until renamed: `bulkhead tenant rename {} NEW-SLUG`",
            t.id, t.slug, t.id
        );
    }
}

/// Prepares for the gateway the clusters registered through the API or CLI (those of the
/// configuration were just upserted): their gateway logins and memberships follow this
/// version's rules (see `bulkhead_provisioner::prepare_cluster`). One that cannot be reached
/// is named in a warning and served as it is.
async fn prepare_other_clusters(directory: &Directory, prepared: &[String]) {
    let all = match directory.list_clusters().await {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(error = %e, "could not list the clusters to prepare them for the gateway");
            return;
        }
    };
    for c in all
        .iter()
        .filter(|c| !prepared.contains(&c.name.to_string()))
    {
        if let Err(e) = bulkhead_provisioner::prepare_cluster(directory, c).await {
            tracing::warn!(cluster = %c.name, error = %e, "could not prepare the cluster for the gateway");
        }
    }
}

/// Moves a mover left under way (it stopped) or kept sources awaiting finalize: named at
/// startup with what to run, since a held tenant waits for its mover.
async fn warn_of_unfinished_moves(directory: &Directory) {
    let Ok(moves) = directory.unfinished_moves().await else {
        return;
    };
    for m in moves {
        if m.phase.is_open() {
            tracing::warn!(
                tenant = %m.tenant_id, service = %m.service, phase = %m.phase,
                "a move to {} on {} stopped before its switch{}; run `bulkhead tenant move {} --to {} --cluster {}` to resume it or `--rollback` to give it up",
                m.to_mode, m.to_cluster,
                if m.phase == bulkhead_directory::MovePhase::Cutover { " (the tenant's new transactions are held meanwhile)" } else { "" },
                m.tenant_id, m.to_mode, m.to_cluster
            );
        } else {
            tracing::info!(
                tenant = %m.tenant_id, service = %m.service,
                "a move's source is kept until `bulkhead tenant move {} --finalize` (or `--rollback`)",
                m.tenant_id
            );
        }
    }
}

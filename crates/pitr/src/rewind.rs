//! Rewinding one tenant to an instant: find where it lived then, restore a side instance of
//! that cluster to the instant (only the tenant's database when it was a database tenant),
//! extract the tenant there with the backup code (its snapshot, filters and checksums),
//! stop the side instance, and restore the extract into the tenant's place now with the
//! atomic restore (migrated forward if the schema changed since). Nothing of any other
//! tenant is read or written; a failure at any step changes nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use bulkhead_backup::{MasterKey, Restored};
use bulkhead_directory::{Cluster, Directory, TenantRef};
use bulkhead_model::{ClusterName, Mode, ServiceName, Slug, TenantId};
use bulkhead_mover::place::Side;
use bulkhead_provisioner::naming::Naming;
use bulkhead_provisioner::{admin_connect, TenantPlace};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::repo::Repo;
use crate::side::{sweep, SideInstance};
use crate::window::{archiver, recoverable_after};
use crate::PitrError;

/// How long a rewind waits for the WAL holding its target to reach the archive.
const ARCHIVE_WAIT: Duration = Duration::from_secs(60);

/// What to rewind.
#[derive(Debug, Clone)]
pub struct RewindRequest {
    /// The tenant.
    pub tenant: TenantRef,
    /// Its service, when it lives in several.
    pub service: Option<ServiceName>,
    /// The instant its rows go back to.
    pub at: DateTime<Utc>,
    /// Instead of replacing its rows: a new tenant of this slug holding them.
    pub as_new: Option<Slug>,
    /// The new tenant's mode (default: the tenant's mode at `at`).
    pub mode: Option<Mode>,
    /// Only say what would be restored.
    pub dry_run: bool,
}

/// The steps of a rewind, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Fetching the base backup into a side instance.
    FetchBaseBackup,
    /// Replaying WAL to the instant.
    ReplayWal,
    /// Reading the tenant's rows there.
    Extract,
    /// Replacing the tenant's rows now.
    Restore,
}

impl Phase {
    /// Its name on the CLI.
    pub fn label(&self) -> &'static str {
        match self {
            Phase::FetchBaseBackup => "fetch base backup",
            Phase::ReplayWal => "replay WAL to the instant",
            Phase::Extract => "extract the tenant",
            Phase::Restore => "restore",
        }
    }
}

/// Told about a rewind's progress.
pub trait Progress: Send + Sync {
    /// A phase begins.
    fn phase(&self, phase: Phase, detail: &str);
    /// A table was extracted or restored.
    fn table(&self, _event: &bulkhead_backup::Event) {}
}

impl Progress for () {
    fn phase(&self, _: Phase, _: &str) {}
}

struct Tables<'a>(&'a dyn Progress);

impl bulkhead_backup::Progress for Tables<'_> {
    fn event(&self, event: &bulkhead_backup::Event) {
        self.0.table(event);
    }
}

/// One table as it was at the instant.
#[derive(Debug, Clone, Serialize)]
pub struct TableAt {
    /// The table.
    pub table: String,
    /// The tenant's rows in it.
    pub rows: u64,
}

/// What a rewind did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct Rewound {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its slug.
    pub slug: String,
    /// The instant.
    pub at: DateTime<Utc>,
    /// Its mode then.
    pub mode_at: Mode,
    /// Its cluster then.
    pub cluster_at: ClusterName,
    /// The base backup the side instance started from.
    pub base_backup: String,
    /// Only said, nothing changed.
    pub dry_run: bool,
    /// The tenant's tables at the instant.
    pub tables: Vec<TableAt>,
    /// The restore (none when dry).
    pub restored: Option<Restored>,
    /// Seconds per phase, in order.
    pub seconds: Vec<(Phase, f64)>,
}

impl Rewound {
    /// What the audit log keeps of it.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "at": self.at.to_rfc3339(), "mode_at": self.mode_at.to_string(),
            "cluster_at": self.cluster_at.to_string(), "base_backup": self.base_backup,
            "rows": self.tables.iter().map(|t| t.rows).sum::<u64>(),
            "into": self.restored.as_ref().map(|r| r.tenant_id.to_string()),
        })
    }
}

/// Rewinds a tenant (see the module's documentation).
pub async fn rewind(
    dir: &Directory,
    master: &MasterKey,
    req: &RewindRequest,
    progress: &dyn Progress,
) -> Result<Rewound, PitrError> {
    let tenant = dir.tenant(&req.tenant).await?;
    if dir.erasure(&tenant.id.to_string()).await?.is_some() {
        return Err(PitrError::Refused(format!(
            "tenant {} was erased",
            tenant.slug
        )));
    }
    let now = Utc::now();
    if req.at > now {
        return Err(PitrError::OutOfWindow(format!(
            "{} is in the future (now is {})",
            req.at.to_rfc3339(),
            now.to_rfc3339()
        )));
    }
    if req.at < tenant.created_at {
        return Err(PitrError::OutOfWindow(format!(
            "tenant {} did not exist yet at {} (it was created at {})",
            tenant.slug,
            req.at.to_rfc3339(),
            tenant.created_at.to_rfc3339()
        )));
    }
    let (service, placement, _) =
        bulkhead_backup::current_place(dir, &tenant, req.service.as_ref()).await?;
    let (mode_at, cluster_at) = crate::history::place_at(dir, &placement, req.at).await?;
    let pitr = dir
        .cluster_pitr(&cluster_at)
        .await?
        .ok_or_else(|| PitrError::NotEnabled(cluster_at.to_string()))?;
    let live = dir.cluster(&cluster_at).await?;
    let repo = Repo::new(&pitr.stanza, pitr.config_path.clone().into())?;
    let work_dir = Path::new(&pitr.work_dir);
    sweep(work_dir);
    let info = repo.info().await?;
    let Some(base) = info
        .backups
        .iter()
        .rev()
        .find(|b| recoverable_after(b) <= req.at)
    else {
        let window = match info.backups.first() {
            Some(b) => format!(
                "cluster {cluster_at} can be recovered from {} to now",
                recoverable_after(b).to_rfc3339()
            ),
            None => format!("cluster {cluster_at} has no base backup yet"),
        };
        return Err(PitrError::OutOfWindow(format!(
            "{} is before the oldest recoverable point: {window}",
            req.at.to_rfc3339()
        )));
    };
    archive_through(&live, req.at).await?;

    let naming = Naming::of(dir).await?;
    let place_then = TenantPlace::new(&naming, &service, tenant.id, mode_at);
    let mut seconds = Vec::new();
    let started = Instant::now();
    progress.phase(
        Phase::FetchBaseBackup,
        &format!("{} of cluster {cluster_at}", base.label),
    );
    let db_include = (mode_at == Mode::Database).then_some(place_then.database.as_str());
    let mut side = match SideInstance::restore(
        &repo,
        work_dir,
        &live,
        &base.label,
        req.at,
        db_include,
    )
    .await
    {
        // A database made after the base backup is not in it: replay creates it, and
        // only a whole restore can carry it.
        Err(PitrError::Tool { output, .. })
            if db_include.is_some() && output.contains("does not exist") =>
        {
            SideInstance::restore(&repo, work_dir, &live, &base.label, req.at, None).await?
        }
        other => other?,
    };
    seconds.push((Phase::FetchBaseBackup, started.elapsed().as_secs_f64()));
    let started = Instant::now();
    progress.phase(Phase::ReplayWal, &req.at.to_rfc3339());
    side.start().await?;
    seconds.push((Phase::ReplayWal, started.elapsed().as_secs_f64()));
    let started = Instant::now();
    progress.phase(
        Phase::Extract,
        &format!("{} tenant as it was then", mode_at.as_str()),
    );
    let at_side = Side {
        cluster: side.cluster().clone(),
        place: place_then,
    };
    let extracted = bulkhead_backup::backup_from(
        dir,
        master,
        &tenant,
        &service.name,
        &at_side,
        Vec::new(),
        &Tables(progress),
    )
    .await;
    side.close().await;
    let (manifest, archive) = extracted?;
    seconds.push((Phase::Extract, started.elapsed().as_secs_f64()));
    let tables = manifest
        .tables
        .iter()
        .map(|t| TableAt {
            table: t.name.clone(),
            rows: t.rows,
        })
        .collect();
    let restored = if req.dry_run {
        None
    } else {
        let started = Instant::now();
        progress.phase(Phase::Restore, tenant.slug.as_str());
        let r = match &req.as_new {
            Some(slug) => {
                bulkhead_backup::restore_as_new(
                    dir,
                    master,
                    &archive,
                    slug,
                    Some(req.mode.unwrap_or(mode_at)),
                    &Tables(progress),
                )
                .await?
            }
            None => {
                bulkhead_backup::restore(
                    dir,
                    master,
                    &tenant,
                    &archive[..],
                    false,
                    &Tables(progress),
                )
                .await?
            }
        };
        seconds.push((Phase::Restore, started.elapsed().as_secs_f64()));
        Some(r)
    };
    tracing::info!(tenant = %tenant.id, at = %req.at, dry = req.dry_run, "tenant rewound");
    Ok(Rewound {
        tenant_id: tenant.id,
        slug: tenant.slug.to_string(),
        at: req.at,
        mode_at,
        cluster_at,
        base_backup: base.label.clone(),
        dry_run: req.dry_run,
        tables,
        restored,
        seconds,
    })
}

/// Makes sure the archive holds WAL past `at`: a commit after it (recovery stops at the first
/// commit past its target, and fails if it reaches the end of WAL first), then the current
/// segment closed and archived.
async fn archive_through(cluster: &Cluster, at: DateTime<Utc>) -> Result<(), PitrError> {
    if let Ok(ahead) = (at - Utc::now()).to_std() {
        tokio::time::sleep(ahead + Duration::from_millis(10)).await;
    }
    let client = admin_connect(cluster, "postgres").await?;
    client
        .batch_execute("SELECT pg_catalog.txid_current()")
        .await
        .map_err(PitrError::sql("writing a commit past the instant"))?;
    let wal: String = client
        .query_one(
            "SELECT pg_catalog.pg_walfile_name(pg_catalog.pg_switch_wal())",
            &[],
        )
        .await
        .map_err(PitrError::sql("closing the current WAL segment"))?
        .get(0);
    client.release();
    let deadline = Instant::now() + ARCHIVE_WAIT;
    loop {
        let a = archiver(cluster).await?;
        if a.last_wal.as_deref().is_some_and(|w| w >= wal.as_str()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(PitrError::Refused(format!(
                "WAL segment {wal} did not reach the archive within {} s (last archived: {}, last failure: {} at {}): check the archive_command and `bulkhead pitr status`",
                ARCHIVE_WAIT.as_secs(),
                a.last_wal.unwrap_or_else(|| "none".into()),
                a.failed_wal.unwrap_or_else(|| "none".into()),
                a.failed_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads an instant: RFC 3339 (`2026-12-05T14:02:00Z`) or `2026-12-05 14:02:00+00` (a zone
/// is required: an instant without one would mean a different moment on every machine).
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        return Ok(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(at) = DateTime::parse_from_str(t, format) {
            return Ok(at.with_timezone(&Utc));
        }
    }
    Err(format!(
        "`{text}` is not an instant with a time zone: write e.g. '2026-12-05 14:02:00+00' or 2026-12-05T14:02:00Z"
    ))
}

#[cfg(test)]
mod tests {
    use super::parse_instant;

    #[test]
    fn instants_need_a_zone() {
        let a = parse_instant("2026-12-05 14:02:00+00").expect("short zone");
        assert_eq!(a.to_rfc3339(), "2026-12-05T14:02:00+00:00");
        let b = parse_instant("2026-12-05T16:02:00.5+02:00").expect("rfc3339");
        assert_eq!(b.timestamp(), a.timestamp());
        assert!(parse_instant("2026-12-05 14:02:00").is_err());
        assert!(parse_instant("yesterday").is_err());
    }
}

//! What can be recovered: per cluster, the window from the oldest base backup's end to now,
//! and how far the archive is behind the server.

use std::time::Duration;

use bulkhead_directory::{Cluster, ClusterPitr, Directory};
use bulkhead_model::ClusterName;
use bulkhead_provisioner::admin_connect;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::repo::{BaseBackup, Repo};
use crate::PitrError;

/// One cluster's point-in-time recovery, as `bulkhead pitr status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PitrStatus {
    /// The cluster.
    pub cluster: ClusterName,
    /// pgBackRest's stanza.
    pub stanza: String,
    /// pgBackRest's word on the stanza (`ok`, or what is wrong).
    pub repository_status: String,
    /// Whether the server archives WAL and its last attempt succeeded.
    pub archiving: bool,
    /// The newest segment archived, and when.
    pub last_archived_wal: Option<String>,
    /// When it was archived.
    pub last_archived_at: Option<DateTime<Utc>>,
    /// The last failure to archive, if any, and when.
    pub last_failed_wal: Option<String>,
    /// When.
    pub last_failed_at: Option<DateTime<Utc>>,
    /// WAL written but not archived yet, in bytes.
    pub archive_lag_bytes: i64,
    /// The earliest recoverable instant (just after the oldest base backup ended).
    pub recoverable_from: Option<DateTime<Utc>>,
    /// The latest: now, when archiving works (a rewind first closes and archives the
    /// current WAL segment); else the last archived segment's time.
    pub recoverable_to: Option<DateTime<Utc>>,
    /// Base backups, oldest first.
    pub backups: Vec<BaseBackup>,
    /// What the base backups take in the repository (archived WAL not counted).
    pub repository_bytes: i64,
}

/// The archiver's view from the server.
pub(crate) struct Archiver {
    pub archiving: bool,
    pub last_wal: Option<String>,
    pub last_at: Option<DateTime<Utc>>,
    pub failed_wal: Option<String>,
    pub failed_at: Option<DateTime<Utc>>,
    pub lag_bytes: i64,
}

const ARCHIVER: &str = "
SELECT current_setting('archive_mode') <> 'off' AS on,
       a.last_archived_wal, a.last_archived_time, a.last_failed_wal, a.last_failed_time,
       pg_current_wal_lsn()::text AS lsn,
       (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') AS seg
  FROM pg_stat_archiver a";

/// An LSN (`X/Y`) as a number.
fn lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) + u64::from_str_radix(lo, 16).ok()?)
}

/// Where the WAL segment `name` (timeline, log, segment: 8 hex digits each) ends.
fn segment_end(name: &str, segment_size: u64) -> Option<u64> {
    let log = u64::from_str_radix(name.get(8..16)?, 16).ok()?;
    let seg = u64::from_str_radix(name.get(16..24)?, 16).ok()?;
    Some((log << 32) + (seg + 1) * segment_size)
}

pub(crate) async fn archiver(cluster: &Cluster) -> Result<Archiver, PitrError> {
    let client = admin_connect(cluster, "postgres").await?;
    let r = client
        .query_one(ARCHIVER, &[])
        .await
        .map_err(PitrError::sql("reading the archiver's state"))?;
    client.release();
    let last_at: Option<DateTime<Utc>> = r.get("last_archived_time");
    let failed_at: Option<DateTime<Utc>> = r.get("last_failed_time");
    let healthy = match (last_at, failed_at) {
        (_, None) => true,
        (Some(ok), Some(failed)) => ok >= failed,
        (None, Some(_)) => false,
    };
    let last_wal: Option<String> = r.get("last_archived_wal");
    let segment_size = u64::try_from(r.get::<_, i64>("seg")).unwrap_or(16 << 20);
    let lag_bytes = match (
        lsn(r.get("lsn")),
        last_wal
            .as_deref()
            .and_then(|w| segment_end(w, segment_size)),
    ) {
        (Some(now), Some(end)) => i64::try_from(now.saturating_sub(end)).unwrap_or(i64::MAX),
        _ => 0,
    };
    Ok(Archiver {
        archiving: r.get::<_, bool>("on") && healthy,
        last_wal,
        last_at,
        failed_wal: r.get("last_failed_wal"),
        failed_at,
        lag_bytes,
    })
}

/// The earliest instant a base backup lets us recover to (its stop time is kept to the
/// second; the second after it is safely past its consistency point).
pub(crate) fn recoverable_after(b: &BaseBackup) -> DateTime<Utc> {
    b.stopped_at + Duration::from_secs(1)
}

/// The status of `cluster`'s archiving.
pub async fn status(dir: &Directory, cluster: &ClusterName) -> Result<PitrStatus, PitrError> {
    let pitr = dir
        .cluster_pitr(cluster)
        .await?
        .ok_or_else(|| PitrError::NotEnabled(cluster.to_string()))?;
    status_of(dir, &pitr).await
}

/// The status of every cluster with archiving.
pub async fn status_all(dir: &Directory) -> Result<Vec<PitrStatus>, PitrError> {
    let mut out = Vec::new();
    for pitr in dir.list_cluster_pitr().await? {
        out.push(status_of(dir, &pitr).await?);
    }
    Ok(out)
}

async fn status_of(dir: &Directory, pitr: &ClusterPitr) -> Result<PitrStatus, PitrError> {
    let cluster = dir.cluster(&pitr.cluster).await?;
    let repo = Repo::new(&pitr.stanza, pitr.config_path.clone().into())?;
    let info = repo.info().await?;
    let a = archiver(&cluster).await?;
    let recoverable_from = info.backups.first().map(recoverable_after);
    let recoverable_to = match recoverable_from {
        None => None,
        Some(_) if a.archiving => Some(Utc::now()),
        Some(_) => a.last_at,
    };
    Ok(PitrStatus {
        cluster: pitr.cluster.clone(),
        stanza: pitr.stanza.clone(),
        repository_status: info.status,
        archiving: a.archiving,
        last_archived_wal: a.last_wal,
        last_archived_at: a.last_at,
        last_failed_wal: a.failed_wal,
        last_failed_at: a.failed_at,
        archive_lag_bytes: a.lag_bytes,
        recoverable_from,
        recoverable_to,
        repository_bytes: info.backups.iter().map(|b| b.repo_bytes).sum(),
        backups: info.backups,
    })
}

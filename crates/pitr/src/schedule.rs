//! Scheduled logical backups: per tier (and per tenant, overriding its tier) an interval and
//! a retention; `bulkhead up` runs [`run_once`] every minute, which takes a `.bhk` backup of
//! every tenant whose newest one is older than its interval into the backup folder
//! (`<folder>/<tenant id>/<UTC time>.bhk`, written beside and renamed when complete), and
//! removes those whose retention ran out. Each is in the directory and the audit log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bulkhead_audit::{action, AuditLog, Event};
use bulkhead_backup::MasterKey;
use bulkhead_directory::{Directory, ScheduledBackup, Tenant, TenantRef};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::PitrError;

/// How often and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A new backup when the newest is this old.
    pub every: Duration,
    /// Each is kept this long.
    pub keep: Duration,
}

/// Which tenants are backed up how, and where to.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// The backup folder.
    pub folder: PathBuf,
    /// Per tier.
    pub tiers: HashMap<String, Policy>,
    /// Per tenant slug, over its tier's.
    pub tenants: HashMap<String, Policy>,
}

/// What one pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pass {
    /// (slug, file) of each backup taken.
    pub taken: Vec<(String, String)>,
    /// Files removed by retention.
    pub pruned: usize,
    /// (slug, error) of each that failed (the others go on).
    pub failed: Vec<(String, String)>,
}

/// Reads a duration such as `90s`, `15m`, `1h`, `30d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit: write e.g. 90s, 15m, 1h or 30d"))?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let seconds = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use s, m, h or d"
            ))
        }
    };
    if n == 0 {
        return Err(format!("`{text}` is zero"));
    }
    Ok(Duration::from_secs(n * seconds))
}

impl Schedule {
    /// The policy of `tenant`, if any.
    pub fn policy_of(&self, tenant: &Tenant) -> Option<Policy> {
        self.tenants
            .get(tenant.slug.as_str())
            .or_else(|| self.tiers.get(tenant.tier.as_str()))
            .copied()
    }
}

/// One pass of the schedule at `now`.
pub async fn run_once(
    dir: &Directory,
    master: &MasterKey,
    schedule: &Schedule,
    audit: Option<&AuditLog>,
    now: DateTime<Utc>,
) -> Result<Pass, PitrError> {
    let mut pass = Pass::default();
    let mut events = Vec::new();
    // Without a policy no tenant is due; backups taken on demand are still pruned.
    let tenants = if schedule.tiers.is_empty() && schedule.tenants.is_empty() {
        Vec::new()
    } else {
        dir.list_tenants().await?
    };
    for tenant in tenants {
        let Some(policy) = schedule.policy_of(&tenant) else {
            continue;
        };
        if dir.erasure(&tenant.id.to_string()).await?.is_some() {
            continue;
        }
        let due = match dir.last_scheduled_backup(&tenant.id).await? {
            None => true,
            Some(last) => (now - last).to_std().unwrap_or_default() >= policy.every,
        };
        if !due {
            continue;
        }
        match take(dir, master, &schedule.folder, &tenant, policy, now).await {
            Ok(b) => {
                events.push(
                    Event::new(action::SCHEDULED_BACKUP, "schedule")
                        .tenant(tenant.id)
                        .details(serde_json::json!({
                            "path": b.path, "bytes": b.bytes, "rows": b.rows,
                            "expires_at": b.expires_at.to_rfc3339(),
                        })),
                );
                pass.taken.push((tenant.slug.to_string(), b.path));
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant.id, error = %e, "scheduled backup failed");
                pass.failed.push((tenant.slug.to_string(), e.to_string()));
            }
        }
    }
    for b in dir.expired_scheduled_backups(now).await? {
        match std::fs::remove_file(&b.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                pass.failed
                    .push((b.tenant_id.to_string(), format!("removing {}: {e}", b.path)));
                continue;
            }
        }
        dir.remove_scheduled_backup(b.id).await?;
        events.push(
            Event::new(action::BACKUP_PRUNED, "schedule")
                .tenant(b.tenant_id)
                .details(
                    serde_json::json!({ "path": b.path, "taken_at": b.taken_at.to_rfc3339() }),
                ),
        );
        pass.pruned += 1;
    }
    if let Some(a) = audit {
        if !events.is_empty() {
            if let Err(e) = a.record_all(events).await {
                tracing::warn!(error = %e, "could not record the scheduled backups in the audit log");
            }
        }
    }
    Ok(pass)
}

/// How long a backup taken on demand is kept when the tenant has no policy of its own.
pub const ON_DEMAND_KEEP: Duration = Duration::from_secs(7 * 86_400);

/// Takes a backup of `tenant` now into the schedule's folder (what the console's "take a
/// backup" does); it is listed and pruned like a scheduled one, kept for the tenant's policy
/// or [`ON_DEMAND_KEEP`].
pub async fn take_now(
    dir: &Directory,
    master: &MasterKey,
    schedule: &Schedule,
    tenant: &Tenant,
) -> Result<ScheduledBackup, PitrError> {
    if dir.erasure(&tenant.id.to_string()).await?.is_some() {
        return Err(PitrError::Refused(format!(
            "tenant {} was erased; nothing is backed up",
            tenant.slug
        )));
    }
    let policy = schedule.policy_of(tenant).unwrap_or(Policy {
        every: ON_DEMAND_KEEP,
        keep: ON_DEMAND_KEEP,
    });
    take(dir, master, &schedule.folder, tenant, policy, Utc::now()).await
}

async fn take(
    dir: &Directory,
    master: &MasterKey,
    folder: &Path,
    tenant: &Tenant,
    policy: Policy,
    now: DateTime<Utc>,
) -> Result<ScheduledBackup, PitrError> {
    let into = folder.join(tenant.id.to_string());
    std::fs::create_dir_all(&into)
        .map_err(PitrError::io(format!("creating {}", into.display())))?;
    let path = into.join(format!("{}.bhk", now.format("%Y%m%dT%H%M%S%.3fZ")));
    let partial = path.with_extension("bhk.partial");
    let file = std::fs::File::create(&partial)
        .map_err(PitrError::io(format!("creating {}", partial.display())))?;
    let written = bulkhead_backup::backup(
        dir,
        master,
        &TenantRef::Id(tenant.id),
        None,
        std::io::BufWriter::new(file),
        &(),
    )
    .await;
    let (manifest, out) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
    };
    let file = out
        .into_inner()
        .map_err(|e| PitrError::io(format!("writing {}", partial.display()))(e.into_error()))?;
    file.sync_all()
        .map_err(PitrError::io(format!("syncing {}", partial.display())))?;
    std::fs::rename(&partial, &path)
        .map_err(PitrError::io(format!("renaming {}", partial.display())))?;
    let keep = chrono::Duration::from_std(policy.keep).unwrap_or(chrono::Duration::MAX);
    let b = ScheduledBackup {
        id: uuid::Uuid::new_v4(),
        tenant_id: tenant.id,
        service: manifest.header.service.clone(),
        path: path.display().to_string(),
        bytes: i64::try_from(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0))
            .unwrap_or(i64::MAX),
        rows: i64::try_from(manifest.tables.iter().map(|t| t.rows).sum::<u64>())
            .unwrap_or(i64::MAX),
        taken_at: now,
        expires_at: now
            .checked_add_signed(keep)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    };
    dir.add_scheduled_backup(&b).await?;
    Ok(b)
}

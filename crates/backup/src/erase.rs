//! Erasure: the tenant is suspended (the gateway refuses it from then on), its data is
//! deleted in its mode in every service, its data key is destroyed (every backup of it
//! becomes unreadable), and a deletion certificate saying what was removed is signed with a
//! key derived from the master key and kept in the directory.

use bulkhead_directory::{Directory, MovePhase, StoredCertificate, TenantRef};
use bulkhead_model::TenantState;
use bulkhead_mover::place::Side;
use bulkhead_provisioner::naming::Naming;
use bulkhead_provisioner::TenantPlace;
use serde::Serialize;

use crate::keys::MasterKey;
use crate::BackupError;

#[derive(Serialize)]
struct RemovedPlace {
    service: String,
    mode: String,
    cluster: String,
    database: String,
    schema: Option<String>,
    tables: Vec<(String, i64)>,
}

#[derive(Serialize)]
struct Certificate {
    kind: &'static str,
    tenant_id: String,
    slug: String,
    started_at: String,
    finished_at: String,
    placements: Vec<RemovedPlace>,
    scheduled_backups: Vec<String>,
    data_key: &'static str,
    wal_archive: &'static str,
}

/// Erases the tenant; returns its certificate.
pub async fn erase(
    dir: &Directory,
    master: &MasterKey,
    which: &TenantRef,
) -> Result<StoredCertificate, BackupError> {
    let tenant = dir.tenant(which).await?;
    let started_at = chrono::Utc::now().to_rfc3339();
    let placements = dir.placements_of(&tenant.id).await?;
    for p in &placements {
        if let Some(m) = dir
            .moves_of(&p.service, &tenant.id)
            .await?
            .into_iter()
            .find(|m| m.phase.is_open() || m.phase == MovePhase::Switched)
        {
            return Err(BackupError::Refused(format!(
                "tenant {} has a move ({}) that keeps a second place; finalize or roll it back first",
                tenant.slug, m.phase
            )));
        }
    }
    dir.set_tenant_state(&TenantRef::Id(tenant.id), TenantState::Suspended)
        .await?;
    let naming = Naming::of(dir).await?;
    let mut removed = Vec::new();
    for p in placements {
        let service = dir.service(&p.service).await?;
        let side = Side {
            cluster: dir.cluster(&p.cluster).await?,
            place: TenantPlace::new(&naming, &service, tenant.id, p.mode),
        };
        let mut tables = Vec::new();
        let client = side.connect().await?;
        for t in side.tables().await? {
            let n: i64 = client
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {}{}",
                        side.qualified(&t.name),
                        side.tenant_filter(&tenant.id)
                    ),
                    &[],
                )
                .await
                .map_err(BackupError::sql(format!("counting {}", t.name)))?
                .get(0);
            tables.push((t.name, n));
        }
        client.release();
        dir.set_placement_state(
            &p.service,
            &tenant.id,
            bulkhead_model::PlacementState::Deleting,
        )
        .await?;
        bulkhead_provisioner::drop_place_with(&side.cluster, &side.place, true).await?;
        dir.remove_placement(&p.service, &tenant.id).await?;
        removed.push(RemovedPlace {
            service: p.service.to_string(),
            mode: p.mode.to_string(),
            cluster: p.cluster.to_string(),
            database: p.database.clone(),
            schema: p.schema.clone(),
            tables,
        });
    }
    dir.destroy_data_key(&tenant.id).await?;
    // Scheduled backups are unreadable without the key already; their files go too.
    let mut scheduled = Vec::new();
    for b in dir.scheduled_backups_of(&tenant.id).await? {
        match std::fs::remove_file(&b.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BackupError::io(format!("removing {}", b.path))(e)),
        }
        dir.remove_scheduled_backup(b.id).await?;
        scheduled.push(b.path);
    }
    let cert = Certificate {
        kind: "bulkhead deletion certificate v1",
        tenant_id: tenant.id.to_string(),
        slug: tenant.slug.to_string(),
        started_at,
        finished_at: chrono::Utc::now().to_rfc3339(),
        placements: removed,
        scheduled_backups: scheduled,
        data_key: "destroyed: every backup of this tenant is unreadable",
        wal_archive: "the clusters' WAL archives and base backups (point-in-time recovery) still hold the rows as they were until retention expires them; a rewind of this tenant is refused",
    };
    let text =
        serde_json::to_string_pretty(&cert).map_err(|e| BackupError::Refused(e.to_string()))?;
    let stored = StoredCertificate {
        tenant_id: tenant.id,
        slug: tenant.slug.to_string(),
        signature: master.sign(&text),
        certificate: text,
    };
    dir.record_erasure(&stored).await?;
    tracing::info!(tenant = %tenant.id, "tenant erased");
    Ok(stored)
}

/// The tenant's deletion certificate and whether its signature holds.
pub async fn certificate(
    dir: &Directory,
    master: &MasterKey,
    tenant: &str,
) -> Result<(StoredCertificate, bool), BackupError> {
    let c = dir.erasure(tenant).await?.ok_or_else(|| {
        BackupError::Refused(format!("tenant {tenant} has no deletion certificate"))
    })?;
    let valid = master.verify(&c.certificate, &c.signature);
    Ok((c, valid))
}

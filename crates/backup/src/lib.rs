//! Per-tenant backup, restore, clone and erasure.
//!
//! A backup is one portable `.bhk` file (see [`archive`]): the tenant's rows from a
//! consistent snapshot in any mode, binary COPY per table, zstd-compressed, sealed with
//! AES-256-GCM under the tenant's data key, which the directory keeps only wrapped by the
//! master key ([`keys`]). A restore replaces the tenant's rows at its place now, whatever its
//! mode, atomically; a clone is a backup restored into a new tenant; an erasure deletes the
//! tenant's data, destroys its key and signs a certificate of what it removed.

pub mod archive;
mod backup;
mod erase;
mod error;
pub mod keys;
mod place;
mod restore;

use bulkhead_directory::{Directory, NewTenant, TenantRef};
use bulkhead_model::{Mode, Slug};
use bulkhead_provisioner::{create_tenant, CreateTenant};

pub use archive::Manifest;
pub use backup::{backup, backup_from};
pub use erase::{certificate, erase};
pub use error::BackupError;
pub use keys::MasterKey;
pub use place::current as current_place;
pub use restore::{header_of, restore, Restored};

/// Progress of a backup or restore.
#[derive(Debug, Clone)]
pub enum Event {
    /// A table is done.
    Table {
        /// The table.
        table: String,
        /// Its rows.
        rows: u64,
        /// How long it took.
        seconds: f64,
    },
}

/// Told about progress.
pub trait Progress: Send + Sync {
    /// Something happened.
    fn event(&self, event: &Event);
}

impl Progress for () {
    fn event(&self, _: &Event) {}
}

/// Restores an archive of another tenant into a new tenant `slug`, created in the archive's
/// service in `mode` (default: the mode the archive was taken in).
pub async fn restore_as_new(
    dir: &Directory,
    master: &MasterKey,
    archive: &[u8],
    slug: &Slug,
    mode: Option<Mode>,
    progress: &dyn Progress,
) -> Result<Restored, BackupError> {
    let header = header_of(&mut &archive[..])?;
    let service = header
        .service
        .parse()
        .map_err(|_| BackupError::Corrupt("its header names no service".into()))?;
    let mode = match mode {
        Some(m) => m,
        None => header
            .mode
            .parse()
            .map_err(|_| BackupError::Corrupt("its header names no mode".into()))?,
    };
    // Checks the archive's key opens before anything is created.
    let from = header
        .tenant_id
        .parse()
        .map_err(|_| BackupError::Corrupt("its header names no tenant".into()))?;
    keys::existing_data_key(dir, master, &from).await?;
    let created = create_tenant(
        dir,
        &CreateTenant {
            tenant: NewTenant {
                slug: slug.clone(),
                id: None,
                tier: None,
                region: None,
            },
            service: Some(service),
            mode: Some(mode),
            cluster: None,
        },
    )
    .await?;
    match restore(dir, master, &created.tenant, archive, true, progress).await {
        Ok(r) => Ok(r),
        Err(e) => {
            // The new tenant is removed again: a failed clone leaves nothing.
            if let Err(cleanup) =
                bulkhead_provisioner::delete_tenant(dir, &TenantRef::Id(created.tenant.id)).await
            {
                tracing::error!(error = %cleanup, "removing the tenant of a failed clone failed");
            }
            Err(e)
        }
    }
}

/// Clones `source` into a new tenant `slug` (same service, same mode unless given) through a
/// backup held in memory.
pub async fn clone_tenant(
    dir: &Directory,
    master: &MasterKey,
    source: &TenantRef,
    slug: &Slug,
    mode: Option<Mode>,
    progress: &dyn Progress,
) -> Result<Restored, BackupError> {
    let (_, bytes) = backup(dir, master, source, None, Vec::new(), progress).await?;
    restore_as_new(dir, master, &bytes, slug, mode, progress).await
}

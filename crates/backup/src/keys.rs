//! The master key and the per-tenant data keys it wraps.
//!
//! The master key is 32 random bytes: `BULKHEAD_MASTER_KEY` (64 hex digits) when set, else the
//! data folder's `secrets/master.key` (made on first use, mode 0600). Each tenant's data key is
//! 32 random bytes, stored in the directory only wrapped (AES-256-GCM under the master key,
//! the tenant id as associated data). Destroying it (an erasure) makes every backup of the
//! tenant unreadable. Certificates are signed with HMAC-SHA256 under a key derived from the
//! master key, never with the master key itself.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use bulkhead_directory::{Directory, StoredDataKey};
pub use bulkhead_keys::{MasterKey, MASTER_KEY_ENV};
use bulkhead_model::TenantId;

use crate::BackupError;

fn wrapping(master: &MasterKey) -> Aes256Gcm {
    Aes256Gcm::new((&master.derived("bulkhead data key wrapping v1")).into())
}

/// A tenant's data key, unwrapped.
pub struct DataKey(pub(crate) Aes256Gcm);

impl DataKey {
    /// A data key of these bytes (the fuzz targets read archives with one).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        DataKey(Aes256Gcm::new((&bytes).into()))
    }
}

/// Seals `plain` under `cipher` with a fresh nonce: `nonce || ciphertext+tag`.
pub(crate) fn seal(cipher: &Aes256Gcm, plain: &[u8], aad: &[u8]) -> Vec<u8> {
    let nonce: [u8; 12] = rand::random();
    let mut out = nonce.to_vec();
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
        .unwrap_or_else(|_| unreachable!("AES-GCM encrypts any message below 64 GiB"));
    out.extend_from_slice(&sealed);
    out
}

/// Opens what [`seal`] made; None when it was altered or the key is wrong.
pub(crate) fn open(cipher: &Aes256Gcm, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 12 + 16 {
        return None;
    }
    let (nonce, body) = sealed.split_at(12);
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .ok()
}

/// The tenant's data key, made (and stored wrapped) on first use.
pub async fn data_key(
    dir: &Directory,
    master: &MasterKey,
    tenant: &TenantId,
) -> Result<DataKey, BackupError> {
    let stored = match dir.data_key(tenant).await? {
        Some(s) => s,
        None => {
            let fresh: [u8; 32] = rand::random();
            let wrapped = seal(&wrapping(master), &fresh, tenant.as_uuid().as_bytes());
            dir.ensure_data_key(tenant, &wrapped).await?
        }
    };
    unwrap(master, tenant, stored)
}

/// The tenant's existing data key (restores never make one).
pub async fn existing_data_key(
    dir: &Directory,
    master: &MasterKey,
    tenant: &TenantId,
) -> Result<DataKey, BackupError> {
    match dir.data_key(tenant).await? {
        Some(stored) => unwrap(master, tenant, stored),
        None => Err(BackupError::Key(format!(
            "tenant {tenant} has no data key in this directory, so no backup of it was made here"
        ))),
    }
}

fn unwrap(
    master: &MasterKey,
    tenant: &TenantId,
    stored: StoredDataKey,
) -> Result<DataKey, BackupError> {
    match stored {
        StoredDataKey::Destroyed(at) => Err(BackupError::Key(format!(
            "tenant {tenant}'s data key was destroyed at {at} (the tenant was erased): its backups can no longer be read"
        ))),
        StoredDataKey::Wrapped(w) => {
            let key = open(&wrapping(master), &w, tenant.as_uuid().as_bytes()).ok_or_else(|| {
                BackupError::Key(format!(
                    "the master key does not open tenant {tenant}'s data key (a different {MASTER_KEY_ENV} or master.key?)"
                ))
            })?;
            let key: [u8; 32] = key
                .try_into()
                .map_err(|_| BackupError::Key("a stored data key has the wrong length".into()))?;
            Ok(DataKey(Aes256Gcm::new((&key).into())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_unaltered_and_with_its_aad() {
        let c = Aes256Gcm::new((&[7u8; 32]).into());
        let s = seal(&c, b"rows", b"frame 1");
        assert_eq!(open(&c, &s, b"frame 1").as_deref(), Some(&b"rows"[..]));
        assert!(open(&c, &s, b"frame 2").is_none(), "moved to another place");
        let mut flipped = s.clone();
        flipped[14] ^= 1;
        assert!(open(&c, &flipped, b"frame 1").is_none(), "a flipped byte");
        let other = Aes256Gcm::new((&[8u8; 32]).into());
        assert!(open(&other, &s, b"frame 1").is_none(), "another key");
    }
}

//! The master key and the keys derived from it.
//!
//! The master key is 32 random bytes: `BULKHEAD_MASTER_KEY` (64 hex digits) when set, else the
//! data folder's `secrets/master.key` (made on first use, mode 0600). It is never used
//! directly: every use takes a key derived from it for one purpose (HMAC-SHA256 of the
//! purpose's name), so a key of one purpose never verifies another's.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The environment variable holding the master key.
pub const MASTER_KEY_ENV: &str = "BULKHEAD_MASTER_KEY";

/// Why the master key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key's text is not 64 hex digits.
    #[error("{0} is not 64 hex digits (32 bytes)")]
    Malformed(String),
    /// The key file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// The master key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

fn parse_hex_key(text: &str, whence: &str) -> Result<[u8; 32], KeyError> {
    hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| KeyError::Malformed(whence.to_string()))
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> KeyError {
    move |source| KeyError::Io { context, source }
}

/// HMAC-SHA256 under `key`.
pub fn hmac(key: &[u8; 32]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

impl MasterKey {
    /// From raw bytes (tests, benchmarks).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// `BULKHEAD_MASTER_KEY`, else `secrets_dir/master.key`; `None` when neither exists
    /// (for processes that must use the installation's key and never make one).
    pub fn load_existing(secrets_dir: &Path) -> Result<Option<Self>, KeyError> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
            return Ok(Some(Self(parse_hex_key(&text, MASTER_KEY_ENV)?)));
        }
        let path = secrets_dir.join("master.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(Self(parse_hex_key(
                &text,
                &path.display().to_string(),
            )?))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(format!("reading {}", path.display()))(e)),
        }
    }

    /// `BULKHEAD_MASTER_KEY`, else `secrets_dir/master.key` (created on first use).
    pub fn load(secrets_dir: &Path) -> Result<Self, KeyError> {
        if let Some(key) = Self::load_existing(secrets_dir)? {
            return Ok(key);
        }
        let path = secrets_dir.join("master.key");
        let key: [u8; 32] = rand::random();
        std::fs::create_dir_all(secrets_dir)
            .map_err(io(format!("creating {}", secrets_dir.display())))?;
        let mut f = match std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f,
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path)
                    .map_err(io(format!("reading {}", path.display())))?;
                return Ok(Self(parse_hex_key(&text, &path.display().to_string())?));
            }
            Err(e) => return Err(io(format!("creating {}", path.display()))(e)),
        };
        f.write_all(hex::encode(key).as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io(format!("writing {}", path.display())))?;
        Ok(Self(key))
    }

    /// The key for `purpose` (a fixed name with a version, e.g. `bulkhead certificate v1`).
    pub fn derived(&self, purpose: &str) -> [u8; 32] {
        let mut mac = hmac(&self.0);
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn certificate_mac(&self, text: &str) -> Hmac<Sha256> {
        let mut mac = hmac(&self.derived("bulkhead certificate v1"));
        mac.update(text.as_bytes());
        mac
    }

    /// Signs `text` (hex HMAC-SHA256 under the certificate key).
    pub fn sign(&self, text: &str) -> String {
        hex::encode(self.certificate_mac(text).finalize().into_bytes())
    }

    /// True when `signature` is `text`'s (compared in constant time).
    pub fn verify(&self, text: &str, signature: &str) -> bool {
        hex::decode(signature)
            .is_ok_and(|sig| self.certificate_mac(text).verify_slice(&sig).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_altered_texts_do_not() {
        let m = MasterKey::from_bytes([1; 32]);
        let sig = m.sign("{\"rows\": 3}");
        assert!(m.verify("{\"rows\": 3}", &sig));
        assert!(!m.verify("{\"rows\": 4}", &sig));
        assert!(!MasterKey::from_bytes([2; 32]).verify("{\"rows\": 3}", &sig));
    }

    #[test]
    fn purposes_get_different_keys() {
        let m = MasterKey::from_bytes([1; 32]);
        assert_ne!(m.derived("a v1"), m.derived("b v1"));
        assert_eq!(m.derived("a v1"), m.derived("a v1"));
    }

    #[test]
    fn a_key_file_is_made_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        if std::env::var(MASTER_KEY_ENV).is_ok() {
            return;
        }
        let a = MasterKey::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let b = MasterKey::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.derived("x"), b.derived("x"));
        std::fs::write(dir.path().join("master.key"), "zz").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            MasterKey::load(dir.path()),
            Err(KeyError::Malformed(_))
        ));
    }
}

//! Installation-wide facts: the secret under which tenant objects on the clusters are named,
//! and which naming scheme those objects follow now.
//!
//! Invariant: the secret never leaves Bulkhead's processes: no name, log line or API answer
//! carries it, only names derived from it.

use crate::{Directory, DirectoryError};

/// How the objects of tenants on the clusters are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamingScheme {
    /// Built from the tenant id (installations before directory version 9), until renamed.
    Legacy,
    /// A keyed hash of (service, tenant id): the catalogs name no tenant.
    Keyed,
}

/// The naming secret and the scheme in force.
#[derive(Clone)]
pub struct NamingSecret {
    /// The scheme the clusters' objects follow.
    pub scheme: NamingScheme,
    /// 32 random bytes, made when the directory was created or upgraded.
    pub key: [u8; 32],
}

impl std::fmt::Debug for NamingSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamingSecret")
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// The installation's naming secret and scheme.
    pub async fn naming_secret(&self) -> Result<NamingSecret, DirectoryError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT naming_key, naming FROM directory.installation", &[])
            .await?;
        let bytes: Vec<u8> = row.get(0);
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            DirectoryError::Corrupt("installation: naming key is not 32 bytes".into())
        })?;
        let scheme = match row.get::<_, &str>(1) {
            "keyed" => NamingScheme::Keyed,
            "legacy" => NamingScheme::Legacy,
            other => {
                return Err(DirectoryError::Corrupt(format!(
                    "installation: unknown naming scheme `{other}`"
                )))
            }
        };
        Ok(NamingSecret { scheme, key })
    }

    /// Records that every tenant object now follows the keyed scheme.
    pub async fn finish_renaming(&self) -> Result<(), DirectoryError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE directory.installation SET naming = 'keyed', renamed_at = now() WHERE naming = 'legacy'",
                &[],
            )
            .await?;
        Ok(())
    }
}

//! Signed tenant contexts: the key a pool database keeps for its shared tenants' role, and
//! the MAC the gateway sets beside the tenant setting so that `bulkhead.current_tenant()`
//! accepts the context (see the provisioner's `sql/helpers.sql`).
//!
//! All shared tenants of a pool database run as one role, so a switch between them changes
//! two settings and no role: PostgreSQL keeps its role membership cache and its plans. What
//! the role switch used to add — a second control the tenant's own SQL cannot defeat — is
//! the MAC: HMAC-SHA-256 under the database's key of `"<tenant id>:<backend pid>"`. The key
//! is readable by the gateway's login and never by a tenant's role; naming the backend
//! process makes a MAC seen in one session worthless in any other.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use bulkhead_model::TenantId;

/// The query that reads a database's signer (no row: its contexts are not signed; an error:
/// helpers older than signed contexts).
pub(super) const SIGNER_QUERY: &str = "SELECT r.rolname, pg_catalog.encode(k.key, 'hex') FROM bulkhead.context_key k JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) k.role_oid";

/// A database's signed-context role and its key.
pub struct Signer {
    /// The role shared tenants run as.
    pub role: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// From the role's name and the key in hex, as [`SIGNER_QUERY`] returns them.
    pub(super) fn from_row(role: String, key_hex: &str) -> Option<Self> {
        let key = hex::decode(key_hex).ok()?;
        (key.len() >= 16).then_some(Self { role, key })
    }

    /// The MAC of `tenant`'s context on the backend process `pid`, in lowercase hex.
    pub fn mac(&self, tenant: &TenantId, pid: i32) -> String {
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes a key of any length"),
        };
        mac.update(format!("{}:{pid}", tenant.as_uuid()).as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_is_hmac_sha256_of_tenant_and_pid() {
        // Checked against Python's hmac.new(b'Jefe' * 4, msg, sha256).
        let s = Signer::from_row("r".into(), &hex::encode(b"Jefe".repeat(4))).expect("key");
        let t: TenantId = "00000000-0000-4000-8000-000000000001".parse().expect("id");
        assert_eq!(
            s.mac(&t, 42),
            "8639e7a4228ef9473155e67977ac9ddba467483041618a4375ae792b7e0fa3f5"
        );
        assert_ne!(s.mac(&t, 42), s.mac(&t, 43));
        assert!(Signer::from_row("r".into(), "zz").is_none());
    }
}

//! Tenant identity: a UUID that never changes, whatever happens to the tenant's data.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ModelError;

/// A tenant's permanent id (the `tenant_id` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(Uuid);

impl TenantId {
    /// A new random id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// Whether `text` could be read as a UUID in any spelling: any case, with hyphens
    /// anywhere or none, in braces, or behind a `urn:uuid:` prefix. Such text always names a
    /// tenant by id and never by slug (slugs of this shape are refused), so no slug can ever
    /// be taken for another tenant's id.
    pub fn is_id_shaped(text: &str) -> bool {
        let t = text.trim();
        let t = match t.get(..9) {
            Some(p) if p.eq_ignore_ascii_case("urn:uuid:") => &t[9..],
            _ => t,
        };
        let t = t
            .strip_prefix('{')
            .and_then(|x| x.strip_suffix('}'))
            .unwrap_or(t);
        let mut digits = 0usize;
        for b in t.bytes() {
            match b {
                b'-' => {}
                b if b.is_ascii_hexdigit() => digits += 1,
                _ => return false,
            }
        }
        digits == 32
    }

    /// The 32 lowercase hex digits without dashes, used to build identifiers such as `t_<hex>`.
    pub fn simple(&self) -> String {
        self.0.simple().to_string()
    }
}

impl From<Uuid> for TenantId {
    fn from(u: Uuid) -> Self {
        Self(u)
    }
}

impl FromStr for TenantId {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only the canonical hyphenated form: braces, URNs and bare hex are refused so that
        // one tenant has exactly one spelling in logs, tokens and the directory.
        let t = s.trim();
        if t.len() != 36 {
            return Err(ModelError::TenantId(s.to_string()));
        }
        Uuid::parse_str(t)
            .map(Self)
            .map_err(|_| ModelError::TenantId(s.to_string()))
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_the_canonical_form() {
        let id: TenantId = "3f2b8c1e-0d4a-4e1b-9c57-6a0f1e2d3c4b"
            .parse()
            .expect("valid");
        assert_eq!(id.to_string(), "3f2b8c1e-0d4a-4e1b-9c57-6a0f1e2d3c4b");
        assert_eq!(id.simple(), "3f2b8c1e0d4a4e1b9c576a0f1e2d3c4b");
        for bad in [
            "",
            "acme",
            "3f2b8c1e0d4a4e1b9c576a0f1e2d3c4b",
            "{3f2b8c1e-0d4a-4e1b-9c57-6a0f1e2d3c4b}",
            "3f2b8c1e-0d4a-4e1b-9c57-6a0f1e2d3c4z",
        ] {
            assert!(bad.parse::<TenantId>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn every_spelling_of_a_uuid_is_id_shaped() {
        for shaped in [
            "3f2b8c1e-0d4a-4e1b-9c57-6a0f1e2d3c4b",
            "3F2B8C1E-0D4A-4E1B-9C57-6A0F1E2D3C4B",
            "3f2b8c1e0d4a4e1b9c576a0f1e2d3c4b",
            "{3f2b8c1e-0d4a-4e1b-9c57-6a0f1e2d3c4b}",
            "urn:uuid:3f2b8c1e-0d4a-4e1b-9c57-6a0f1e2d3c4b",
            "URN:UUID:3f2b8c1e0d4a4e1b9c576a0f1e2d3c4b",
            "3f2b-8c1e0d4a4e1b9c576a0f1e2d3c-4b",
            " 3f2b8c1e-0d4a-4e1b-9c57-6a0f1e2d3c4b ",
        ] {
            assert!(TenantId::is_id_shaped(shaped), "{shaped}");
        }
        for not in [
            "acme",
            "3f2b8c1e0d4a4e1b9c576a0f1e2d3c4",
            "3f2b8c1e0d4a4e1b9c576a0f1e2d3c4b0",
            "t-3f2b8c1e0d4a4e1b9c576a0f1e2d3c4b",
            "3f2b8c1e-0d4a-4e1b-9c57-6a0f1e2d3c4z",
            "",
        ] {
            assert!(!TenantId::is_id_shaped(not), "{not}");
        }
    }
}

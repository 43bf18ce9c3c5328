//! Names chosen by users: tenant slugs, cluster and service names, regions, tiers.
//! They are validated to a small alphabet so that they read well in URLs, logs and CLI
//! output. They are never used to build SQL identifiers: those come from ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ModelError;

const MAX_LEN: usize = 63;

/// Service names become part of database names (`bh_<service>_tmpl`), which PostgreSQL caps
/// at 63 bytes.
const SERVICE_MAX_LEN: usize = 48;

fn check_service(
    kind: &'static str,
    value: &str,
    digit_first: bool,
    underscore: bool,
) -> Result<(), ModelError> {
    if value.len() > SERVICE_MAX_LEN {
        return Err(ModelError::Name {
            kind,
            value: value.to_string(),
            rule: "service names have at most 48 characters",
        });
    }
    check(kind, value, digit_first, underscore)
}

/// Checks `value` against the common rule: 1 to 63 characters, lowercase ASCII letters,
/// digits, `-` and `_` (where allowed), starting with a letter (or a digit for slugs), not
/// ending with a separator.
fn check(
    kind: &'static str,
    value: &str,
    digit_first: bool,
    underscore: bool,
) -> Result<(), ModelError> {
    let rule = match (digit_first, underscore) {
        (true, _) => "use 1 to 63 lowercase letters, digits and '-', starting with a letter or digit and not ending with '-'",
        (false, true) => "use 1 to 63 lowercase letters, digits, '-' and '_', starting with a letter and not ending with '-' or '_'",
        (false, false) => "use 1 to 63 lowercase letters, digits and '-', starting with a letter and not ending with '-'",
    };
    let err = || ModelError::Name {
        kind,
        value: value.to_string(),
        rule,
    };
    let bytes = value.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return Err(err());
    };
    if bytes.len() > MAX_LEN {
        return Err(err());
    }
    let first_ok = first.is_ascii_lowercase() || (digit_first && first.is_ascii_digit());
    let last_ok = last.is_ascii_lowercase() || last.is_ascii_digit();
    let body_ok = bytes.iter().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || (underscore && *b == b'_')
    });
    if first_ok && last_ok && body_ok {
        Ok(())
    } else {
        Err(err())
    }
}

/// The slug rule: the common rule (digits may come first, no `_`), and never the shape of a
/// tenant id, so that text naming a tenant is read as an id or as a slug, never both.
fn check_slug(
    kind: &'static str,
    value: &str,
    digit_first: bool,
    underscore: bool,
) -> Result<(), ModelError> {
    check(kind, value, digit_first, underscore)?;
    if crate::TenantId::is_id_shaped(value) {
        return Err(ModelError::Name {
            kind,
            value: value.to_string(),
            rule: "a slug may not look like a tenant id (32 hex digits, with or without hyphens): such text always names a tenant by id; choose a name such as acme or acme-2",
        });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, digit_first = $df:expr, underscore = $us:expr) => {
        name_type!($(#[$doc])* $name, $kind, digit_first = $df, underscore = $us, check = check);
    };
    ($(#[$doc:meta])* $name:ident, $kind:literal, digit_first = $df:expr, underscore = $us:expr, check = $check:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ModelError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $check($kind, s, $df, $us)?;
                Ok(Self(s.to_string()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = ModelError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $check($kind, &s, $df, $us)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A tenant's human-readable handle, unique in the directory (`acme`, `banco-acme`).
    Slug, "slug", digit_first = true, underscore = false, check = check_slug
);

impl Slug {
    /// A slug read back from a directory written before slugs shaped like tenant ids were
    /// refused: the older rule only. Such a slug is kept so that its tenant can be found
    /// and renamed; see [`Slug::is_id_shaped`].
    pub fn stored(s: &str) -> Result<Self, ModelError> {
        check("slug", s, true, false)?;
        Ok(Self(s.to_string()))
    }

    /// Whether this (stored) slug has the shape of a tenant id; the gateway refuses to route
    /// its tenant until it is renamed.
    pub fn is_id_shaped(&self) -> bool {
        crate::TenantId::is_id_shaped(&self.0)
    }
}
name_type!(
    /// A PostgreSQL server registered with Bulkhead (`local`, `eu-1`).
    ClusterName, "cluster name", digit_first = false, underscore = true
);
name_type!(
    /// An application's database as clients name it (`billing`).
    ServiceName, "service name", digit_first = false, underscore = true, check = check_service
);
name_type!(
    /// A data-residency region (`local`, `eu`, `us-east`).
    Region, "region", digit_first = false, underscore = true
);
name_type!(
    /// A commercial tier that can select an isolation mode (`free`, `business`).
    Tier, "tier", digit_first = false, underscore = true
);

impl Tier {
    /// The tier of tenants created without one: `free`.
    pub fn free() -> Self {
        Tier("free".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_accept_the_documented_alphabet() {
        for ok in ["acme", "banco-acme", "42", "a", "x1-y2"] {
            assert!(ok.parse::<Slug>().is_ok(), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "Acme",
            "acme-",
            "-acme",
            "a_b",
            "a b",
            "a\"; drop table x; --",
            "é",
            long.as_str(),
        ] {
            let err = bad.parse::<Slug>().expect_err(bad);
            assert!(err.to_string().contains("invalid slug"), "{err}");
        }
    }

    #[test]
    fn slugs_never_take_the_shape_of_a_tenant_id() {
        for bad in [
            "d95c7733-63af-4b7a-b7fe-533c6dcb7ee9",
            "d95c773363af4b7ab7fe533c6dcb7ee9",
            "d95c-7733-63af4b7ab7fe533c6dcb7ee9",
        ] {
            let err = bad.parse::<Slug>().expect_err(bad);
            assert!(
                err.to_string().contains("may not look like a tenant id"),
                "{err}"
            );
            assert!(serde_json::from_str::<Slug>(&format!("\"{bad}\"")).is_err());
            let stored = Slug::stored(bad).expect("an older directory may hold it");
            assert!(stored.is_id_shaped());
        }
        for ok in [
            "d95c7733",
            "acme-d95c773363af4b7ab7fe533c6dcb7ee9",
            "deadbeef-cafe",
        ] {
            assert!(ok.parse::<Slug>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn names_must_start_with_a_letter() {
        assert!("local".parse::<ClusterName>().is_ok());
        assert!("eu_1".parse::<ClusterName>().is_ok());
        assert!("1eu".parse::<ClusterName>().is_err());
        assert!("billing".parse::<ServiceName>().is_ok());
        assert!("Billing".parse::<ServiceName>().is_err());
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<Slug>("\"ACME\"").is_err());
        assert_eq!(
            serde_json::from_str::<Slug>("\"acme\"").ok(),
            Some(Slug("acme".into()))
        );
    }
}

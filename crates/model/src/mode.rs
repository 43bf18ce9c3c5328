//! Isolation modes and lifecycle states.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ModelError;

macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident, $kind:literal, { $($(#[$vdoc:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The lowercase word used in the directory, the CLI and the API.
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl FromStr for $name {
            type Err = ModelError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(ModelError::Word {
                        kind: $kind,
                        value: s.to_string(),
                        allowed: concat!($($word, " "),+),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

word_enum!(
    /// Where a tenant's data lives.
    Mode, "isolation mode", {
        /// Shared tables in the pool database, guarded by row-level security.
        Shared = "shared",
        /// A schema of its own in the pool database.
        Schema = "schema",
        /// A database of its own on a cluster.
        Database = "database",
    }
);

word_enum!(
    /// The lifecycle of one (service, tenant) placement.
    PlacementState, "placement state", {
        /// Being created; not routed yet.
        Provisioning = "provisioning",
        /// Live: the gateway routes to it.
        Active = "active",
        /// A move is in flight.
        Moving = "moving",
        /// Refused by the gateway until resumed.
        Suspended = "suspended",
        /// Being torn down.
        Deleting = "deleting",
        /// Gone; kept as a record.
        Deleted = "deleted",
        /// Provisioning failed; the reason is recorded and a retry is possible.
        Failed = "failed",
    }
);

word_enum!(
    /// Whether a tenant may be served at all.
    TenantState, "tenant state", {
        /// Served.
        Active = "active",
        /// Refused everywhere until resumed.
        Suspended = "suspended",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>().ok(), Some(*m));
        }
        let err = "row".parse::<Mode>().expect_err("row is not a mode");
        assert!(err.to_string().contains("shared schema database"), "{err}");
    }
}

//! Validation errors of domain values.

/// Why a piece of text is not a valid domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// Not a UUID.
    #[error(
        "malformed tenant id `{0}`: expected a UUID such as 3f2b8c1e-0d4a-4e1b-9c57-6a0f1e2d3c4b"
    )]
    TenantId(String),
    /// A slug or name breaks the naming rule.
    #[error("invalid {kind} `{value}`: {rule}")]
    Name {
        /// What was being named ("slug", "cluster name", ...).
        kind: &'static str,
        /// The rejected text.
        value: String,
        /// The rule it broke.
        rule: &'static str,
    },
    /// An enum value that is not one of the allowed words.
    #[error("invalid {kind} `{value}`: expected one of {allowed}")]
    Word {
        /// What was being parsed.
        kind: &'static str,
        /// The rejected text.
        value: String,
        /// The allowed words.
        allowed: &'static str,
    },
}

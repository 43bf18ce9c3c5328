//! Malformed protocol input.

/// Why bytes are not a valid protocol message. Closes that connection only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A length field below its minimum or above the limit.
    #[error("invalid message length {len} (allowed {min}..={max})")]
    Length {
        /// The declared length.
        len: i64,
        /// The smallest allowed.
        min: usize,
        /// The largest allowed.
        max: usize,
    },
    /// A message type byte that is not defined here.
    #[error("unknown message type {0:?}")]
    UnknownTag(char),
    /// A message whose body does not match its type.
    #[error("malformed {what} message: {detail}")]
    Malformed {
        /// The message type.
        what: &'static str,
        /// What is wrong.
        detail: &'static str,
    },
    /// A startup packet asking for a protocol version we do not speak.
    #[error("unsupported protocol version {major}.{minor}")]
    Version {
        /// Major.
        major: u16,
        /// Minor.
        minor: u16,
    },
}

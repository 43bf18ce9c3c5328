//! The PostgreSQL v3 wire protocol, sans I/O: decoders take a `BytesMut` and return
//! `Ok(None)` when they need more bytes; encoders append to a `BytesMut`. The gateway wraps
//! these around its sockets; tests feed them bytes.
//!
//! Invariant: nothing here panics on untrusted bytes. Every length is checked against what
//! is buffered and against a limit before anything is read or allocated.

mod backend;
mod encode;
mod error;
mod frame;
mod frontend;
mod sqlstate;
mod startup;

pub use backend::{data_row_texts, BackendMessage, ErrorFields, TransactionStatus};
pub use encode::{backend as to_client, frontend as to_server};
pub use error::ProtocolError;
pub use frame::{Frame, MAX_MESSAGE_LEN};
pub use frontend::{FrontendMessage, ParamFormat};
pub use sqlstate::SqlState;
pub use startup::{Startup, MAX_STARTUP_LEN, PROTOCOL_3_0};

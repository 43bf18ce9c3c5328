//! The gateway.
pub mod auth;
mod error;
pub mod guard;

pub use error::GatewayError;

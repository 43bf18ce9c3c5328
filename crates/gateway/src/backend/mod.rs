//! The backend side: connections to PostgreSQL and their pools.

pub mod affinity;
mod conn;
mod held;
mod pool;
mod signer;

pub use conn::{BackendTarget, ServerConn, SessionValues};
pub use held::HeldContext;
pub use pool::{Leased, PoolSettings, Pools};
pub use signer::Signer;

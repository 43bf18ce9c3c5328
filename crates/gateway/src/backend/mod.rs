//! The backend side: connections to PostgreSQL and their pools.

mod conn;
mod held;
mod pool;

pub use conn::{BackendTarget, ServerConn};
pub use held::HeldContext;
pub use pool::{Leased, PoolSettings, Pools};

//! The backend side: connections to PostgreSQL and their pools.

mod conn;
mod pool;

pub use conn::{BackendTarget, ServerConn};
pub use pool::{Leased, PoolSettings, Pools};

//! The data plane: a PostgreSQL wire-protocol server and transaction pooler. Clients connect
//! with the service's name as database and a tenant API key or token as password; every
//! transaction runs on a pooled backend connection of the tenant's placement, inside the
//! tenant's context (role, search_path, tenant setting), after the guard has checked it.
//!
//! Layout: `frontend/` (client side: startup, login, socket), `session.rs` (transaction
//! pooling), `expect.rs` (reply ordering), `backend/` (server connections and pools),
//! `route.rs` (placement → backend), `guard.rs` (what tenants may send), `auth.rs`.

pub mod auth;
pub mod backend;
mod cache;
mod cancel;
mod error;
mod expect;
pub mod frontend;
pub mod guard;
mod jit;
pub mod limits;
pub mod metrics;
pub mod route;
mod session;
pub mod watch;

pub use error::GatewayError;
pub use frontend::{serve, start, GatewaySettings, GatewayState, Running};

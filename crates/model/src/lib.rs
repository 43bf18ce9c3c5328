//! Bulkhead's domain vocabulary. Every id and name is a newtype validated when it is built,
//! so the rest of the code never handles a bare string where a tenant, a slug or a mode is
//! meant.
//!
//! Invariant: a value of any type here has passed its validation; text from users becomes one
//! only through `FromStr`/`TryFrom`, whose errors say what was wrong and what is allowed.

mod error;
mod ids;
mod mode;
mod names;

pub use error::ModelError;
pub use ids::TenantId;
pub use mode::{Mode, PlacementState, TenantState};
pub use names::{ClusterName, Region, ServiceName, Slug, Tier};

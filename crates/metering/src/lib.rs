//! Usage metering per tenant.
//!
//! Three sources, one ledger: the gateway counts transactions, statements, rows, bytes and
//! backend time per tenant ([`counters`]) and flushes them as keyed usage events
//! ([`flush`]); applications record their own billable events inside their transactions
//! through `bulkhead.usage()` ([`outbox`]); storage is sampled per mode ([`storage`]). All of
//! it lands in the control database's `metering` schema, rolled up per hour with idempotent
//! upserts, and is read back as usage, cost and exports ([`report`]).

pub mod counters;
pub mod flush;
pub mod outbox;
pub mod places;
pub mod report;
pub mod storage;

use bulkhead_directory::{DirectoryError, ErrorKind};

pub use counters::{Counts, Meters, TenantMeter, GATEWAY_METRICS};
pub use flush::{Flusher, GatewayBatch};
pub use outbox::Harvest;
pub use report::{CostLine, ExportRow, Prices, UsageLine};
pub use storage::StorageSample;

/// Why metering failed.
#[derive(Debug, thiserror::Error)]
pub enum MeteringError {
    /// The control database failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// Reaching a tenant database failed.
    #[error(transparent)]
    Provision(#[from] bulkhead_provisioner::ProvisionError),
    /// A statement on a tenant database failed.
    #[error("{context}: {message}")]
    Sql {
        /// What we were doing.
        context: String,
        /// PostgreSQL's message.
        message: String,
    },
    /// The request is malformed (a price, a date).
    #[error("{0}")]
    Invalid(String),
}

impl MeteringError {
    /// The kind, for status and exit codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            MeteringError::Directory(e) => e.kind(),
            MeteringError::Provision(e) => e.kind(),
            MeteringError::Sql { .. } => ErrorKind::Internal,
            MeteringError::Invalid(_) => ErrorKind::Invalid,
        }
    }

    pub(crate) fn sql(context: String) -> impl FnOnce(tokio_postgres::Error) -> MeteringError {
        move |e| MeteringError::Sql {
            context,
            message: bulkhead_provisioner::describe(&e),
        }
    }
}

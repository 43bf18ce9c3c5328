//! Errors of provisioning and migrating.

use bulkhead_directory::{DirectoryError, ErrorKind};

/// Why provisioning, teardown or a migration failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The directory refused or failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// A statement on a cluster failed.
    #[error("{context}: {message}")]
    Sql {
        /// What we were doing, naming the database.
        context: String,
        /// PostgreSQL's message (with SQLSTATE), or the connection error.
        message: String,
    },
    /// The tenant is pinned to a region with no usable cluster.
    #[error("no cluster in region `{region}` can take tenant `{tenant}`; add one with `bulkhead cluster add NAME --dsn DSN --region {region}`")]
    NoClusterInRegion {
        /// The region.
        region: String,
        /// The tenant slug.
        tenant: String,
    },
    /// The chosen cluster is in another region than the tenant's pin.
    #[error("cluster `{cluster}` is in region `{cluster_region}`, but tenant `{tenant}` is pinned to `{tenant_region}`")]
    RegionMismatch {
        /// The cluster.
        cluster: String,
        /// Its region.
        cluster_region: String,
        /// The tenant.
        tenant: String,
        /// The tenant's region.
        tenant_region: String,
    },
    /// The chosen cluster is at capacity.
    #[error("cluster `{cluster}` is full ({capacity} placements); choose another with --cluster or raise its capacity")]
    ClusterFull {
        /// The cluster.
        cluster: String,
        /// Its capacity.
        capacity: i32,
    },
    /// The new placement failed its health check.
    #[error("health check of tenant `{tenant}` failed: {reason}")]
    HealthCheck {
        /// The tenant.
        tenant: String,
        /// What failed.
        reason: String,
    },
    /// A migration file or statement cannot be used.
    #[error("{0}")]
    Migration(String),
    /// Invalid request.
    #[error("{0}")]
    Invalid(String),
}

impl ProvisionError {
    /// The kind, for status codes and exit codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProvisionError::Directory(e) => e.kind(),
            ProvisionError::NoClusterInRegion { .. }
            | ProvisionError::RegionMismatch { .. }
            | ProvisionError::ClusterFull { .. } => ErrorKind::Unsuitable,
            ProvisionError::Migration(_) | ProvisionError::Invalid(_) => ErrorKind::Invalid,
            ProvisionError::Sql { .. } | ProvisionError::HealthCheck { .. } => ErrorKind::Internal,
        }
    }

    /// Wraps a PostgreSQL error with what we were doing.
    pub fn sql(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> ProvisionError {
        let context = context.into();
        move |e| ProvisionError::Sql {
            context,
            message: describe(&e),
        }
    }
}

/// PostgreSQL's message with its SQLSTATE, or the error chain of a connection failure.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(cause) = cur {
        text = format!("{text}: {cause}");
        cur = cause.source();
    }
    text
}

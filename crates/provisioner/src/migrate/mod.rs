//! Migrations: reading files, planning statements, applying to one target, and fanning out
//! to every target of a service.

mod apply;
mod batch;
mod fanout;
mod files;
mod plan;
mod status;
mod target;

pub use apply::{applied_versions, apply_pending, pending, Applied, ApplyFailure, ApplySettings};
pub use batch::{apply_batch, BATCH_SIZE};
pub use fanout::{
    migrate_service, moves_lock_key, MigrateOptions, MigrateSummary, Outcome, Progress,
    TargetOutcome,
};
pub use files::{parse_file_name, read_migrations_dir};
pub use plan::{plan, MigrationPlan, PlannedStatement, StatementClass};
pub use status::{migration_status, TargetStatus};
pub use target::{Target, TargetKind, POLICY_NAME};

use bulkhead_directory::{Directory, Service};

use crate::ProvisionError;

/// The plans of every registered migration of a service, in version order.
pub async fn plans_for(
    dir: &Directory,
    service: &Service,
) -> Result<Vec<MigrationPlan>, ProvisionError> {
    dir.migrations(&service.name)
        .await?
        .iter()
        .map(|m| plan(m, &service.reference_tables))
        .collect()
}

//! The tamper-evident audit log.
//!
//! Every control-plane action and every refusal at the gateway becomes an event in the
//! control database's `audit.events`: append-only (a trigger refuses UPDATE, DELETE and
//! TRUNCATE, and no runtime role has any privilege on it), and tamper-evident: each tenant's
//! events form a hash chain with a MAC under a key derived from the master key for that
//! chain alone (see [`seal`]). [`AuditLog::verify`] says exactly which entry was altered,
//! removed, inserted or reordered (see [`verify`]).
//!
//! The gateway records through [`AuditWriter`], which batches off the request path;
//! the control plane records synchronously, after the action succeeded.

pub mod event;
pub mod seal;
pub mod verify;
mod writer;

use bulkhead_directory::{AuditEntry, Directory, DirectoryError};
use bulkhead_keys::MasterKey;
use bulkhead_model::TenantId;
use chrono::{DateTime, Utc};

pub use event::{action, cli_actor, migration_events, move_details, Event};
pub use seal::KeyedSeal;
pub use verify::{ChainReport, Finding, FindingKind};
pub use writer::AuditWriter;

/// Why reading or writing the log failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The control database failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

impl AuditError {
    /// The kind, for status and exit codes.
    pub fn kind(&self) -> bulkhead_directory::ErrorKind {
        match self {
            AuditError::Directory(e) => e.kind(),
        }
    }
}

/// The log: the directory it lives in and the key its chains are sealed with.
#[derive(Clone, Debug)]
pub struct AuditLog {
    dir: Directory,
    seal: KeyedSeal,
}

impl AuditLog {
    /// The log in `dir`, sealed under keys derived from `master`.
    pub fn new(dir: Directory, master: MasterKey) -> Self {
        Self {
            dir,
            seal: KeyedSeal::new(master),
        }
    }

    /// Appends one event now.
    pub async fn record(&self, event: Event) -> Result<(), AuditError> {
        self.record_all(vec![event]).await
    }

    /// Appends events in one transaction.
    pub async fn record_all(&self, events: Vec<Event>) -> Result<(), AuditError> {
        self.append(events, false).await
    }

    /// Appends events again after an attempt that failed, perhaps only in its reply: those
    /// already stored are not recorded twice.
    pub async fn record_again(&self, events: Vec<Event>) -> Result<(), AuditError> {
        self.append(events, true).await
    }

    async fn append(&self, events: Vec<Event>, retried: bool) -> Result<(), AuditError> {
        let entries = events.into_iter().map(Event::into_entry).collect();
        self.dir.append_audit(entries, &self.seal, retried).await?;
        Ok(())
    }

    /// Appends `event`; a failure is logged, not returned: the action it records is done
    /// already and must not be reported as failed.
    pub async fn record_or_log(&self, event: Event) {
        let (tenant, what) = (event.tenant, event.action.clone());
        if let Err(e) = self.record(event).await {
            tracing::error!(tenant = ?tenant, action = %what, error = %e, "recording an audit event failed");
        }
    }

    /// Events about `tenant` (all when None) since `since`, oldest first, at most `limit`.
    pub async fn list(
        &self,
        tenant: Option<&TenantId>,
        since: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, AuditError> {
        Ok(self.dir.audit_events(tenant, since, limit).await?)
    }

    /// The newest `limit` events about `tenant` (or all), newest first, of one `action`
    /// when given.
    pub async fn newest(
        &self,
        tenant: Option<&TenantId>,
        action: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, AuditError> {
        Ok(self.dir.newest_audit_events(tenant, action, limit).await?)
    }

    /// Verifies `tenant`'s chain, or every chain when None.
    pub async fn verify(&self, tenant: Option<&TenantId>) -> Result<Vec<ChainReport>, AuditError> {
        let chains = match tenant {
            Some(t) => vec![t.to_string()],
            None => self.dir.audit_chains().await?,
        };
        let mut reports = Vec::with_capacity(chains.len());
        for chain in chains {
            let (entries, head) = self.dir.audit_chain(&chain).await?;
            reports.push(verify::verify_chain(
                &self.seal,
                &chain,
                &entries,
                head.as_ref(),
            ));
        }
        Ok(reports)
    }

    /// A batched writer on this log (see [`AuditWriter`]), queueing up to 65,536 events.
    pub fn writer(&self) -> AuditWriter {
        self.writer_with_queue(writer::QUEUE)
    }

    /// A batched writer queueing at most `queue` events.
    pub fn writer_with_queue(&self, queue: usize) -> AuditWriter {
        AuditWriter::start(self.clone(), queue)
    }
}

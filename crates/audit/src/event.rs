//! An event to record: who did what to which tenant.

use bulkhead_directory::{AuditEntry, GLOBAL_CHAIN};
use bulkhead_model::TenantId;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// The actions recorded, by name.
pub mod action {
    /// A tenant was created (and provisioned).
    pub const TENANT_CREATED: &str = "tenant.created";
    /// A tenant was deleted.
    pub const TENANT_DELETED: &str = "tenant.deleted";
    /// A tenant was suspended.
    pub const TENANT_SUSPENDED: &str = "tenant.suspended";
    /// A suspended tenant was resumed.
    pub const TENANT_RESUMED: &str = "tenant.resumed";
    /// A tenant was given a new slug.
    pub const TENANT_RENAMED: &str = "tenant.renamed";
    /// A tenant API key was issued.
    pub const KEY_ISSUED: &str = "key.issued";
    /// A tenant API key was revoked.
    pub const KEY_REVOKED: &str = "key.revoked";
    /// A move switched the tenant to its new place.
    pub const MOVED: &str = "tenant.moved";
    /// A move's kept source was dropped.
    pub const MOVE_FINALIZED: &str = "tenant.move_finalized";
    /// A move was rolled back.
    pub const MOVE_ROLLED_BACK: &str = "tenant.move_rolled_back";
    /// A backup was taken.
    pub const BACKED_UP: &str = "tenant.backed_up";
    /// A backup was restored into the tenant.
    pub const RESTORED: &str = "tenant.restored";
    /// The tenant was cloned from another one's backup.
    pub const CLONED: &str = "tenant.cloned";
    /// A tenant's rows were rewound to a point in time.
    pub const REWOUND: &str = "tenant.rewound";
    /// A scheduled backup was taken.
    pub const SCHEDULED_BACKUP: &str = "tenant.scheduled_backup";
    /// A scheduled backup was removed by retention.
    pub const BACKUP_PRUNED: &str = "tenant.backup_pruned";
    /// The tenant was erased.
    pub const ERASED: &str = "tenant.erased";
    /// A migration was applied to the tenant's place.
    pub const MIGRATION_APPLIED: &str = "migration.applied";
    /// A login at the gateway failed.
    pub const LOGIN_FAILED: &str = "gateway.login_failed";
    /// The gateway's guard refused a statement.
    pub const REFUSED: &str = "gateway.refused";
    /// A tenant hit one of its limits.
    pub const LIMIT_HIT: &str = "gateway.limit_hit";
    /// The gateway's audit queue overflowed and dropped events (their count is recorded).
    pub const DROPPED: &str = "audit.dropped";
}

/// One event, before it is numbered and sealed into its chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event's own id (a retried append of it is recorded once).
    pub id: uuid::Uuid,
    /// The tenant concerned (its chain), or None for the global chain.
    pub tenant: Option<TenantId>,
    /// Who did it.
    pub actor: String,
    /// What happened (see [`action`]).
    pub action: String,
    /// The particulars.
    pub details: Value,
    /// When.
    pub at: DateTime<Utc>,
}

/// Now, at the microsecond precision PostgreSQL keeps (so the hash survives the round trip).
pub fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

impl Event {
    /// An event of `action` by `actor`, now.
    pub fn new(action: &str, actor: &str) -> Self {
        Self {
            id: uuid::Uuid::new_v4(),
            tenant: None,
            actor: actor.to_string(),
            action: action.to_string(),
            details: Value::Object(Default::default()),
            at: now_micros(),
        }
    }

    /// About `tenant`.
    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// With these particulars.
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// The chain the event goes to.
    pub fn chain(&self) -> String {
        self.tenant
            .map(|t| t.to_string())
            .unwrap_or_else(|| GLOBAL_CHAIN.to_string())
    }

    pub(crate) fn into_entry(self) -> AuditEntry {
        AuditEntry {
            id: 0,
            event_id: self.id,
            chain: self.chain(),
            n: 0,
            tenant_id: self.tenant,
            actor: self.actor,
            action: self.action,
            details: self.details,
            at: self.at,
            prev_hash: Vec::new(),
            hash: Vec::new(),
            mac: Vec::new(),
        }
    }
}

/// What an audit event says of a move.
pub fn move_details(m: &bulkhead_directory::Move) -> Value {
    serde_json::json!({
        "move": m.id.to_string(),
        "service": m.service.to_string(),
        "from": format!("{}@{}", m.from_mode, m.from_cluster),
        "to": format!("{}@{}", m.to_mode, m.to_cluster),
        "phase": m.phase.to_string(),
        "rows_copied": m.rows_copied,
    })
}

/// The events of a migration run: one per tenant place that was migrated to a newer version.
pub fn migration_events(
    actor: &str,
    service: &str,
    targets: impl IntoIterator<Item = (TenantId, i64, i64, String)>,
) -> Vec<Event> {
    targets
        .into_iter()
        .filter(|(_, from, to, _)| to > from)
        .map(|(t, from, to, label)| {
            Event::new(action::MIGRATION_APPLIED, actor)
                .tenant(t)
                .details(serde_json::json!({
                    "service": service, "from": from, "to": to, "target": label,
                }))
        })
        .collect()
}

/// The actor name of a CLI user: `cli:<login>`.
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

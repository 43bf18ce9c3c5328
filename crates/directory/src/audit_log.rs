//! The audit log's storage: entries appended to per-tenant hash chains, and read back in
//! storage order for listing and verification. What the hashes and MACs are is the audit
//! crate's business (through [`ChainSeal`]); this module only keeps each chain's entries
//! numbered and linked under a row lock on its head, so concurrent writers (the gateway, the
//! API, a CLI running a move) append in one order.

use bulkhead_model::TenantId;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{Directory, DirectoryError};

/// The chain of events that concern no tenant.
pub const GLOBAL_CHAIN: &str = "global";

/// One entry of the log, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Storage order (not covered by the hash).
    pub id: i64,
    /// The event's own id: an append of an id already stored is skipped.
    pub event_id: uuid::Uuid,
    /// The chain: the tenant's id, or [`GLOBAL_CHAIN`].
    pub chain: String,
    /// The entry's number in its chain, from 1.
    pub n: i64,
    /// The tenant concerned.
    pub tenant_id: Option<TenantId>,
    /// Who did it (`api`, `cli:<user>`, `gateway`).
    pub actor: String,
    /// What happened (`tenant.created`, `gateway.login_failed`, ...).
    pub action: String,
    /// The particulars.
    pub details: Value,
    /// When (microsecond precision).
    pub at: DateTime<Utc>,
    /// The previous entry's hash (32 zero bytes for the first).
    pub prev_hash: Vec<u8>,
    /// This entry's hash.
    pub hash: Vec<u8>,
    /// The MAC of the hash.
    pub mac: Vec<u8>,
}

/// The newest entry of a chain, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    /// The chain.
    pub chain: String,
    /// The number of its newest entry (0: none yet).
    pub n: i64,
    /// That entry's hash.
    pub hash: Vec<u8>,
    /// The MAC over both.
    pub mac: Vec<u8>,
}

/// Computes hashes and MACs: implemented by the audit crate.
pub trait ChainSeal: Send + Sync {
    /// Fills `hash` and `mac` of an entry whose other fields are final.
    fn seal(&self, entry: &mut AuditEntry);
    /// Fills `mac` of a head.
    fn seal_head(&self, head: &mut AuditHead);
}

/// The hash before a chain's first entry.
pub const GENESIS: [u8; 32] = [0; 32];

fn entry_of(r: &tokio_postgres::Row) -> AuditEntry {
    AuditEntry {
        id: r.get("id"),
        event_id: r.get("event_id"),
        chain: r.get("chain"),
        n: r.get("n"),
        tenant_id: r
            .get::<_, Option<uuid::Uuid>>("tenant_id")
            .map(TenantId::from),
        actor: r.get("actor"),
        action: r.get("action"),
        details: r.get("details"),
        at: r.get("at"),
        prev_hash: r.get("prev_hash"),
        hash: r.get("hash"),
        mac: r.get("mac"),
    }
}

const ENTRY_COLUMNS: &str =
    "id, event_id, chain, n, tenant_id, actor, action, details, at, prev_hash, hash, mac";

impl Directory {
    /// Appends `entries` (their `n`, `prev_hash`, `hash` and `mac` are filled here) in
    /// one transaction: each chain's head is locked, the entries numbered and linked after
    /// it, sealed, stored, and the head moved. With `retried` (an earlier attempt may have
    /// committed without its caller hearing so), entries whose `event_id` is stored already
    /// are skipped. Returns how many were stored now.
    pub async fn append_audit(
        &self,
        mut entries: Vec<AuditEntry>,
        seal: &dyn ChainSeal,
        retried: bool,
    ) -> Result<usize, DirectoryError> {
        let mut client = self.client().await?;
        if retried && !entries.is_empty() {
            // Only an earlier attempt of the same caller has these ids, and it is over.
            let ids: Vec<uuid::Uuid> = entries.iter().map(|e| e.event_id).collect();
            let stored: std::collections::HashSet<uuid::Uuid> = client
                .query(
                    "SELECT e.event_id FROM unnest($1::uuid[]) AS u(id)
                       JOIN audit.events e ON e.event_id = u.id",
                    &[&ids],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            entries.retain(|e| !stored.contains(&e.event_id));
        }
        if entries.is_empty() {
            return Ok(0);
        }
        let mut chains: Vec<String> = entries.iter().map(|e| e.chain.clone()).collect();
        chains.sort();
        chains.dedup();
        let tx = client.transaction().await?;
        for chain in &chains {
            let mut genesis = AuditHead {
                chain: chain.clone(),
                n: 0,
                hash: GENESIS.to_vec(),
                mac: Vec::new(),
            };
            seal.seal_head(&mut genesis);
            tx.execute(
                "INSERT INTO audit.heads (chain, n, hash, mac) VALUES ($1, 0, $2, $3)
                 ON CONFLICT (chain) DO NOTHING",
                &[chain, &genesis.hash, &genesis.mac],
            )
            .await?;
            let row = tx
                .query_one(
                    "SELECT n, hash FROM audit.heads WHERE chain = $1 FOR UPDATE",
                    &[chain],
                )
                .await?;
            let mut head = AuditHead {
                chain: chain.clone(),
                n: row.get(0),
                hash: row.get(1),
                mac: Vec::new(),
            };
            for e in entries.iter_mut().filter(|e| e.chain == *chain) {
                head.n += 1;
                e.n = head.n;
                e.prev_hash = std::mem::take(&mut head.hash);
                seal.seal(e);
                head.hash = e.hash.clone();
            }
            seal.seal_head(&mut head);
            tx.execute(
                "UPDATE audit.heads SET n = $2, hash = $3, mac = $4 WHERE chain = $1",
                &[chain, &head.n, &head.hash, &head.mac],
            )
            .await?;
        }
        // Stored in the order given (per chain, that is the order of `n`): ids follow it.
        let col = |f: fn(&AuditEntry) -> String| entries.iter().map(f).collect::<Vec<_>>();
        let event_ids: Vec<uuid::Uuid> = entries.iter().map(|e| e.event_id).collect();
        let chain = col(|e| e.chain.clone());
        let actor = col(|e| e.actor.clone());
        let action = col(|e| e.action.clone());
        let n: Vec<i64> = entries.iter().map(|e| e.n).collect();
        let tenant: Vec<Option<uuid::Uuid>> = entries
            .iter()
            .map(|e| e.tenant_id.map(|t| t.as_uuid()))
            .collect();
        let details: Vec<Value> = entries.iter().map(|e| e.details.clone()).collect();
        let at: Vec<DateTime<Utc>> = entries.iter().map(|e| e.at).collect();
        let bytes = |f: fn(&AuditEntry) -> Vec<u8>| entries.iter().map(f).collect::<Vec<_>>();
        let (prev, hash, mac) = (
            bytes(|e| e.prev_hash.clone()),
            bytes(|e| e.hash.clone()),
            bytes(|e| e.mac.clone()),
        );
        tx.execute(
                "INSERT INTO audit.events (chain, n, tenant_id, actor, action, details, at, prev_hash, hash, mac, event_id)
                 SELECT chain, n, tenant_id, actor, action, details, at, prev_hash, hash, mac, event_id
                   FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::text[],
                               $6::jsonb[], $7::timestamptz[], $8::bytea[], $9::bytea[], $10::bytea[], $11::uuid[])
                        WITH ORDINALITY AS u(chain, n, tenant_id, actor, action, details, at, prev_hash, hash, mac, event_id, ord)
                  ORDER BY ord",
                &[&chain, &n, &tenant, &actor, &action, &details, &at, &prev, &hash, &mac, &event_ids],
            )
            .await?;
        tx.commit().await?;
        Ok(entries.len())
    }

    /// Every entry of `chain` in storage order, and its head.
    pub async fn audit_chain(
        &self,
        chain: &str,
    ) -> Result<(Vec<AuditEntry>, Option<AuditHead>), DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {ENTRY_COLUMNS} FROM audit.events WHERE chain = $1 ORDER BY id"),
                &[&chain],
            )
            .await?;
        let head = client
            .query_opt(
                "SELECT chain, n, hash, mac FROM audit.heads WHERE chain = $1",
                &[&chain],
            )
            .await?
            .map(|r| AuditHead {
                chain: r.get(0),
                n: r.get(1),
                hash: r.get(2),
                mac: r.get(3),
            });
        Ok((rows.iter().map(entry_of).collect(), head))
    }

    /// The names of every chain (with entries or a head).
    pub async fn audit_chains(&self) -> Result<Vec<String>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT chain FROM audit.heads UNION SELECT DISTINCT chain FROM audit.events ORDER BY 1",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Entries about `tenant` (every tenant's and the global ones when None) at or after
    /// `since`, oldest first, at most `limit`.
    pub async fn audit_events(
        &self,
        tenant: Option<&TenantId>,
        since: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, DirectoryError> {
        let client = self.client().await?;
        let rows = match tenant {
            Some(t) => {
                client
                    .query(
                        &format!("SELECT {ENTRY_COLUMNS} FROM audit.events WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR at >= $2) ORDER BY at, id LIMIT $3"),
                        &[&t.as_uuid(), &since, &limit],
                    )
                    .await?
            }
            None => {
                client
                    .query(
                        &format!("SELECT {ENTRY_COLUMNS} FROM audit.events WHERE ($1::timestamptz IS NULL OR at >= $1) ORDER BY at, id LIMIT $2"),
                        &[&since, &limit],
                    )
                    .await?
            }
        };
        Ok(rows.iter().map(entry_of).collect())
    }

    /// The newest `limit` events about `tenant` (or all), newest first, of one `action` when
    /// given.
    pub async fn newest_audit_events(
        &self,
        tenant: Option<&TenantId>,
        action: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, DirectoryError> {
        let client = self.client().await?;
        let tenant = tenant.map(|t| t.as_uuid());
        let rows = client
            .query(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM audit.events
                     WHERE ($1::uuid IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR action = $2)
                     ORDER BY at DESC, id DESC LIMIT $3"
                ),
                &[&tenant, &action, &limit],
            )
            .await?;
        Ok(rows.iter().map(entry_of).collect())
    }
}

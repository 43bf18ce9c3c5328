//! Changes made at the source during a move, carried by PostgreSQL's logical replication:
//! a publication of the tenant's tables and a `pgoutput` slot, created before any table is
//! copied. A shared table's publication carries no row filter: a filter would write the
//! tenant's id into `pg_publication_rel`, which every role can read, so the applier drops
//! the changes of other tenants' rows itself. Bulkhead reads the slot with
//! `pg_logical_slot_peek_binary_changes` and applies what it decodes at the target, then
//! advances the slot: a mover that dies between the two re-applies, never skips.
//!
//! Why this order is correct: every change committed after the slot was created is replayed,
//! in commit order, on top of copies taken later. An insert is applied as an upsert, an
//! update sets the row where it exists, a delete removes it if present; so a change the copy
//! already holds is re-applied harmlessly and the last change of each row decides its final
//! state, as at the source. (Replaying changes the copy already holds can briefly violate a
//! secondary unique constraint in contrived histories; such a move stops with the error and
//! can be re-run or rolled back.)
//!
//! A subscription on the target cannot serve moves within one database (shared to schema),
//! nor map `public.orders` to `t_<id>.orders`; this replay serves every direction alike.

use std::collections::HashMap;

use bulkhead_model::TenantId;
use bulkhead_provisioner::naming::ident;

use crate::pgoutput::{self, Message, Value};
use crate::place::{Side, Table};
use crate::MoveError;

/// Creates the publication (first: the slot decodes with the catalog as of each change) and
/// then the slot; returns the slot's starting LSN. Both are left alone when they exist.
pub async fn create(
    source: &Side,
    tables: &[Table],
    slot: &str,
    publication: &str,
) -> Result<String, MoveError> {
    let client = source.connect().await?;
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)",
            &[&publication],
        )
        .await
        .map_err(MoveError::sql("looking for the move's publication"))?
        .get(0);
    if !exists {
        let list = tables
            .iter()
            .map(|t| source.qualified(&t.name))
            .collect::<Vec<_>>()
            .join(", ");
        let publish = if source.is_shared() {
            "insert, update, delete"
        } else {
            "insert, update, delete, truncate"
        };
        client
            .batch_execute(&format!(
                "CREATE PUBLICATION {} FOR TABLE {list} WITH (publish = '{publish}')",
                ident(publication)
            ))
            .await
            .map_err(MoveError::sql(
                "creating the move's publication at the source",
            ))?;
    }
    let existing = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(MoveError::sql("looking for the move's slot"))?;
    let lsn: String = match existing {
        Some(row) => row.get::<_, Option<String>>(0).unwrap_or_default(),
        None => client
            .query_one(
                "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&slot],
            )
            .await
            .map_err(MoveError::sql(
                "creating the move's replication slot at the source",
            ))?
            .get(0),
    };
    client.release();
    Ok(lsn)
}

/// Drops the slot and the publication, whatever of them exists.
pub async fn drop(source: &Side, slot: &str, publication: &str) -> Result<(), MoveError> {
    let client = source.connect().await?;
    client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(MoveError::sql("dropping the move's replication slot"))?;
    client
        .batch_execute(&format!(
            "DROP PUBLICATION IF EXISTS {}",
            ident(publication)
        ))
        .await
        .map_err(MoveError::sql("dropping the move's publication"))?;
    client.release();
    Ok(())
}

/// How far behind the slot is: bytes of WAL between its confirmed position and now.
pub async fn lag_bytes(source: &Side, slot: &str) -> Result<i64, MoveError> {
    let client = source.connect().await?;
    let row = client
        .query_opt(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(MoveError::sql("reading the slot's lag"))?;
    client.release();
    Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)).unwrap_or(0))
}

/// What one step of replay did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Step {
    /// Row changes applied.
    pub changes: u64,
    /// Transactions applied.
    pub transactions: u64,
}

/// Applies the slot's changes at the target.
pub struct Applier<'a> {
    source: &'a Side,
    target: &'a Side,
    tenant: TenantId,
    slot: String,
    publication: String,
    tables: HashMap<String, &'a Table>,
    relations: HashMap<u32, Relation>,
}

struct Relation {
    table: String,
    columns: Vec<pgoutput::Column>,
}

/// Changes read per step (whole transactions: a step may read more).
const STEP_CHANGES: i32 = 20_000;

impl<'a> Applier<'a> {
    /// An applier of `slot`'s changes to `tables` at `target`.
    pub fn new(
        source: &'a Side,
        target: &'a Side,
        tenant: TenantId,
        slot: &str,
        publication: &str,
        tables: &'a [Table],
    ) -> Self {
        Self {
            source,
            target,
            tenant,
            slot: slot.to_string(),
            publication: publication.to_string(),
            tables: tables.iter().map(|t| (t.name.clone(), t)).collect(),
            relations: HashMap::new(),
        }
    }

    /// Reads and applies one batch of whole transactions (up to `upto`, an LSN, when
    /// given); `changes == 0` means the slot had nothing more.
    pub async fn step(&mut self, upto: Option<&str>) -> Result<Step, MoveError> {
        let src = self.source.connect().await?;
        let rows = src
            .query(
                "SELECT data FROM pg_catalog.pg_logical_slot_peek_binary_changes($1, $2::text::pg_lsn, $3,
                     'proto_version', '1', 'publication_names', $4)",
                &[&self.slot, &upto, &STEP_CHANGES, &self.publication],
            )
            .await
            .map_err(MoveError::sql("reading the move's replication slot"))?;
        let mut sql = String::from(
            "BEGIN; SET LOCAL session_replication_role = replica; SET LOCAL standard_conforming_strings = on;\n",
        );
        let mut step = Step::default();
        let mut end: Option<u64> = None;
        for row in &rows {
            let data: &[u8] = row.get(0);
            match pgoutput::decode(data)? {
                Message::Relation {
                    id, name, columns, ..
                } => {
                    if !self.tables.contains_key(&name) {
                        return Err(MoveError::Decode(format!(
                            "a change to table {name}, which the move does not copy"
                        )));
                    }
                    self.relations.insert(
                        id,
                        Relation {
                            table: name,
                            columns,
                        },
                    );
                }
                Message::Commit { end_lsn } => {
                    end = Some(end_lsn);
                    step.transactions += 1;
                }
                Message::Begin | Message::Other => {}
                change => {
                    if self.statement(&change, &mut sql)? {
                        step.changes += 1;
                    }
                }
            }
        }
        let Some(end) = end else {
            src.release();
            return Ok(step);
        };
        if step.changes > 0 {
            sql.push_str("COMMIT;");
            let dst = self.target.connect().await?;
            dst.batch_execute(&sql)
                .await
                .map_err(MoveError::sql("applying replicated changes at the target"))?;
            dst.release();
        }
        src.execute(
            "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
            &[&self.slot, &pgoutput::lsn_text(end)],
        )
        .await
        .map_err(MoveError::sql("advancing the move's replication slot"))?;
        src.release();
        Ok(step)
    }

    /// Appends the statement replaying one change; false when the change is another
    /// tenant's (a shared source publishes every tenant's rows) and was skipped.
    fn statement(&self, change: &Message, sql: &mut String) -> Result<bool, MoveError> {
        let rel = |id: &u32| {
            self.relations.get(id).ok_or_else(|| {
                MoveError::Decode(format!("a change to relation {id} before its description"))
            })
        };
        match change {
            Message::Insert { id, new } => {
                let r = rel(id)?;
                if self.of_another_tenant(r, new) {
                    return Ok(false);
                }
                self.own_rows_only(r, new)?;
                let table = self.table(&r.table)?;
                let (mut cols, mut vals) = (Vec::new(), Vec::new());
                for (c, v) in r.columns.iter().zip(new) {
                    cols.push(ident(&c.name));
                    vals.push(literal(v)?);
                }
                let updates: Vec<String> = r
                    .columns
                    .iter()
                    .filter(|c| !table.key.contains(&c.name))
                    .map(|c| format!("{0} = EXCLUDED.{0}", ident(&c.name)))
                    .collect();
                let conflict = table
                    .key
                    .iter()
                    .map(|k| ident(k))
                    .collect::<Vec<_>>()
                    .join(", ");
                let action = if updates.is_empty() {
                    "DO NOTHING".to_string()
                } else {
                    format!("DO UPDATE SET {}", updates.join(", "))
                };
                sql.push_str(&format!(
                    "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES ({}) ON CONFLICT ({conflict}) {action};\n",
                    self.target.qualified(&r.table),
                    cols.join(", "),
                    vals.join(", ")
                ));
            }
            Message::Update { id, old, new } => {
                let r = rel(id)?;
                let was_another = old.as_ref().is_some_and(|o| self.of_another_tenant(r, o));
                if was_another || self.of_another_tenant(r, new) {
                    return Ok(false);
                }
                self.own_rows_only(r, new)?;
                let mut sets = Vec::new();
                for (c, v) in r.columns.iter().zip(new) {
                    if *v != Value::Unchanged {
                        sets.push(format!("{} = {}", ident(&c.name), literal(v)?));
                    }
                }
                let key_of = old.as_ref().unwrap_or(new);
                sql.push_str(&format!(
                    "UPDATE {} SET {} WHERE {};\n",
                    self.target.qualified(&r.table),
                    sets.join(", "),
                    key_condition(r, key_of)?
                ));
            }
            Message::Delete { id, old } => {
                let r = rel(id)?;
                if self.of_another_tenant(r, old) {
                    return Ok(false);
                }
                sql.push_str(&format!(
                    "DELETE FROM {} WHERE {};\n",
                    self.target.qualified(&r.table),
                    key_condition(r, old)?
                ));
            }
            Message::Truncate { ids } => {
                for id in ids {
                    let r = rel(id)?;
                    sql.push_str(&format!(
                        "DELETE FROM {}{};\n",
                        self.target.qualified(&r.table),
                        self.target.tenant_filter(&self.tenant)
                    ));
                }
            }
            _ => {}
        }
        Ok(true)
    }

    /// A change from a shared source to a row whose `tenant_id` is another tenant's (its
    /// key columns carry `tenant_id`: a move requires it in every shared table's key).
    fn of_another_tenant(&self, r: &Relation, row: &[Value]) -> bool {
        if !self.source.is_shared() {
            return false;
        }
        let me = self.tenant.to_string();
        r.columns
            .iter()
            .zip(row)
            .any(|(c, v)| c.name == "tenant_id" && !matches!(v, Value::Text(t) if *t == me))
    }

    /// Into shared tables, a row under another tenant's id would be that tenant's: refused,
    /// and the move stops before any of the batch is applied.
    fn own_rows_only(&self, r: &Relation, row: &[Value]) -> Result<(), MoveError> {
        if !self.target.is_shared() {
            return Ok(());
        }
        let me = self.tenant.to_string();
        for (c, v) in r.columns.iter().zip(row) {
            if c.name == "tenant_id"
                && !matches!(v, Value::Text(t) if *t == me)
                && *v != Value::Unchanged
            {
                return Err(MoveError::Refused(format!(
                    "a change at the source writes a row of table {} under tenant id {:?}, not the moving tenant's; the move stops (shared tables must not receive it)",
                    r.table, v
                )));
            }
        }
        Ok(())
    }

    fn table(&self, name: &str) -> Result<&Table, MoveError> {
        self.tables
            .get(name)
            .copied()
            .ok_or_else(|| MoveError::Decode(format!("a change to unknown table {name}")))
    }
}

/// `k1 = v1 AND k2 = v2` over the replica identity's columns of `values`.
fn key_condition(r: &Relation, values: &[Value]) -> Result<String, MoveError> {
    let mut parts = Vec::new();
    for (c, v) in r.columns.iter().zip(values) {
        if c.key {
            if matches!(v, Value::Null | Value::Unchanged) {
                return Err(MoveError::Decode(format!(
                    "a change to {} without its key column {}",
                    r.table, c.name
                )));
            }
            parts.push(format!("{} = {}", ident(&c.name), literal(v)?));
        }
    }
    if parts.is_empty() {
        return Err(MoveError::Decode(format!(
            "a change to {} that names no key",
            r.table
        )));
    }
    Ok(parts.join(" AND "))
}

/// A value as SQL: NULL or a string literal (standard_conforming_strings is on), left to
/// PostgreSQL to read as the column's type.
fn literal(v: &Value) -> Result<String, MoveError> {
    match v {
        Value::Null => Ok("NULL".into()),
        Value::Text(t) => Ok(format!("'{}'", t.replace('\'', "''"))),
        Value::Unchanged => Err(MoveError::Decode(
            "an inserted row with an unchanged TOAST value".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_quotes_and_keys_need_values() {
        assert_eq!(
            literal(&Value::Text("it's".into())).expect("text"),
            "'it''s'"
        );
        assert_eq!(literal(&Value::Null).expect("null"), "NULL");
        let r = Relation {
            table: "orders".into(),
            columns: vec![
                pgoutput::Column {
                    name: "tenant_id".into(),
                    key: true,
                },
                pgoutput::Column {
                    name: "note".into(),
                    key: false,
                },
            ],
        };
        assert_eq!(
            key_condition(&r, &[Value::Text("a".into()), Value::Null]).expect("key"),
            "\"tenant_id\" = 'a'"
        );
        assert!(key_condition(&r, &[Value::Null, Value::Null]).is_err());
    }
}

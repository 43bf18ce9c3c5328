//! Parity of a tenant's rows between source and target, table by table: the row count and
//! an order-independent hash (the sum of a 64-bit hash of each row, columns in name order,
//! by the column types' own hash functions or else through the row's text), computed at both
//! sides at once. Both sides run the same PostgreSQL major version (a pre-check), so the
//! same values hash alike.

use bulkhead_model::TenantId;
use bulkhead_provisioner::naming::ident;
use serde::Serialize;

use crate::place::{Side, Table};
use crate::MoveError;

/// One table's parity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableParity {
    /// The table.
    pub table: String,
    /// Rows at the source.
    pub source_rows: i64,
    /// Rows at the target.
    pub target_rows: i64,
    /// Hash at the source.
    pub source_hash: String,
    /// Hash at the target.
    pub target_hash: String,
}

impl TableParity {
    /// True when both sides hold the same rows.
    pub fn matches(&self) -> bool {
        self.source_rows == self.target_rows && self.source_hash == self.target_hash
    }
}

/// How a row is hashed: with each column type's own 64-bit hash function (fast), or through
/// the row's text form for tables with a column type that has none (json, point, ...).
#[derive(Clone, Copy)]
pub enum RowHash {
    Typed,
    Text,
}

/// The expression hashing one row of `table`.
fn row_hash(table: &Table, how: RowHash) -> String {
    let mut columns: Vec<&String> = table.columns.iter().collect();
    columns.sort();
    let row = columns
        .iter()
        .map(|c| ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    match how {
        RowHash::Typed => format!("hash_record_extended(ROW({row}), 0)"),
        RowHash::Text => format!("hashtextextended(ROW({row})::text, 0)"),
    }
}

fn fingerprint_sql(side: &Side, table: &Table, tenant: &TenantId, how: RowHash) -> String {
    format!(
        "SELECT count(*), coalesce(sum({}), 0)::text FROM {}{}",
        row_hash(table, how),
        side.qualified(&table.name),
        side.tenant_filter(tenant)
    )
}

async fn fingerprint(
    side: &Side,
    table: &Table,
    tenant: &TenantId,
    how: RowHash,
) -> Result<(i64, String), MoveError> {
    let client = side.connect().await?;
    let row = client
        .query_one(&fingerprint_sql(side, table, tenant, how), &[])
        .await
        .map_err(MoveError::sql(format!(
            "hashing {} at {}",
            table.name,
            side.describe()
        )))?;
    client.release();
    Ok((row.get(0), row.get(1)))
}

/// True when every column type of the table has an extended hash function.
async fn typed_hash_works(side: &Side, table: &Table) -> Result<bool, MoveError> {
    let client = side.connect().await?;
    let probe = format!(
        "SELECT {} FROM {} LIMIT 0",
        row_hash(table, RowHash::Typed),
        side.qualified(&table.name)
    );
    let works = match client.query(&probe, &[]).await {
        Ok(_) => true,
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_FUNCTION) => false,
        Err(e) => {
            return Err(MoveError::sql(format!("hashing {}", table.name))(e));
        }
    };
    client.release();
    Ok(works)
}

/// How each table's rows will be hashed; asked before the cutover's hold, so the hold only
/// hashes.
pub async fn plan(source: &Side, tables: &[Table]) -> Result<Vec<RowHash>, MoveError> {
    let mut hows = Vec::with_capacity(tables.len());
    for table in tables {
        hows.push(if typed_hash_works(source, table).await? {
            RowHash::Typed
        } else {
            RowHash::Text
        });
    }
    Ok(hows)
}

/// Compares every table (hashed as [`plan`] said); source and target are read concurrently.
pub async fn compare(
    source: &Side,
    target: &Side,
    tables: &[Table],
    hows: &[RowHash],
    tenant: &TenantId,
) -> Result<Vec<TableParity>, MoveError> {
    let mut out = Vec::with_capacity(tables.len());
    for (table, how) in tables.iter().zip(hows) {
        let how = *how;
        let (s, t) = tokio::join!(
            fingerprint(source, table, tenant, how),
            fingerprint(target, table, tenant, how)
        );
        let ((source_rows, source_hash), (target_rows, target_hash)) = (s?, t?);
        out.push(TableParity {
            table: table.name.clone(),
            source_rows,
            target_rows,
            source_hash,
            target_hash,
        });
    }
    Ok(out)
}

//! Parity of a tenant's rows between source and target, table by table: the row count and
//! an order-independent hash (the sum of a 64-bit hash of each row's text, columns in name
//! order), computed at both sides at once.

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

fn fingerprint_sql(side: &Side, table: &Table, tenant: &TenantId) -> String {
    let mut columns: Vec<&String> = table.columns.iter().collect();
    columns.sort();
    let row = columns
        .iter()
        .map(|c| ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT count(*), coalesce(sum(hashtextextended(ROW({row})::text, 0)::numeric), 0)::text FROM {}{}",
        side.qualified(&table.name),
        side.tenant_filter(tenant)
    )
}

async fn fingerprint(
    side: &Side,
    table: &Table,
    tenant: &TenantId,
) -> Result<(i64, String), MoveError> {
    let client = side.connect().await?;
    let row = client
        .query_one(&fingerprint_sql(side, table, tenant), &[])
        .await
        .map_err(MoveError::sql(format!(
            "hashing {} at {}",
            table.name,
            side.describe()
        )))?;
    client.release();
    Ok((row.get(0), row.get(1)))
}

/// Compares every table; source and target are read concurrently.
pub async fn compare(
    source: &Side,
    target: &Side,
    tables: &[Table],
    tenant: &TenantId,
) -> Result<Vec<TableParity>, MoveError> {
    let mut out = Vec::with_capacity(tables.len());
    for table in tables {
        let (s, t) = tokio::join!(
            fingerprint(source, table, tenant),
            fingerprint(target, table, tenant)
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

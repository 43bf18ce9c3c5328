//! Sequences carried over at cutover: each sequence owned by a column of the tenant's
//! tables (serial or identity) is set at the target past everything the tenant used, so
//! its next insert neither collides nor goes back: the greatest of the source's last value,
//! the target's, and the column's largest value among the tenant's rows.

use bulkhead_model::TenantId;
use bulkhead_provisioner::naming::ident;

use crate::place::{Side, Table};
use crate::MoveError;

const OWNED: &str = "SELECT a.attname::text, s.oid::regclass::text
   FROM pg_depend d
   JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
   JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
  WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
    AND d.refobjid = $1::text::regclass AND d.deptype IN ('a', 'i')";

/// A sequence set at the target.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Carried {
    /// `table.column`.
    pub column: String,
    /// The value set.
    pub value: i64,
}

/// Carries every owned sequence of `tables` from source to target.
pub async fn carry(
    source: &Side,
    target: &Side,
    tables: &[Table],
    tenant: &TenantId,
) -> Result<Vec<Carried>, MoveError> {
    let src = source.connect().await?;
    let dst = target.connect().await?;
    let mut carried = Vec::new();
    for table in tables {
        let src_owned = src
            .query(OWNED, &[&source.qualified(&table.name)])
            .await
            .map_err(MoveError::sql("listing the source's sequences"))?;
        let dst_owned = dst
            .query(OWNED, &[&target.qualified(&table.name)])
            .await
            .map_err(MoveError::sql("listing the target's sequences"))?;
        for s in &src_owned {
            let (column, src_seq): (String, String) = (s.get(0), s.get(1));
            let Some(d) = dst_owned.iter().find(|d| d.get::<_, String>(0) == column) else {
                continue;
            };
            let dst_seq: String = d.get(1);
            let last: i64 = src
                .query_one(&format!("SELECT last_value FROM {src_seq}"), &[])
                .await
                .map_err(MoveError::sql(format!("reading sequence {src_seq}")))?
                .get(0);
            let value: i64 = dst
                .query_one(
                    &format!(
                        "SELECT setval($1::text::regclass, greatest($2::bigint, (SELECT last_value FROM {dst_seq}),
                                (SELECT coalesce(max({c})::bigint, 1) FROM {t}{f})), true)",
                        c = ident(&column),
                        t = target.qualified(&table.name),
                        f = target.tenant_filter(tenant)
                    ),
                    &[&dst_seq, &last],
                )
                .await
                .map_err(MoveError::sql(format!("setting sequence {dst_seq}")))?
                .get(0);
            carried.push(Carried {
                column: format!("{}.{column}", table.name),
                value,
            });
        }
    }
    src.release();
    dst.release();
    Ok(carried)
}

/// Sets every sequence owned by a column of `tables` at `side` past the tenant's largest
/// value in that column (a restore's rows came with their ids).
pub async fn advance_past_rows(
    side: &Side,
    tables: &[String],
    tenant: &TenantId,
) -> Result<(), MoveError> {
    let client = side.connect().await?;
    for table in tables {
        let owned = client
            .query(OWNED, &[&side.qualified(table)])
            .await
            .map_err(MoveError::sql("listing sequences"))?;
        for s in &owned {
            let (column, seq): (String, String) = (s.get(0), s.get(1));
            client
                .query_one(
                    &format!(
                        "SELECT setval($1::text::regclass, greatest((SELECT last_value FROM {seq}),
                                (SELECT coalesce(max({c})::bigint, 1) FROM {t}{f})), true)",
                        c = ident(&column),
                        t = side.qualified(table),
                        f = side.tenant_filter(tenant)
                    ),
                    &[&seq],
                )
                .await
                .map_err(MoveError::sql(format!("setting sequence {seq}")))?;
        }
    }
    client.release();
    Ok(())
}

//! The check a new placement must pass before it is routed: as its runtime role, with its
//! tenant context, it can read every one of its tables and sees no row of another tenant;
//! and the role holds no power it must not have.

use bulkhead_directory::Cluster;

use crate::connect::admin_connect;
use crate::modes::TenantPlace;
use crate::naming::ident;
use crate::ProvisionError;

/// Runs the health check; the transaction is rolled back, so it leaves nothing behind.
pub async fn check_place(
    cluster: &Cluster,
    place: &TenantPlace,
    slug: &str,
) -> Result<(), ProvisionError> {
    let fail = |reason: String| ProvisionError::HealthCheck {
        tenant: slug.to_string(),
        reason,
    };
    let mut client = admin_connect(cluster, &place.database).await?;
    let powers = client
        .query_one(
            "SELECT rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolcanlogin FROM pg_roles WHERE rolname = $1",
            &[&place.role],
        )
        .await
        .map_err(|e| fail(format!("reading the runtime role: {}", crate::error::describe(&e))))?;
    if powers.get::<_, bool>(0) {
        return Err(fail(format!(
            "runtime role {} has powers it must not have",
            place.role
        )));
    }
    let schema = place.schema.clone().unwrap_or_else(|| "public".into());
    let tx = client
        .transaction()
        .await
        .map_err(|e| fail(crate::error::describe(&e)))?;
    tx.batch_execute(&format!(
        "SET LOCAL ROLE {}; SET LOCAL search_path = {}; SET LOCAL bulkhead.tenant_id = '{}'",
        ident(&place.role),
        place.search_path(),
        place.tenant
    ))
    .await
    .map_err(|e| {
        fail(format!(
            "switching to the tenant: {}",
            crate::error::describe(&e)
        ))
    })?;
    let tables = tx
        .query(
            // pg_depend's index finds the schema's relations without scanning pg_class.
            "SELECT c.relname FROM pg_namespace n
               JOIN pg_depend d ON d.refclassid = 'pg_namespace'::regclass AND d.refobjid = n.oid
                    AND d.classid = 'pg_class'::regclass AND d.deptype = 'n'
               JOIN pg_class c ON c.oid = d.objid AND c.relkind IN ('r', 'p')
              WHERE n.nspname = $1
                AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)",
            &[&schema],
        )
        .await
        .map_err(|e| fail(crate::error::describe(&e)))?;
    // One round trip for all tables: each row counts another tenant's visible rows.
    let counts: Vec<String> = tables
        .iter()
        .map(|t| {
            let table: String = t.get(0);
            format!(
                "SELECT {lit}::text, count(*) FROM {}.{} WHERE tenant_id IS DISTINCT FROM $1",
                ident(&schema),
                ident(&table),
                lit = literal(&table)
            )
        })
        .collect();
    if !counts.is_empty() {
        let rows = tx
            .query(&counts.join(" UNION ALL "), &[&place.tenant.as_uuid()])
            .await
            .map_err(|e| {
                fail(format!(
                    "reading its tables: {}",
                    crate::error::describe(&e)
                ))
            })?;
        for r in rows {
            let (table, others): (String, i64) = (r.get(0), r.get(1));
            if others != 0 {
                return Err(fail(format!(
                    "{others} rows of other tenants are visible in {table}"
                )));
            }
        }
    }
    tx.rollback()
        .await
        .map_err(|e| fail(crate::error::describe(&e)))?;
    client.release();
    Ok(())
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

//! Names every role can read reveal no tenant id (`pg_roles`, `pg_database`,
//! `pg_namespace`, `pg_stat_activity.application_name`, `pg_replication_slots`,
//! `pg_publication`), and every tenant role is bound to its own tenant in the database it
//! serves (`bulkhead.tenant_roles`, which `bulkhead.current_tenant()` checks).

use tokio_postgres::Client;

use crate::report::{Check, Level};
use crate::tenants::KnownTenants;
use crate::{Report, Scope};

const CLUSTER_NAMES: &str = "
SELECT 'role' AS kind, rolname::text AS name FROM pg_roles
UNION ALL SELECT 'database', datname::text FROM pg_database
UNION ALL SELECT DISTINCT 'session application_name', application_name FROM pg_stat_activity
 WHERE application_name <> ''
UNION ALL SELECT 'replication slot', slot_name::text FROM pg_replication_slots";

const DATABASE_NAMES: &str = "
SELECT 'schema' AS kind, nspname::text AS name FROM pg_namespace
UNION ALL SELECT 'publication', pubname::text FROM pg_publication";

const BINDINGS: &str = "
SELECT r.rolname::text, b.tenant_id
  FROM pg_roles r LEFT JOIN bulkhead.tenant_roles b ON b.role_oid = r.oid
 WHERE r.rolname = ANY($1)";

fn name_findings(
    rows: &[tokio_postgres::Row],
    known: &KnownTenants,
    target: &str,
    report: &mut Report,
) {
    report.looked_at(Check::OpaqueNames, rows.len());
    for r in rows {
        let (kind, name): (&str, &str) = (r.get(0), r.get(1));
        if known.embedded_id(name).is_some() {
            report.found(
                Level::Fail,
                Check::OpaqueNames,
                target,
                format!("{kind} {name}"),
                "the name carries a tenant id every role can read in the catalog: objects Bulkhead names are renamed by `bulkhead up`; rename others so they name no tenant",
            );
        }
    }
}

/// Cluster-wide names: roles, databases, sessions, replication slots.
pub(crate) async fn cluster_names(
    client: &Client,
    target: &str,
    known: &KnownTenants,
    report: &mut Report,
) -> Result<(), tokio_postgres::Error> {
    let rows = client.query(CLUSTER_NAMES, &[]).await?;
    name_findings(&rows, known, target, report);
    Ok(())
}

/// One database's names (schemas, publications) and its tenant roles' bindings.
pub(crate) async fn database_names(
    client: &Client,
    scope: &Scope<'_>,
    report: &mut Report,
) -> Result<(), tokio_postgres::Error> {
    let rows = client.query(DATABASE_NAMES, &[]).await?;
    name_findings(&rows, scope.known, &scope.target, report);
    let Some(expected) = scope.known.bindings_in(&scope.cluster, &scope.database) else {
        return Ok(());
    };
    let roles: Vec<&str> = expected.keys().map(String::as_str).collect();
    let rows = client.query(BINDINGS, &[&roles]).await?;
    let found: std::collections::HashMap<&str, Option<uuid::Uuid>> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    report.looked_at(Check::RoleBindings, expected.len());
    for (role, tenant) in expected {
        let bound = found.get(role.as_str()).copied();
        let wrong = match bound {
            None => Some("the role does not exist".to_string()),
            Some(None) => Some("the role is bound to no tenant here, so bulkhead.current_tenant() refuses it: `bulkhead up` binds every tenant role".to_string()),
            Some(Some(id)) if id != tenant.as_uuid() => Some(format!(
                "the role is bound to another tenant ({id}): DELETE its row from bulkhead.tenant_roles and run `bulkhead up`"
            )),
            Some(Some(_)) => None,
        };
        if let Some(detail) = wrong {
            report.found(
                Level::Fail,
                Check::RoleBindings,
                &scope.target,
                role,
                detail,
            );
        }
    }
    Ok(())
}

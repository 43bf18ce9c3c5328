//! Tenant schemas of a pool database: USAGE on `t_<h>` only for that tenant's own roles.

use tokio_postgres::Client;

use crate::report::{Check, Level};
use crate::{Report, Scope};

const USAGE: &str = "
SELECT n.nspname, a.grantee = 0 AS to_public, coalesce(r.rolname, '') AS grantee
  FROM pg_namespace n
  CROSS JOIN LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
  LEFT JOIN pg_roles r ON r.oid = a.grantee
 WHERE n.nspname LIKE 't\\_%' AND a.privilege_type = 'USAGE'";

const SCHEMAS: &str = "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 't\\_%'";

pub(super) async fn check(
    client: &Client,
    scope: &Scope<'_>,
    report: &mut Report,
) -> Result<(), tokio_postgres::Error> {
    let n: i64 = client.query_one(SCHEMAS, &[]).await?.get(0);
    report.looked_at(Check::SchemaUsage, usize::try_from(n).unwrap_or(0));
    for row in client.query(USAGE, &[]).await? {
        let schema: String = row.get("nspname");
        let grantee: String = row.get("grantee");
        let own = scope.known.tenant_of(&schema);
        let wrong = if row.get::<_, bool>("to_public") {
            Some("PUBLIC".to_string())
        } else if grantee.starts_with("bh_")
            && (own.is_none() || scope.known.tenant_of(&grantee) != own)
        {
            // Another tenant's role, or a group that tenants share.
            Some(grantee)
        } else {
            None
        };
        if let Some(who) = wrong {
            report.found(Level::Fail, Check::SchemaUsage, &scope.target, &schema, format!("{who} has USAGE on this tenant's schema: REVOKE USAGE ON SCHEMA {schema} FROM {who}"));
        }
    }
    Ok(())
}

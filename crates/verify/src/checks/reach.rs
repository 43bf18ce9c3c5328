//! What tenant roles can reach in a database: no CREATE in the schemas they use, views only
//! with the invoker's rights, SECURITY DEFINER functions only when allow-listed and pinned
//! with `SET search_path`, and the usage outbox (shared by every tenant of the database) only
//! to insert under their own id; the signed-context key only to the gateway's login.

use tokio_postgres::Client;

use crate::report::{Check, Level};
use crate::{Report, Scope};

/// Tenant roles that can CREATE in `public`, `ref`, `bulkhead` or their own schema. Only
/// roles that hold CREATE's grant, own the schema or the database, or are members of such
/// roles (`holders`, by membership, inherited or not) are asked `has_schema_privilege`:
/// asking every role of a 15,000-role cluster took 1.4 s in each database. Tenant schemas
/// are joined by name, not with an OR beside the three: that was a nested loop over every
/// role and every schema.
const CREATE: &str = "
WITH RECURSIVE seeds(nsp, role) AS (
    SELECT n.oid, a.grantee
      FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
     WHERE n.nspname IN ('public', 'ref', 'bulkhead') AND a.privilege_type = 'CREATE'
    UNION SELECT n.oid, n.nspowner FROM pg_namespace n WHERE n.nspname IN ('public', 'ref', 'bulkhead')
    UNION SELECT n.oid, d.datdba FROM pg_namespace n, pg_database d
     WHERE n.nspname IN ('public', 'ref', 'bulkhead') AND d.datname = current_database()
), holders(nsp, role) AS (
    SELECT nsp, role FROM seeds
    UNION SELECT h.nsp, m.member FROM holders h JOIN pg_auth_members m ON m.roleid = h.role
), candidates(nsp, role) AS (
    SELECT nsp, role FROM holders WHERE role <> 0
    UNION SELECT h.nsp, r.oid FROM holders h CROSS JOIN pg_roles r WHERE h.role = 0
)
SELECT r.rolname, n.nspname
  FROM candidates c
  JOIN pg_namespace n ON n.oid = c.nsp
  JOIN pg_roles r ON r.oid = c.role
 WHERE r.rolname LIKE 'bh\\_t\\_%' AND has_schema_privilege(r.oid, n.oid, 'CREATE')
UNION ALL
SELECT r.rolname, n.nspname
  FROM pg_roles r
  JOIN pg_namespace n ON n.nspname = 't_' || substr(r.rolname, 6, 32)
 WHERE r.rolname LIKE 'bh\\_t\\_%' AND has_schema_privilege(r.oid, n.oid, 'CREATE')";

const TENANT_ROLES: &str = "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'bh\\_t\\_%'";

/// Relations and functions granted to PUBLIC (explicitly or by default) or to a Bulkhead role.
const VIEWS: &str = "
SELECT c.oid::regclass::text AS rel, c.relkind::text AS kind,
       coalesce(array_to_string(c.reloptions, ','), '') AS options,
       pg_get_viewdef(c.oid) AS definition
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('v', 'm')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND EXISTS (SELECT 1 FROM aclexplode(c.relacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee
                WHERE a.privilege_type = 'SELECT' AND (a.grantee = 0 OR g.rolname LIKE 'bh\\_%'))";

/// The view through which each tenant role reads its own binding (see `sql/helpers.sql`).
const MY_TENANT: &str = "bulkhead.my_tenant";

/// Bulkhead's own SECURITY DEFINER functions tenants may call (the provisioner's
/// `sql/helpers.sql`): the signed-context check, which answers only yes or no. They must pin
/// search_path like any other.
const BULKHEAD_DEFINERS: &[&str] = &["bulkhead.context_valid"];

const DEFINERS: &str = "
SELECT p.oid::regprocedure::text AS func, n.nspname || '.' || p.proname AS name,
       coalesce(array_to_string(p.proconfig, ','), '') AS config
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                LEFT JOIN pg_roles g ON g.oid = a.grantee
                WHERE a.privilege_type = 'EXECUTE' AND (a.grantee = 0 OR g.rolname LIKE 'bh\\_%'))";

/// The outbox's row-level security, policies and the privileges tenants (PUBLIC or a
/// Bulkhead role) hold on it other than INSERT.
const OUTBOX: &str = "
SELECT c.relrowsecurity AS rls,
       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies,
       EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'own_usage'
                  AND p.polcmd = 'a' AND p.polpermissive
                  AND pg_get_expr(p.polwithcheck, p.polrelid) LIKE '%bulkhead.current_tenant()%') AS own,
       array(SELECT DISTINCT a.privilege_type::text
               FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
               LEFT JOIN pg_roles g ON g.oid = a.grantee
              WHERE (a.grantee = 0 OR g.rolname LIKE 'bh\\_%') AND a.privilege_type <> 'INSERT'
              ORDER BY 1) AS extra
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'bulkhead' AND c.relname = 'usage_outbox'";

/// Roles other than superusers and the key table's owner holding any privilege on it, by
/// grant or by membership (of `pg_read_all_data` too; the predefined roles themselves are not
/// listed, their members are). Only the roles its grants, its owner and those predefined
/// roles reach by membership (`holders`) are asked `has_table_privilege`, every role when
/// PUBLIC holds a privilege: asking all 15,000 of a cluster took 5 s in each database. A
/// database made before signed contexts has no such table.
const KEY_READERS: &str = "
WITH RECURSIVE k AS (
    SELECT c.oid, c.relowner, c.relacl
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'bulkhead'
     WHERE c.relname = 'context_key' AND c.relkind = 'r'
), holders(role) AS (
    SELECT a.grantee FROM k, aclexplode(coalesce(k.relacl, acldefault('r', k.relowner))) a
    UNION SELECT k.relowner FROM k
    UNION SELECT oid FROM pg_roles WHERE rolname IN ('pg_read_all_data', 'pg_write_all_data')
    UNION SELECT m.member FROM holders h JOIN pg_auth_members m ON m.roleid = h.role
)
SELECT r.rolname,
       has_table_privilege(r.oid, k.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') AS writes
  FROM k CROSS JOIN pg_roles r
 WHERE (r.oid IN (SELECT role FROM holders) OR EXISTS (SELECT 1 FROM holders WHERE role = 0))
   AND NOT r.rolsuper AND r.oid <> k.relowner AND r.rolname NOT LIKE 'pg\\_%'
   AND has_table_privilege(r.oid, k.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')";

pub(super) async fn check(
    client: &Client,
    scope: &Scope<'_>,
    report: &mut Report,
) -> Result<(), tokio_postgres::Error> {
    let target = scope.target.as_str();
    let roles: i64 = client.query_one(TENANT_ROLES, &[]).await?.get(0);
    report.looked_at(Check::PublicCreate, usize::try_from(roles).unwrap_or(0));
    for row in client.query(CREATE, &[]).await? {
        let role: String = row.get("rolname");
        let schema: String = row.get("nspname");
        report.found(Level::Fail, Check::PublicCreate, target, format!("{role} on {schema}"), format!("a tenant role that can CREATE can plant objects (and functions running as the gateway's session): REVOKE CREATE ON SCHEMA {schema} FROM {role}"));
    }
    let views = client.query(VIEWS, &[]).await?;
    report.looked_at(Check::InvokerViews, views.len());
    for v in views {
        let rel: String = v.get("rel");
        if rel == MY_TENANT {
            // Bulkhead's own owner-rights view: each role reads its own binding only.
            let options: String = v.get("options");
            let definition: String = v.get("definition");
            let filtered = definition.contains("tenant_roles")
                && definition.contains("CURRENT_USER")
                && !definition.to_ascii_uppercase().contains(" OR ");
            if !options.split(',').any(|o| o == "security_barrier=true") || !filtered {
                report.found(Level::Fail, Check::InvokerViews, target, &rel, "Bulkhead's binding view lost its security barrier or its filter on the querying role, so a tenant may read other roles' bindings: re-run `bulkhead up` to reinstall it");
            }
            continue;
        }
        if v.get::<_, String>("kind") == "m" {
            report.found(Level::Fail, Check::InvokerViews, target, &rel, "a materialized view readable by tenants holds rows without row-level security: revoke it from tenants");
        } else if !v
            .get::<_, String>("options")
            .split(',')
            .any(|o| o == "security_invoker=true" || o == "security_invoker=on")
        {
            report.found(Level::Fail, Check::InvokerViews, target, &rel, format!("the view runs with its owner's rights, past the tenant's policy: ALTER VIEW {rel} SET (security_invoker = true)"));
        }
    }
    if let Some(o) = client.query_opt(OUTBOX, &[]).await? {
        report.looked_at(Check::UsageOutbox, 1);
        let extra: Vec<String> = o.get("extra");
        let mut wrong = Vec::new();
        if !o.get::<_, bool>("rls") {
            wrong.push("row-level security is off".to_string());
        }
        if !o.get::<_, bool>("own") {
            wrong.push("Bulkhead's insert policy (own_usage) is missing or changed".to_string());
        }
        if o.get::<_, i64>("policies") > 1 {
            wrong.push("another policy is on it".to_string());
        }
        if !extra.is_empty() {
            wrong.push(format!("tenants hold {} on it", extra.join(", ")));
        }
        if !wrong.is_empty() {
            report.found(
                Level::Fail,
                Check::UsageOutbox,
                target,
                "bulkhead.usage_outbox",
                format!(
                    "tenants could bill each other or read each other's usage: {}",
                    wrong.join("; ")
                ),
            );
        }
    }
    let readers = client.query(KEY_READERS, &[]).await?;
    report.looked_at(Check::ContextKey, 1);
    for r in readers {
        let role: String = r.get("rolname");
        let writes: bool = r.get("writes");
        if role == scope.gateway && !writes {
            continue;
        }
        report.found(Level::Fail, Check::ContextKey, target, &role, format!("a role other than the gateway's login can reach the key that signs shared tenants' contexts, and with it forge any tenant's: REVOKE ALL ON bulkhead.context_key FROM {role}"));
    }
    let definers = client.query(DEFINERS, &[]).await?;
    report.looked_at(Check::DefinerFunctions, definers.len());
    for f in definers {
        let func: String = f.get("func");
        let name: String = f.get("name");
        let pinned = f
            .get::<_, String>("config")
            .split(',')
            .any(|c| c.starts_with("search_path="));
        let allowed =
            scope.allowed_definers.contains(&name) || BULKHEAD_DEFINERS.contains(&name.as_str());
        if !allowed || !pinned {
            let why = match (allowed, pinned) {
                (false, false) => "is not allow-listed and does not pin search_path",
                (false, true) => "is not allow-listed (bulkhead service allow-definer)",
                _ => "does not pin search_path (ALTER FUNCTION ... SET search_path = pg_catalog, ...)",
            };
            report.found(Level::Fail, Check::DefinerFunctions, target, func, format!("a SECURITY DEFINER function tenants can call runs with its owner's rights and {why}"));
        }
    }
    Ok(())
}

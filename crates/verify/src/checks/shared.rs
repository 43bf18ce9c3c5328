//! Shared tables of a pool database (schema `public`): forced RLS with Bulkhead's policy and
//! nothing widening it, a `tenant_id` column unless listed reference data, owned by no tenant
//! role; indexes leading with `tenant_id` and sequences shared by every tenant (warnings).

use tokio_postgres::Client;

use crate::report::{Check, Level};
use crate::{Report, Scope};

const TABLES: &str = "
SELECT c.oid::regclass::text AS rel, c.relname, c.relrowsecurity, c.relforcerowsecurity,
       pg_get_userbyid(c.relowner) AS owner, a.attnum AS tenant_attnum
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
 ORDER BY 1";

const POLICIES: &str = "
SELECT p.polrelid::regclass::text AS rel, p.polname, p.polpermissive, p.polcmd::text AS cmd,
       coalesce(pg_get_expr(p.polqual, p.polrelid), '') AS qual,
       coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '') AS with_check,
       p.polroles = '{0}'::oid[] AS for_public
  FROM pg_policy p
  JOIN pg_class c ON c.oid = p.polrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public'";

const INDEXES: &str = "
SELECT i.indrelid::regclass::text AS rel, i.indexrelid::regclass::text AS idx,
       i.indkey[0]::int AS first, i.indisprimary, i.indisunique
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')";

const SEQUENCES: &str = "
SELECT s.oid::regclass::text AS seq, coalesce(d.refobjid::regclass::text, '') AS owner_table
  FROM pg_class s
  JOIN pg_namespace n ON n.oid = s.relnamespace
  LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
        AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
 WHERE n.nspname = 'public' AND s.relkind = 'S'";

/// The policy expression Bulkhead writes, without spaces.
fn is_bulkhead_expr(expr: &str) -> bool {
    let e: String = expr.chars().filter(|c| !c.is_whitespace()).collect();
    e.contains("tenant_id=(SELECTbulkhead.current_tenant()")
}

fn is_tenant_role(name: &str) -> bool {
    name.starts_with("bh_t_") || name.starts_with("bh_o_")
}

pub(super) async fn check(
    client: &Client,
    scope: &Scope<'_>,
    report: &mut Report,
) -> Result<(), tokio_postgres::Error> {
    let target = scope.target.as_str();
    let tables = client.query(TABLES, &[]).await?;
    let policies = client.query(POLICIES, &[]).await?;
    let mut tenant_tables = Vec::new();
    for t in &tables {
        let rel: String = t.get("rel");
        let relname: String = t.get("relname");
        let owner: String = t.get("owner");
        report.looked_at(Check::RoleOwnership, 1);
        if is_tenant_role(&owner) {
            report.found(Level::Fail, Check::RoleOwnership, target, &rel, format!("owned by tenant role {owner}: an owner bypasses row-level security; ALTER TABLE ... OWNER TO the service's administrator"));
        }
        report.looked_at(Check::TenantColumn, 1);
        let Some(tenant_attnum) = t.get::<_, Option<i16>>("tenant_attnum") else {
            if !scope.reference_tables.contains(&relname) {
                report.found(Level::Fail, Check::TenantColumn, target, &rel, "a shared table without tenant_id is visible to every tenant: add tenant_id, or declare it reference data (service create --reference)");
            }
            continue;
        };
        tenant_tables.push((rel.clone(), tenant_attnum));
        report.looked_at(Check::ForcedRls, 1);
        if !t.get::<_, bool>("relrowsecurity") || !t.get::<_, bool>("relforcerowsecurity") {
            report.found(Level::Fail, Check::ForcedRls, target, &rel, "row-level security is not enabled and forced: run `bulkhead migrate` (it secures every shared table)");
        }
        report.looked_at(Check::BulkheadPolicy, 1);
        let mine: Vec<_> = policies
            .iter()
            .filter(|p| p.get::<_, String>("rel") == rel)
            .collect();
        let bulkhead = mine.iter().any(|p| {
            p.get::<_, String>("polname") == bulkhead_provisioner::migrate::POLICY_NAME
                && p.get::<_, bool>("polpermissive")
                && p.get::<_, String>("cmd") == "*"
                && p.get::<_, bool>("for_public")
                && is_bulkhead_expr(&p.get::<_, String>("qual"))
                && is_bulkhead_expr(&p.get::<_, String>("with_check"))
        });
        if !bulkhead {
            report.found(Level::Fail, Check::BulkheadPolicy, target, &rel, "Bulkhead's policy (tenant_id = bulkhead.current_tenant(), for every command) is missing or altered: run `bulkhead migrate`");
        }
        report.looked_at(Check::NoWideningPolicy, 1);
        for p in &mine {
            let name: String = p.get("polname");
            if p.get::<_, bool>("polpermissive")
                && name != bulkhead_provisioner::migrate::POLICY_NAME
            {
                report.found(Level::Fail, Check::NoWideningPolicy, target, format!("{rel}: policy {name}"), "a second permissive policy widens what a tenant sees (permissive policies are OR-ed): drop it, or make it RESTRICTIVE");
            }
        }
    }
    for i in client.query(INDEXES, &[]).await? {
        let rel: String = i.get("rel");
        let Some((_, tenant_attnum)) = tenant_tables.iter().find(|(r, _)| *r == rel) else {
            continue;
        };
        report.looked_at(Check::IndexesLeadWithTenant, 1);
        if i.get::<_, i32>("first") != i32::from(*tenant_attnum) {
            let idx: String = i.get("idx");
            let what = if i.get::<_, bool>("indisprimary") {
                "its primary key"
            } else if i.get::<_, bool>("indisunique") {
                "a unique index (its violations can reveal another tenant's keys)"
            } else {
                "an index"
            };
            report.found(Level::Warn, Check::IndexesLeadWithTenant, target, idx, format!("{what} of {rel} does not lead with tenant_id: each tenant's lookups scan everyone's entries"));
        }
    }
    for s in client.query(SEQUENCES, &[]).await? {
        report.looked_at(Check::SharedSequences, 1);
        let seq: String = s.get("seq");
        let table: String = s.get("owner_table");
        report.found(Level::Warn, Check::SharedSequences, target, seq, format!("shared by every tenant{}: values reveal how busy the others are; prefer uuid keys or a per-tenant counter", if table.is_empty() { String::new() } else { format!(" of {table}") }));
    }
    Ok(())
}

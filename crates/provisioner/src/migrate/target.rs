//! A migration target: one place a service's tables live, with the search_path each class of
//! statement runs under there and the privileges and row-level security it must have after
//! every migration.

use bulkhead_directory::Cluster;
use bulkhead_model::{ServiceName, TenantId};
use tokio_postgres::{GenericClient, Row};

use super::plan::StatementClass;
use crate::naming::ident;
use crate::ProvisionError;

/// What kind of place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// A pool database's shared tables (`public`) and reference data (`ref`).
    Pool,
    /// A template database of database tenants.
    Template,
    /// A schema tenant's schema in a pool database.
    Schema,
    /// A database tenant's database.
    Database,
}

/// One place to migrate.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its kind.
    pub kind: TargetKind,
    /// The service it belongs to.
    pub service: ServiceName,
    /// The cluster it is on.
    pub cluster: Cluster,
    /// Its database.
    pub database: String,
    /// The tenant's schema (schema kind).
    pub schema: Option<String>,
    /// The tenant (schema and database kinds).
    pub tenant: Option<TenantId>,
    /// Who gets table privileges: the tenant's runtime role (schema kind) or the service's
    /// runtime group (pool, template, database kinds).
    pub grantee: String,
    /// How it is shown in progress and summaries.
    pub label: String,
}

/// Name of the policy Bulkhead puts on every shared table.
pub const POLICY_NAME: &str = "bulkhead_tenant";

impl Target {
    /// The key of this target in `bulkhead.applied_migrations`.
    pub fn key(&self) -> &str {
        match self.kind {
            TargetKind::Pool => "shared",
            TargetKind::Schema => self.schema.as_deref().unwrap_or("schema"),
            TargetKind::Template | TargetKind::Database => "database",
        }
    }

    /// The search_path a statement of `class` runs under here, or None when it does not run
    /// here at all.
    pub fn search_path(&self, class: StatementClass) -> Option<String> {
        match (self.kind, class) {
            (TargetKind::Schema, StatementClass::Tenant) => Some(format!(
                "{}, ref",
                ident(self.schema.as_deref().unwrap_or("public"))
            )),
            (TargetKind::Schema, _) => None,
            (_, StatementClass::Tenant) => Some("public, ref".into()),
            (_, StatementClass::Reference) => Some("ref".into()),
            (_, StatementClass::Database) => Some("public".into()),
        }
    }

    /// The schema holding this target's tenant tables.
    pub fn tenant_schema(&self) -> &str {
        match self.kind {
            TargetKind::Schema => self.schema.as_deref().unwrap_or("public"),
            _ => "public",
        }
    }

    /// Brings privileges, defaults and row-level security in line after a migration: every
    /// table with a `tenant_id` column defaults it to `bulkhead.current_tenant()`; in the
    /// pool's shared tables it is under forced RLS with the Bulkhead policy; the grantee gets
    /// DML on tenant tables (never TRUNCATE, REFERENCES or TRIGGER) and reference data is
    /// readable by all.
    pub async fn secure(&self, client: &impl GenericClient) -> Result<(), ProvisionError> {
        if self.kind == TargetKind::Schema {
            return secure_schemas(client, &[self]).await;
        }
        let schema = self.tenant_schema();
        let ctx = || format!("securing {}", self.label);
        let tables = client
            .query(TENANT_TABLES, &[&schema, &self.grantee])
            .await
            .map_err(ProvisionError::sql(ctx()))?;
        let mut sql = String::new();
        for t in &tables {
            sql.push_str(&self.secure_table(t));
        }
        let (s, g) = (ident(schema), ident(&self.grantee));
        sql.push_str(&format!("GRANT USAGE ON SCHEMA {s} TO {g};"));
        if self.kind == TargetKind::Pool {
            sql.push_str(&format!(
                "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {g};"
            ));
        } else {
            // Everything in a tenant's own database (or the template of one) is that tenant's.
            sql.push_str(&format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {g};"
            ));
            sql.push_str(&format!(
                "REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA {s} FROM {g};"
            ));
            sql.push_str(&format!(
                "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {s} TO {g};"
            ));
        }
        sql.push_str("GRANT SELECT ON ALL TABLES IN SCHEMA ref TO PUBLIC;");
        client
            .batch_execute(&sql)
            .await
            .map_err(ProvisionError::sql(ctx()))
    }

    fn secure_table(&self, t: &Row) -> String {
        let rel = format!("{}.{}", ident(t.get("nspname")), ident(t.get("relname")));
        let g = ident(&self.grantee);
        let mut sql = String::new();
        if !t.get::<_, bool>("has_default") {
            sql.push_str(&format!(
                "ALTER TABLE {rel} ALTER COLUMN tenant_id SET DEFAULT bulkhead.current_tenant();"
            ));
        }
        if self.kind == TargetKind::Pool {
            if !t.get::<_, bool>("relrowsecurity") {
                sql.push_str(&format!("ALTER TABLE {rel} ENABLE ROW LEVEL SECURITY;"));
            }
            if !t.get::<_, bool>("relforcerowsecurity") {
                sql.push_str(&format!("ALTER TABLE {rel} FORCE ROW LEVEL SECURITY;"));
            }
            if !t.get::<_, bool>("has_policy") {
                // The function call sits in a scalar subquery so PostgreSQL evaluates it once
                // per statement (an InitPlan), not once per row.
                sql.push_str(&format!(
                    "CREATE POLICY {POLICY_NAME} ON {rel} USING (tenant_id = (SELECT bulkhead.current_tenant())) \
                     WITH CHECK (tenant_id = (SELECT bulkhead.current_tenant()));"
                ));
            }
            if !t.get::<_, bool>("granted") {
                sql.push_str(&format!(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON {rel} TO {g};"
                ));
                sql.push_str(&format!(
                    "REVOKE TRUNCATE, REFERENCES, TRIGGER ON {rel} FROM {g}, PUBLIC;"
                ));
            }
        }
        sql
    }
}

/// Secures schema targets of one database with one catalog query: each tenant's runtime role
/// gets USAGE on its schema and DML (never TRUNCATE, REFERENCES, TRIGGER) on every table and
/// sequence in it, and every `tenant_id` column defaults to `bulkhead.current_tenant()`.
/// Statements are issued only where something is missing, so securing an already secure
/// schema costs one query.
pub async fn secure_schemas(
    client: &impl GenericClient,
    targets: &[&Target],
) -> Result<(), ProvisionError> {
    if targets.is_empty() {
        return Ok(());
    }
    let schemas: Vec<&str> = targets.iter().map(|t| t.tenant_schema()).collect();
    let grantees: Vec<&str> = targets.iter().map(|t| t.grantee.as_str()).collect();
    let rows = client
        .query(SCHEMA_GAPS, &[&schemas, &grantees])
        .await
        .map_err(ProvisionError::sql("checking tenant schema privileges"))?;
    let mut sql = String::new();
    for r in &rows {
        let (s, g) = (ident(r.get("nsp")), ident(r.get("grantee")));
        let rel = || {
            format!(
                "{s}.{}",
                ident(r.get::<_, Option<&str>>("relname").unwrap_or_default())
            )
        };
        if r.get::<_, bool>("need_usage") {
            sql.push_str(&format!("GRANT USAGE ON SCHEMA {s} TO {g};"));
        }
        if r.get::<_, bool>("need_table") {
            sql.push_str(&format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {} TO {g};",
                rel()
            ));
        }
        if r.get::<_, bool>("need_revoke") {
            sql.push_str(&format!(
                "REVOKE TRUNCATE, REFERENCES, TRIGGER ON TABLE {} FROM {g};",
                rel()
            ));
        }
        if r.get::<_, bool>("need_sequence") {
            sql.push_str(&format!(
                "GRANT USAGE, SELECT, UPDATE ON SEQUENCE {} TO {g};",
                rel()
            ));
        }
        if r.get::<_, bool>("need_default") {
            sql.push_str(&format!(
                "ALTER TABLE {} ALTER COLUMN tenant_id SET DEFAULT bulkhead.current_tenant();",
                rel()
            ));
        }
    }
    if sql.is_empty() {
        return Ok(());
    }
    client
        .batch_execute(&sql)
        .await
        .map_err(ProvisionError::sql("securing tenant schemas"))
}

/// Per (schema, grantee) and relation in it: what is missing. Relations are found through
/// pg_depend's index on the referenced namespace: pg_class has no index on relnamespace, and
/// scanning it costs more with every tenant.
const SCHEMA_GAPS: &str = "
SELECT g.nsp, g.grantee, c.relname,
       NOT has_schema_privilege(g.grantee, n.oid, 'USAGE') AS need_usage,
       COALESCE(c.relkind IN ('r', 'p') AND NOT (
           has_table_privilege(g.grantee, c.oid, 'SELECT') AND has_table_privilege(g.grantee, c.oid, 'INSERT')
           AND has_table_privilege(g.grantee, c.oid, 'UPDATE') AND has_table_privilege(g.grantee, c.oid, 'DELETE')), false) AS need_table,
       COALESCE(c.relkind IN ('r', 'p') AND (
           has_table_privilege(g.grantee, c.oid, 'TRUNCATE') OR has_table_privilege(g.grantee, c.oid, 'REFERENCES')
           OR has_table_privilege(g.grantee, c.oid, 'TRIGGER')), false) AS need_revoke,
       COALESCE(c.relkind = 'S' AND NOT has_sequence_privilege(g.grantee, c.oid, 'USAGE'), false) AS need_sequence,
       COALESCE(c.relkind IN ('r', 'p') AND a.attnum IS NOT NULL
           AND COALESCE(pg_get_expr(ad.adbin, ad.adrelid), '') <> 'bulkhead.current_tenant()', false) AS need_default
  FROM unnest($1::text[], $2::text[]) AS g(nsp, grantee)
  JOIN pg_namespace n ON n.nspname = g.nsp
  LEFT JOIN pg_depend d ON d.refclassid = 'pg_namespace'::regclass AND d.refobjid = n.oid
       AND d.classid = 'pg_class'::regclass AND d.deptype = 'n'
  LEFT JOIN pg_class c ON c.oid = d.objid AND c.relkind IN ('r', 'p', 'S')
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum";

/// Tables of schema $1 with a `tenant_id` column and what they already have.
const TENANT_TABLES: &str = "
SELECT n.nspname, c.relname, c.relrowsecurity, c.relforcerowsecurity,
       EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'bulkhead_tenant') AS has_policy,
       COALESCE(pg_get_expr(d.adbin, d.adrelid) = 'bulkhead.current_tenant()', false) AS has_default,
       COALESCE(has_table_privilege($2::text::regrole, c.oid, 'SELECT')
            AND has_table_privilege($2::text::regrole, c.oid, 'INSERT')
            AND has_table_privilege($2::text::regrole, c.oid, 'UPDATE')
            AND has_table_privilege($2::text::regrole, c.oid, 'DELETE'), false) AS granted
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
 ORDER BY c.relname";

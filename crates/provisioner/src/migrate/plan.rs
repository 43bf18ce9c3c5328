//! Splitting a migration into statements with PostgreSQL's own parser and deciding where each
//! runs:
//! - a statement that names only reference tables runs where reference data lives (the
//!   pool database's `ref` schema, and each template and tenant database);
//! - extension statements run once per database;
//! - everything else runs in every tenant target (the pool's shared tables, each tenant
//!   schema, each tenant database).
//!
//! Statements that would break the target's context (transaction control, role or
//! search_path changes) are refused before anything runs.

use bulkhead_directory::StoredMigration;
use pg_query::NodeEnum;

use crate::ProvisionError;

/// Where a statement runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementClass {
    /// In every tenant target.
    Tenant,
    /// Only where reference tables live, with `search_path = ref`.
    Reference,
    /// Once per database (extensions).
    Database,
}

/// One statement of a migration.
#[derive(Debug, Clone)]
pub struct PlannedStatement {
    /// Its text.
    pub sql: String,
    /// Where it runs.
    pub class: StatementClass,
}

/// A migration ready to apply.
#[derive(Debug, Clone)]
pub struct MigrationPlan {
    /// Version.
    pub version: i64,
    /// Name.
    pub name: String,
    /// Checksum of the file.
    pub checksum: String,
    /// Its statements, in order.
    pub statements: Vec<PlannedStatement>,
    /// False when a statement cannot run inside a transaction block (CREATE INDEX
    /// CONCURRENTLY, VACUUM, ...): the migration then runs statement by statement.
    pub transactional: bool,
    /// True when a statement may create relations or change privileges or the `tenant_id`
    /// column, so a tenant schema's privileges must be checked again afterwards.
    pub changes_privileges: bool,
}

/// Plans a registered migration for a service whose reference tables are `reference`.
pub fn plan(m: &StoredMigration, reference: &[String]) -> Result<MigrationPlan, ProvisionError> {
    let label = format!("V{}__{}", m.version, m.name);
    let pieces = pg_query::split_with_parser(&m.sql)
        .map_err(|e| ProvisionError::Migration(format!("{label} does not parse: {e}")))?;
    let mut statements = Vec::new();
    let mut transactional = true;
    let mut changes_privileges = false;
    for piece in pieces {
        let sql = piece.trim();
        if sql.is_empty() {
            continue;
        }
        let parsed = pg_query::parse(sql, 0)
            .map_err(|e| ProvisionError::Migration(format!("{label} does not parse: {e}")))?;
        for raw in &parsed.protobuf.stmts {
            let node = raw.stmt.as_ref().and_then(|s| s.node.as_ref());
            check_allowed(&label, node)?;
            if needs_autocommit(node) {
                transactional = false;
            }
            if may_change_privileges(node) {
                changes_privileges = true;
            }
        }
        let tables = parsed.tables();
        let only_reference = !tables.is_empty()
            && tables.iter().all(|t| {
                let bare = t.rsplit('.').next().unwrap_or(t);
                reference.iter().any(|r| r == bare)
            });
        let is_extension = parsed.protobuf.stmts.iter().any(|raw| {
            matches!(
                raw.stmt.as_ref().and_then(|s| s.node.as_ref()),
                Some(NodeEnum::CreateExtensionStmt(_)) | Some(NodeEnum::AlterExtensionStmt(_))
            )
        });
        let class = if is_extension {
            StatementClass::Database
        } else if only_reference {
            StatementClass::Reference
        } else {
            StatementClass::Tenant
        };
        statements.push(PlannedStatement {
            sql: sql.to_string(),
            class,
        });
    }
    Ok(MigrationPlan {
        version: m.version,
        name: m.name.clone(),
        checksum: m.checksum.clone(),
        statements,
        transactional,
        changes_privileges,
    })
}

fn check_allowed(label: &str, node: Option<&NodeEnum>) -> Result<(), ProvisionError> {
    let refuse = |what: &str| {
        Err(ProvisionError::Migration(format!(
            "{label}: {what} is not allowed in a migration: Bulkhead runs each migration in a transaction with the target's role and search_path"
        )))
    };
    match node {
        Some(NodeEnum::TransactionStmt(_)) => refuse("transaction control (BEGIN, COMMIT, ...)"),
        Some(NodeEnum::VariableSetStmt(s)) => {
            let name = s.name.to_ascii_lowercase();
            if ["role", "session_authorization", "search_path"].contains(&name.as_str())
                || name.starts_with("bulkhead.")
            {
                refuse(&format!("SET {name}"))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Whether a statement may leave a tenant schema with a relation its runtime role has no
/// rights on, or a `tenant_id` column without its default. Unknown statements may.
fn may_change_privileges(node: Option<&NodeEnum>) -> bool {
    match node {
        Some(
            NodeEnum::IndexStmt(_)
            | NodeEnum::InsertStmt(_)
            | NodeEnum::UpdateStmt(_)
            | NodeEnum::DeleteStmt(_)
            | NodeEnum::SelectStmt(_)
            | NodeEnum::CommentStmt(_)
            | NodeEnum::VariableSetStmt(_)
            | NodeEnum::DropStmt(_)
            | NodeEnum::CreateExtensionStmt(_)
            | NodeEnum::AlterExtensionStmt(_),
        ) => false,
        Some(NodeEnum::AlterTableStmt(a)) => a.cmds.iter().any(|cmd| match cmd.node.as_ref() {
            Some(NodeEnum::AlterTableCmd(c)) => {
                let on_tenant_id = c.name.eq_ignore_ascii_case("tenant_id")
                    || matches!(
                        c.def.as_ref().and_then(|d| d.node.as_ref()),
                        Some(NodeEnum::ColumnDef(col)) if col.colname.eq_ignore_ascii_case("tenant_id")
                    );
                // Adding, dropping or altering ordinary columns and constraints keeps grants.
                let harmless = matches!(
                    pg_query::protobuf::AlterTableType::try_from(c.subtype),
                    Ok(pg_query::protobuf::AlterTableType::AtAddColumn
                        | pg_query::protobuf::AlterTableType::AtDropColumn
                        | pg_query::protobuf::AlterTableType::AtColumnDefault
                        | pg_query::protobuf::AlterTableType::AtSetNotNull
                        | pg_query::protobuf::AlterTableType::AtDropNotNull
                        | pg_query::protobuf::AlterTableType::AtAlterColumnType
                        | pg_query::protobuf::AlterTableType::AtAddConstraint
                        | pg_query::protobuf::AlterTableType::AtDropConstraint
                        | pg_query::protobuf::AlterTableType::AtValidateConstraint)
                );
                on_tenant_id || !harmless
            }
            _ => true,
        }),
        _ => true,
    }
}

fn needs_autocommit(node: Option<&NodeEnum>) -> bool {
    match node {
        Some(NodeEnum::IndexStmt(s)) => s.concurrent,
        Some(NodeEnum::DropStmt(s)) => s.concurrent,
        Some(NodeEnum::ReindexStmt(_)) | Some(NodeEnum::VacuumStmt(_)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(sql: &str) -> StoredMigration {
        StoredMigration {
            version: 1,
            name: "t".into(),
            checksum: String::new(),
            sql: sql.into(),
        }
    }

    #[test]
    fn statements_are_classified_by_the_tables_they_name() {
        let reference = vec!["countries".to_string()];
        let p = plan(
            &stored(
                "CREATE TABLE countries (code text PRIMARY KEY);
                 INSERT INTO countries VALUES ('fr'), ('de');
                 CREATE TABLE orders (tenant_id uuid, id bigint, country text REFERENCES countries (code));
                 CREATE EXTENSION IF NOT EXISTS pgcrypto;
                 -- a comment with a ; inside
                 CREATE INDEX ON orders (tenant_id, id);",
            ),
            &reference,
        )
        .expect("plan");
        let classes: Vec<StatementClass> = p.statements.iter().map(|s| s.class).collect();
        assert_eq!(
            classes,
            [
                StatementClass::Reference,
                StatementClass::Reference,
                StatementClass::Tenant,
                StatementClass::Database,
                StatementClass::Tenant
            ]
        );
        assert!(p.transactional);
    }

    #[test]
    fn privileges_are_rechecked_only_after_statements_that_can_change_them() {
        let changes = |sql: &str| plan(&stored(sql), &[]).expect(sql).changes_privileges;
        assert!(!changes("ALTER TABLE orders ADD COLUMN note text;"));
        assert!(!changes(
            "CREATE INDEX ON orders (note); UPDATE orders SET note = 'x';"
        ));
        assert!(!changes(
            "ALTER TABLE orders ADD CONSTRAINT c CHECK (amount > 0);"
        ));
        for sql in [
            "CREATE TABLE x (tenant_id uuid);",
            "CREATE SEQUENCE s;",
            "CREATE VIEW v AS SELECT 1;",
            "ALTER TABLE orders ADD COLUMN tenant_id uuid;",
            "ALTER TABLE orders ALTER COLUMN tenant_id DROP DEFAULT;",
            "ALTER TABLE orders NO FORCE ROW LEVEL SECURITY;",
            "GRANT SELECT ON orders TO PUBLIC;",
            "ALTER TABLE orders RENAME TO orders_old;",
            "DO $$ BEGIN NULL; END $$;",
        ] {
            assert!(changes(sql), "{sql} may change privileges");
        }
    }

    #[test]
    fn concurrent_index_builds_run_outside_a_transaction() {
        let p = plan(&stored("CREATE INDEX CONCURRENTLY i ON orders (id);"), &[]).expect("plan");
        assert!(!p.transactional);
    }

    #[test]
    fn context_changes_are_refused() {
        for sql in [
            "BEGIN; CREATE TABLE a (id int); COMMIT;",
            "SET ROLE postgres;",
            "SET search_path = other;",
            "SET \"Search_Path\" = other;",
            "SET LOCAL bulkhead.tenant_id = 'x';",
            "RESET ROLE;",
        ] {
            assert!(plan(&stored(sql), &[]).is_err(), "{sql} should be refused");
        }
        assert!(plan(&stored("SET statement_timeout = '5s'; SELECT 1;"), &[]).is_ok());
        assert!(plan(&stored("CREATE TABLE (;"), &[]).is_err());
    }
}

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
}

/// Plans a registered migration for a service whose reference tables are `reference`.
pub fn plan(m: &StoredMigration, reference: &[String]) -> Result<MigrationPlan, ProvisionError> {
    let label = format!("V{}__{}", m.version, m.name);
    let pieces = pg_query::split_with_parser(&m.sql)
        .map_err(|e| ProvisionError::Migration(format!("{label} does not parse: {e}")))?;
    let mut statements = Vec::new();
    let mut transactional = true;
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

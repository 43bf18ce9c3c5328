//! Statements that read nothing but the catalogs: what a service login may run before it
//! chose a tenant (a driver's type lookups, `SELECT version()`, `SHOW`), on the service's
//! catalog route (see `route.rs`), as a role that holds no privilege and is bound to no
//! tenant.
//!
//! A statement qualifies when it is a `SELECT` (no `INTO`, no row locks), a `SHOW` or a `SET`
//! the guard accepted, and every relation it names anywhere in its tree — subqueries, CTEs,
//! joins — is in `pg_catalog` or `information_schema`: qualified so, or unqualified and named
//! `pg_*` (the catalog route's search_path is `pg_catalog` alone), or the name of one of its
//! own CTEs. Anything else waits for a tenant. This decides only where a statement may run:
//! the role it runs as could read no tenant's rows either way.

use serde_json::Value;

/// True when `stmt` (a serialised statement node) reads only the catalogs.
pub(super) fn reads_only_catalogs(stmt: &Value) -> bool {
    let Some(Value::Object(node)) = stmt.get("node") else {
        return false;
    };
    match node.iter().next() {
        Some((kind, _)) if kind == "VariableShowStmt" || kind == "VariableSetStmt" => true,
        Some((kind, Value::Object(select))) if kind == "SelectStmt" => {
            let plain = |field: &str| match select.get(field) {
                None | Some(Value::Null) => true,
                Some(Value::Array(a)) => a.is_empty(),
                Some(_) => false,
            };
            plain("into_clause") && plain("locking_clause") && names_only_catalogs(stmt)
        }
        _ => false,
    }
}

/// Every relation `tree` names is a catalog's (or one of its CTEs).
fn names_only_catalogs(tree: &Value) -> bool {
    let mut ctes = Vec::new();
    let mut relations = Vec::new();
    let mut stack = vec![tree];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                if let Some(Value::Object(cte)) = map.get("CommonTableExpr") {
                    if let Some(name) = cte.get("ctename").and_then(Value::as_str) {
                        ctes.push(name.to_string());
                    }
                }
                // A relation: a RangeVar, wrapped in a node or not (DELETE's, a CTE's ...).
                if map.contains_key("relname") {
                    relations.push(map);
                }
                if ["InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"]
                    .iter()
                    .any(|k| map.contains_key(*k))
                {
                    return false;
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items.iter()),
            _ => {}
        }
    }
    relations.iter().all(|rel| {
        let text = |f: &str| rel.get(f).and_then(Value::as_str).unwrap_or_default();
        let (catalog, schema, name) = (text("catalogname"), text("schemaname"), text("relname"));
        catalog.is_empty()
            && match schema {
                "pg_catalog" | "information_schema" => true,
                "" => name.starts_with("pg_") || ctes.iter().any(|c| c == name),
                _ => false,
            }
    })
}

#[cfg(test)]
mod tests {
    fn free(sql: &str) -> bool {
        super::super::inspect_uncached(sql)
            .expect("accepted")
            .tenant_free
    }

    #[test]
    fn catalog_reads_are_tenant_free() {
        for sql in [
            "SELECT 1",
            "SELECT version()",
            "SHOW TimeZone",
            "SET TimeZone TO 'UTC'",
            "SELECT oid, typname FROM pg_type WHERE typname = 'hstore'",
            "SELECT t.oid FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace",
            "SELECT table_name FROM information_schema.tables",
            "WITH RECURSIVE r AS (SELECT oid FROM pg_type UNION ALL SELECT oid FROM r) SELECT * FROM r",
            "SELECT (SELECT count(*) FROM pg_class)",
            "VALUES (1)",
            "BEGIN; SELECT 1; COMMIT",
        ] {
            assert!(free(sql), "{sql}");
        }
    }

    #[test]
    fn anything_that_names_other_relations_waits_for_a_tenant() {
        for sql in [
            "SELECT * FROM customers",
            "SELECT * FROM public.customers",
            "SELECT * FROM pg_type, customers",
            "SELECT (SELECT count(*) FROM customers)",
            "SELECT oid FROM pg_type WHERE oid IN (SELECT id FROM orders)",
            "WITH x AS (DELETE FROM customers RETURNING id) SELECT * FROM x",
            "WITH pg_x AS (SELECT 1) SELECT * FROM t_other.pg_x",
            "SELECT * FROM otherdb.pg_catalog.pg_type",
            "SELECT 1 FROM pg_type FOR UPDATE",
            "INSERT INTO customers VALUES (1)",
            "UPDATE pg_catalog.pg_type SET typname = 'x'",
            "SELECT 1; SELECT * FROM customers",
        ] {
            assert!(!free(sql), "{sql}");
        }
    }
}

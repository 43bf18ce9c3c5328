//! The guard: every query text is parsed with PostgreSQL's own parser before it reaches a
//! backend, and anything that could step outside the tenant is refused. Text that does not
//! parse is refused: fail closed.
//!
//! The rules here are the minimum without which transaction pooling over a role that is a
//! member of every tenant role would be unsafe (changing role, authorization, search_path or
//! the tenant setting; `set_config`; DO blocks) plus the session state that would outlive a
//! transaction on a shared backend (session SET, LISTEN, WITH HOLD cursors, SQL PREPARE).
//! The database refuses too (see `bulkhead.current_tenant()`); both must be defeated.

use bulkhead_wire::SqlState;
use pg_query::protobuf::TransactionStmtKind;
use pg_query::NodeEnum;

/// What a statement does to the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxEffect {
    /// BEGIN / START TRANSACTION.
    Begin,
    /// COMMIT / END.
    Commit,
    /// ROLLBACK / ABORT (not ROLLBACK TO SAVEPOINT).
    Rollback,
    /// Anything else.
    None,
}

/// Why a statement is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The SQLSTATE sent to the client.
    pub code: SqlState,
    /// The rule, for logs and metrics.
    pub rule: &'static str,
    /// What the client is told, including what to do instead.
    pub message: String,
}

fn refuse(code: SqlState, rule: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        rule,
        message: message.into(),
    }
}

/// What the guard learned about an accepted query text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// The transaction effect of each statement, in order.
    pub effects: Vec<TxEffect>,
    /// True when a statement is `COPY ... FROM STDIN` (the client will stream data).
    pub copy_in: bool,
}

/// Parses `sql` and returns the transaction effect of each statement, or why it is refused.
pub fn check(sql: &str) -> Result<Vec<TxEffect>, Refusal> {
    inspect(sql).map(|c| c.effects)
}

/// Results of [`inspect`] by exact text. Drivers send the same texts again and again
/// (prepared statements, ORMs); parsing is the gateway's largest cost per statement.
static CACHE: std::sync::Mutex<
    Option<std::collections::HashMap<String, Result<Checked, Refusal>>>,
> = std::sync::Mutex::new(None);
/// Entries kept at most; the cache is emptied when full (simple, and bounded).
const CACHE_ENTRIES: usize = 10_000;
/// Longer texts are not cached (they are rarely repeated and would hold memory).
const CACHE_MAX_TEXT: usize = 4096;

/// Like [`check`], with everything the session needs to know; cached by exact text.
pub fn inspect(sql: &str) -> Result<Checked, Refusal> {
    if sql.len() > CACHE_MAX_TEXT {
        return inspect_uncached(sql);
    }
    if let Ok(cache) = CACHE.lock() {
        if let Some(hit) = cache.as_ref().and_then(|c| c.get(sql)) {
            return hit.clone();
        }
    }
    let result = inspect_uncached(sql);
    if let Ok(mut cache) = CACHE.lock() {
        let cache = cache.get_or_insert_with(std::collections::HashMap::new);
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(sql.to_string(), result.clone());
    }
    result
}

fn inspect_uncached(sql: &str) -> Result<Checked, Refusal> {
    let parsed = pg_query::parse(sql, 0).map_err(|e| {
        refuse(
            SqlState::SyntaxError,
            "unparsable",
            format!(
                "the gateway could not parse this statement and refuses what it cannot check: {e}"
            ),
        )
    })?;
    for f in parsed.functions() {
        let bare = f.rsplit('.').next().unwrap_or(&f).to_ascii_lowercase();
        if bare == "set_config" {
            return Err(refuse(
                SqlState::InsufficientPrivilege,
                "set_config",
                "set_config() is refused through the gateway: settings that decide who you are cannot be changed",
            ));
        }
    }
    let mut checked = Checked::default();
    for raw in &parsed.protobuf.stmts {
        let node = raw.stmt.as_ref().and_then(|s| s.node.as_ref());
        if matches!(node, Some(NodeEnum::CopyStmt(c)) if c.is_from) {
            checked.copy_in = true;
        }
        checked.effects.push(statement(node)?);
    }
    Ok(checked)
}

fn statement(node: Option<&NodeEnum>) -> Result<TxEffect, Refusal> {
    use SqlState::{FeatureNotSupported as Unsupported, InsufficientPrivilege as Denied};
    match node {
        Some(NodeEnum::TransactionStmt(t)) => match TransactionStmtKind::try_from(t.kind) {
            Ok(TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart) => Ok(TxEffect::Begin),
            Ok(TransactionStmtKind::TransStmtCommit) => Ok(TxEffect::Commit),
            Ok(TransactionStmtKind::TransStmtRollback) => Ok(TxEffect::Rollback),
            Ok(
                TransactionStmtKind::TransStmtPrepare
                | TransactionStmtKind::TransStmtCommitPrepared
                | TransactionStmtKind::TransStmtRollbackPrepared,
            ) => Err(refuse(Unsupported, "two_phase", "two-phase commit is not supported through the gateway")),
            _ => Ok(TxEffect::None),
        },
        Some(NodeEnum::VariableSetStmt(v)) => {
            let name = v.name.to_ascii_lowercase();
            let kind = pg_query::protobuf::VariableSetKind::try_from(v.kind);
            if kind == Ok(pg_query::protobuf::VariableSetKind::VarResetAll) {
                return Err(refuse(Denied, "reset_all", "RESET ALL is refused: it would reset the tenant context"));
            }
            if ["role", "session_authorization", "search_path"].contains(&name.as_str()) || name.starts_with("bulkhead.")
            {
                return Err(refuse(
                    Denied,
                    "context_setting",
                    format!("changing `{name}` is refused: the gateway sets the role, search_path and tenant of every transaction"),
                ));
            }
            let transaction_scoped = v.is_local
                || kind == Ok(pg_query::protobuf::VariableSetKind::VarSetMulti) && name == "transaction";
            if !transaction_scoped {
                return Err(refuse(
                    Unsupported,
                    "session_set",
                    format!("session-level SET {name} would outlive the transaction on a shared connection; use SET LOCAL inside a transaction"),
                ));
            }
            Ok(TxEffect::None)
        }
        Some(NodeEnum::DoStmt(_)) => Err(refuse(Denied, "do_block", "DO blocks are refused through the gateway")),
        Some(NodeEnum::ListenStmt(_) | NodeEnum::UnlistenStmt(_) | NodeEnum::NotifyStmt(_)) => Err(refuse(
            Unsupported,
            "listen_notify",
            "LISTEN/NOTIFY is not supported through the gateway yet",
        )),
        Some(NodeEnum::DeclareCursorStmt(d)) if d.options & 0x0020 != 0 => Err(refuse(
            Unsupported,
            "with_hold",
            "WITH HOLD cursors outlive the transaction on a shared connection; declare the cursor without HOLD",
        )),
        Some(NodeEnum::PrepareStmt(_) | NodeEnum::ExecuteStmt(_) | NodeEnum::DeallocateStmt(_)) => Err(refuse(
            Unsupported,
            "sql_prepare",
            "SQL PREPARE/EXECUTE/DEALLOCATE outlive the transaction; use the protocol's prepared statements (your driver's prepare)",
        )),
        Some(NodeEnum::DiscardStmt(_)) => Err(refuse(Unsupported, "discard", "DISCARD is not needed through the gateway")),
        Some(NodeEnum::CopyStmt(c)) if c.is_program || !c.filename.is_empty() => Err(refuse(
            Denied,
            "copy_file",
            "COPY to or from a server file or program is refused; use COPY ... FROM STDIN / TO STDOUT",
        )),
        Some(NodeEnum::VacuumStmt(_) | NodeEnum::CreatedbStmt(_) | NodeEnum::DropdbStmt(_) | NodeEnum::AlterSystemStmt(_)) => {
            Err(refuse(Unsupported, "not_in_transaction", "this statement cannot run through the gateway"))
        }
        _ => Ok(TxEffect::None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_changes_are_refused_in_every_spelling() {
        for sql in [
            "SET ROLE other",
            "set role other",
            "SET \"ROLE\" TO other",
            "SET U&\"rol\\0065\" TO other",
            "RESET ROLE",
            "SET SESSION AUTHORIZATION other",
            "SET LOCAL search_path = public",
            "SET search_path TO t_other",
            "SET LOCAL bulkhead.tenant_id = '00000000-0000-0000-0000-000000000000'",
            "SET LOCAL \"Bulkhead\".\"Tenant_Id\" = 'x'",
            "RESET ALL",
            "SELECT set_config('role', 'x', true)",
            "SELECT pg_catalog.set_config('bulkhead.tenant_id', 'x', true)",
            "SELECT 1; SET ROLE other",
            "/* hi */ SET ROLE other",
            "DO $$ BEGIN PERFORM 1; END $$",
        ] {
            let r = check(sql).expect_err(sql);
            assert!(
                matches!(r.code, SqlState::InsufficientPrivilege),
                "{sql}: {r:?}"
            );
        }
    }

    #[test]
    fn session_state_is_refused_and_unparsable_text_fails_closed() {
        for sql in [
            "SET statement_timeout = 0",
            "LISTEN x",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "PREPARE p AS SELECT 1",
            "DISCARD ALL",
        ] {
            assert_eq!(
                check(sql).expect_err(sql).code,
                SqlState::FeatureNotSupported,
                "{sql}"
            );
        }
        assert_eq!(
            check("SELEC 1").expect_err("typo").code,
            SqlState::SyntaxError
        );
        assert_eq!(
            check("COPY t TO '/tmp/x'").expect_err("file").code,
            SqlState::InsufficientPrivilege
        );
        assert_eq!(
            check("COPY t FROM PROGRAM 'id'").expect_err("program").code,
            SqlState::InsufficientPrivilege
        );
    }

    #[test]
    fn cached_answers_equal_fresh_ones() {
        for sql in ["SELECT 1", "SET ROLE x", "BEGIN", "SELEC 1"] {
            assert_eq!(inspect(sql), inspect_uncached(sql), "{sql}");
            assert_eq!(inspect(sql), inspect_uncached(sql), "{sql} (cached)");
        }
    }

    #[test]
    fn transaction_control_is_recognised() {
        assert_eq!(check("BEGIN").ok(), Some(vec![TxEffect::Begin]));
        assert_eq!(
            check("start transaction isolation level serializable").ok(),
            Some(vec![TxEffect::Begin])
        );
        assert_eq!(check("COMMIT").ok(), Some(vec![TxEffect::Commit]));
        assert_eq!(check("END").ok(), Some(vec![TxEffect::Commit]));
        assert_eq!(check("ABORT").ok(), Some(vec![TxEffect::Rollback]));
        assert_eq!(
            check("ROLLBACK TO SAVEPOINT a").ok(),
            Some(vec![TxEffect::None])
        );
        assert_eq!(
            check("SET LOCAL statement_timeout = '1s'; SELECT 1").ok(),
            Some(vec![TxEffect::None, TxEffect::None])
        );
        assert_eq!(
            check("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").ok(),
            Some(vec![TxEffect::None])
        );
        assert_eq!(check("").ok(), Some(vec![]));
    }
}

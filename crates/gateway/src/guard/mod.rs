//! The guard: every query text is parsed with PostgreSQL's own parser before it reaches a
//! backend, and anything that could step outside the tenant is refused. Text that does not
//! parse is refused: fail closed.
//!
//! The rules here are the minimum without which transaction pooling over a role that is a
//! member of every tenant role would be unsafe (changing role, authorization, search_path or
//! the tenant setting; `set_config`; DO blocks) plus the session state that would outlive a
//! transaction on a shared backend (session SET, LISTEN, WITH HOLD cursors, SQL PREPARE).
//! The database refuses too (see `bulkhead.current_tenant()`); both must be defeated.
//!
//! Invariant (the shape cache relies on it): apart from context statements, no verdict
//! depends on a constant's value, only on the statement's tokens.

mod cache;
mod quick;

use bulkhead_wire::SqlState;
use pg_query::protobuf::TransactionStmtKind;
use pg_query::NodeEnum;

/// What a statement does to the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxEffect {
    /// BEGIN / START TRANSACTION, with its options.
    Begin(BeginOptions),
    /// COMMIT / END.
    Commit,
    /// ROLLBACK / ABORT (not ROLLBACK TO SAVEPOINT).
    Rollback,
    /// A context statement, answered by the gateway itself.
    Context(ContextSet),
    /// Anything else.
    None,
}

/// The options of a BEGIN, from which the gateway writes its own BEGIN: client text is
/// never spliced into the statements that set the tenant context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BeginOptions {
    /// ISOLATION LEVEL, as SQL.
    pub isolation: Option<&'static str>,
    /// READ ONLY (true) or READ WRITE (false).
    pub read_only: Option<bool>,
    /// DEFERRABLE (true) or NOT DEFERRABLE (false).
    pub deferrable: Option<bool>,
}

impl BeginOptions {
    /// The BEGIN statement with these options.
    pub fn sql(&self) -> String {
        let mut s = String::from("BEGIN");
        if let Some(level) = self.isolation {
            s.push_str(" ISOLATION LEVEL ");
            s.push_str(level);
        }
        match self.read_only {
            Some(true) => s.push_str(" READ ONLY"),
            Some(false) => s.push_str(" READ WRITE"),
            None => {}
        }
        match self.deferrable {
            Some(true) => s.push_str(" DEFERRABLE"),
            Some(false) => s.push_str(" NOT DEFERRABLE"),
            None => {}
        }
        s
    }
}

fn begin_options(options: &[pg_query::protobuf::Node]) -> Result<BeginOptions, Refusal> {
    let mut o = BeginOptions::default();
    let unknown = || {
        refuse(
            SqlState::FeatureNotSupported,
            "begin_options",
            "this BEGIN option is not supported through the gateway",
        )
    };
    for node in options {
        let Some(NodeEnum::DefElem(d)) = node.node.as_ref() else {
            return Err(unknown());
        };
        let val = d.arg.as_ref().and_then(|a| match a.node.as_ref() {
            Some(NodeEnum::AConst(c)) => c.val.clone(),
            _ => None,
        });
        use pg_query::protobuf::a_const::Val;
        match (d.defname.as_str(), val) {
            ("transaction_isolation", Some(Val::Sval(v))) => {
                o.isolation = Some(match v.sval.as_str() {
                    "serializable" => "SERIALIZABLE",
                    "repeatable read" => "REPEATABLE READ",
                    "read committed" => "READ COMMITTED",
                    "read uncommitted" => "READ UNCOMMITTED",
                    _ => return Err(unknown()),
                })
            }
            ("transaction_read_only", Some(Val::Ival(v))) => o.read_only = Some(v.ival != 0),
            ("transaction_deferrable", Some(Val::Ival(v))) => o.deferrable = Some(v.ival != 0),
            _ => return Err(unknown()),
        }
    }
    Ok(o)
}

/// Which tenant setting a context statement names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextKey {
    /// `bulkhead.tenant`: a tenant id or slug.
    Tenant,
    /// `bulkhead.token`: a token signed for the service, naming the tenant.
    Token,
}

/// `SET [LOCAL] bulkhead.tenant|token = '...'`, or its RESET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextSet {
    /// SET LOCAL (this transaction) rather than SET (the session).
    pub local: bool,
    /// The setting.
    pub key: ContextKey,
    /// The value; None for RESET or `TO DEFAULT`.
    pub value: Option<String>,
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
    /// Where each statement starts in the text (bytes).
    pub starts: Vec<usize>,
}

/// Parses `sql` and returns the transaction effect of each statement, or why it is refused.
pub fn check(sql: &str) -> Result<Vec<TxEffect>, Refusal> {
    inspect(sql).map(|c| c.effects)
}

/// Like [`check`], with everything the session needs to know; cached (see [`cache`]).
pub fn inspect(sql: &str) -> Result<Checked, Refusal> {
    cache::inspect(sql)
}

/// Parses and judges `sql` (no cache).
pub(crate) fn inspect_uncached(sql: &str) -> Result<Checked, Refusal> {
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
        checked
            .starts
            .push(usize::try_from(raw.stmt_location).unwrap_or(0));
    }
    Ok(checked)
}

/// The context setting a (lowercased) setting name is, if any.
fn context_key(name: &str) -> Option<ContextKey> {
    match name {
        "bulkhead.tenant" => Some(ContextKey::Tenant),
        "bulkhead.token" => Some(ContextKey::Token),
        _ => None,
    }
}

/// `SET [LOCAL] bulkhead.tenant|token = 'value'`, `... TO DEFAULT` or `RESET ...`.
fn context_statement(
    v: &pg_query::protobuf::VariableSetStmt,
    key: ContextKey,
) -> Result<TxEffect, Refusal> {
    use pg_query::protobuf::VariableSetKind as K;
    let value = match K::try_from(v.kind) {
        Ok(K::VarSetValue) => {
            let [arg] = v.args.as_slice() else {
                return Err(refuse(
                    SqlState::InvalidParameterValue,
                    "context_value",
                    "bulkhead.tenant and bulkhead.token take one value",
                ));
            };
            let text = match arg.node.as_ref() {
                Some(NodeEnum::AConst(c)) => match c.val.as_ref() {
                    Some(pg_query::protobuf::a_const::Val::Sval(s)) => Some(s.sval.clone()),
                    _ => None,
                },
                _ => None,
            };
            Some(text.ok_or_else(|| {
                refuse(
                    SqlState::InvalidParameterValue,
                    "context_value",
                    "bulkhead.tenant and bulkhead.token take a quoted string",
                )
            })?)
        }
        Ok(K::VarSetDefault | K::VarReset) => None,
        _ => {
            return Err(refuse(
                SqlState::InsufficientPrivilege,
                "context_setting",
                "this form of SET is not accepted for bulkhead.tenant or bulkhead.token",
            ))
        }
    };
    Ok(TxEffect::Context(ContextSet {
        local: v.is_local,
        key,
        value,
    }))
}

fn statement(node: Option<&NodeEnum>) -> Result<TxEffect, Refusal> {
    use SqlState::{FeatureNotSupported as Unsupported, InsufficientPrivilege as Denied};
    match node {
        Some(NodeEnum::TransactionStmt(t)) => match TransactionStmtKind::try_from(t.kind) {
            Ok(TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart) => {
                Ok(TxEffect::Begin(begin_options(&t.options)?))
            }
            Ok(TransactionStmtKind::TransStmtCommit | TransactionStmtKind::TransStmtRollback) if t.chain => Err(refuse(
                Unsupported,
                "and_chain",
                "COMMIT/ROLLBACK AND CHAIN is not supported through the gateway; end the transaction, then BEGIN",
            )),
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
            if let Some(key) = context_key(&name) {
                return context_statement(v, key);
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
        assert_eq!(
            check("BEGIN").ok(),
            Some(vec![TxEffect::Begin(BeginOptions::default())])
        );
        let effects =
            check("start transaction isolation level serializable, read only -- a comment")
                .expect("parses");
        let [TxEffect::Begin(o)] = effects.as_slice() else {
            panic!("begin with options: {effects:?}")
        };
        assert_eq!(o.sql(), "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY");
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

    #[test]
    fn context_statements_are_recognised_in_every_form() {
        let set = |local, key, value: Option<&str>| {
            vec![TxEffect::Context(ContextSet {
                local,
                key,
                value: value.map(str::to_string),
            })]
        };
        for (sql, want) in [
            (
                "SET LOCAL bulkhead.tenant = 'acme'",
                set(true, ContextKey::Tenant, Some("acme")),
            ),
            (
                "set local \"Bulkhead\".\"Tenant\" to acme",
                set(true, ContextKey::Tenant, Some("acme")),
            ),
            (
                "SET bulkhead.token = 'a.b.c'",
                set(false, ContextKey::Token, Some("a.b.c")),
            ),
            (
                "RESET bulkhead.tenant",
                set(false, ContextKey::Tenant, None),
            ),
            (
                "SET bulkhead.tenant TO DEFAULT",
                set(false, ContextKey::Tenant, None),
            ),
        ] {
            assert_eq!(check(sql).as_ref(), Ok(&want), "{sql}");
        }
        for sql in [
            "SET LOCAL bulkhead.tenant = 1",
            "SET LOCAL bulkhead.tenant = 'a', 'b'",
            "SET LOCAL bulkhead.tenant = $1",
            "SET LOCAL bulkhead.tenant_id = 'x'",
            "SELECT set_config('bulkhead.tenant', 'x', true)",
            "COMMIT AND CHAIN",
        ] {
            assert!(check(sql).is_err(), "{sql}");
        }
    }
}

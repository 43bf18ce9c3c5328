//! What each top-level statement is: transaction control, a context statement, a statement
//! the gateway refuses, or one that goes to the tenant's backend — with what the session must
//! still check against its login and tenant (DDL, NOTIFY channels, settings the limits rely
//! on).

use bulkhead_wire::SqlState;
use pg_query::protobuf::TransactionStmtKind;
use pg_query::NodeEnum;

use super::{refuse, BeginOptions, Checked, ContextKey, ContextSet, Refusal, TxEffect};

/// Settings that decide who the session is or how its text is read. `standard_conforming_strings`,
/// `backslash_quote` and `client_encoding` change how PostgreSQL reads a string, so the guard
/// (which parses with the defaults) and the server could disagree about where a statement ends.
const PROTECTED_SETTINGS: &[&str] = &[
    "role",
    "session_authorization",
    "search_path",
    "standard_conforming_strings",
    "backslash_quote",
    "client_encoding",
    "application_name",
    "session_replication_role",
];

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

fn denied(rule: &'static str, message: impl Into<String>) -> Refusal {
    refuse(SqlState::InsufficientPrivilege, rule, message)
}

fn unsupported(rule: &'static str, message: impl Into<String>) -> Refusal {
    refuse(SqlState::FeatureNotSupported, rule, message)
}

/// Classifies one top-level statement; what the session must check later goes into `checked`.
pub(super) fn statement(
    node: Option<&NodeEnum>,
    checked: &mut Checked,
) -> Result<TxEffect, Refusal> {
    match node {
        Some(NodeEnum::TransactionStmt(t)) => transaction(t),
        Some(NodeEnum::VariableSetStmt(v)) => setting(v, checked),
        Some(NodeEnum::ExplainStmt(e)) => {
            // EXPLAIN ANALYZE runs its statement: judge that statement.
            let inner = e.query.as_ref().and_then(|q| q.node.as_ref());
            match statement(inner, checked)? {
                TxEffect::None => Ok(TxEffect::None),
                _ => Err(unsupported("explain", "EXPLAIN of this statement is not supported through the gateway")),
            }
        }
        Some(NodeEnum::SelectStmt(s)) => {
            if s.into_clause.is_some() {
                // SELECT ... INTO creates a table.
                checked.ddl = true;
            }
            Ok(TxEffect::None)
        }
        Some(NodeEnum::DoStmt(_)) => Err(denied("do_block", "DO blocks are refused through the gateway")),
        Some(NodeEnum::ListenStmt(_) | NodeEnum::UnlistenStmt(_)) => Err(unsupported(
            "listen",
            "LISTEN outlives the transaction, and a pooled connection serves other tenants after it: listen on a direct connection to the database instead",
        )),
        Some(NodeEnum::NotifyStmt(n)) => {
            checked.notify.push(n.conditionname.clone());
            Ok(TxEffect::None)
        }
        Some(NodeEnum::DeclareCursorStmt(d)) if d.options & 0x0020 != 0 => Err(unsupported(
            "with_hold",
            "WITH HOLD cursors outlive the transaction on a shared connection; declare the cursor without HOLD",
        )),
        Some(NodeEnum::PrepareStmt(_) | NodeEnum::ExecuteStmt(_) | NodeEnum::DeallocateStmt(_)) => Err(unsupported(
            "sql_prepare",
            "SQL PREPARE/EXECUTE/DEALLOCATE outlive the transaction; use the protocol's prepared statements (your driver's prepare)",
        )),
        Some(NodeEnum::DiscardStmt(_)) => Err(unsupported("discard", "DISCARD is not needed through the gateway")),
        Some(NodeEnum::CopyStmt(c)) if c.is_program || !c.filename.is_empty() => Err(denied(
            "copy_file",
            "COPY to or from a server file or program is refused; use COPY ... FROM STDIN / TO STDOUT",
        )),
        Some(NodeEnum::LockStmt(_)) => Err(denied(
            "lock_table",
            "LOCK TABLE is refused through the gateway: on a shared table it would block every tenant; row locks (SELECT ... FOR UPDATE) are fine",
        )),
        Some(NodeEnum::TruncateStmt(_)) => Err(denied(
            "truncate",
            "TRUNCATE is refused through the gateway (it ignores row-level security); DELETE your rows instead",
        )),
        Some(
            NodeEnum::VacuumStmt(_)
            | NodeEnum::ClusterStmt(_)
            | NodeEnum::ReindexStmt(_)
            | NodeEnum::CheckPointStmt(_)
            | NodeEnum::LoadStmt(_)
            | NodeEnum::AlterSystemStmt(_)
            | NodeEnum::CreatedbStmt(_)
            | NodeEnum::DropdbStmt(_)
            | NodeEnum::AlterDatabaseStmt(_)
            | NodeEnum::AlterDatabaseSetStmt(_)
            | NodeEnum::AlterDatabaseRefreshCollStmt(_)
            | NodeEnum::CreateTableSpaceStmt(_)
            | NodeEnum::DropTableSpaceStmt(_)
            | NodeEnum::AlterTableSpaceOptionsStmt(_)
            | NodeEnum::CreateRoleStmt(_)
            | NodeEnum::AlterRoleStmt(_)
            | NodeEnum::AlterRoleSetStmt(_)
            | NodeEnum::DropRoleStmt(_)
            | NodeEnum::GrantRoleStmt(_)
            | NodeEnum::DropOwnedStmt(_)
            | NodeEnum::ReassignOwnedStmt(_)
            | NodeEnum::CreateSubscriptionStmt(_)
            | NodeEnum::AlterSubscriptionStmt(_)
            | NodeEnum::DropSubscriptionStmt(_)
            | NodeEnum::CreateEventTrigStmt(_)
            | NodeEnum::AlterEventTrigStmt(_)
            | NodeEnum::CreatePlangStmt(_)
            | NodeEnum::CreateForeignServerStmt(_)
            | NodeEnum::AlterForeignServerStmt(_)
            | NodeEnum::CreateFdwStmt(_)
            | NodeEnum::AlterFdwStmt(_)
            | NodeEnum::CreateUserMappingStmt(_)
            | NodeEnum::AlterUserMappingStmt(_)
            | NodeEnum::DropUserMappingStmt(_)
            | NodeEnum::CreateForeignTableStmt(_)
            | NodeEnum::ImportForeignSchemaStmt(_),
        ) => Err(denied(
            "server_admin",
            "this statement administers the server, its roles or foreign data and is refused through the gateway",
        )),
        Some(n) if is_ddl(n) => {
            checked.ddl = true;
            Ok(TxEffect::None)
        }
        _ => Ok(TxEffect::None),
    }
}

fn transaction(t: &pg_query::protobuf::TransactionStmt) -> Result<TxEffect, Refusal> {
    match TransactionStmtKind::try_from(t.kind) {
        Ok(TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart) => {
            Ok(TxEffect::Begin(begin_options(&t.options)?))
        }
        Ok(TransactionStmtKind::TransStmtCommit | TransactionStmtKind::TransStmtRollback) if t.chain => Err(unsupported(
            "and_chain",
            "COMMIT/ROLLBACK AND CHAIN is not supported through the gateway; end the transaction, then BEGIN",
        )),
        Ok(TransactionStmtKind::TransStmtCommit) => Ok(TxEffect::Commit),
        Ok(TransactionStmtKind::TransStmtRollback) => Ok(TxEffect::Rollback),
        Ok(
            TransactionStmtKind::TransStmtPrepare
            | TransactionStmtKind::TransStmtCommitPrepared
            | TransactionStmtKind::TransStmtRollbackPrepared,
        ) => Err(unsupported("two_phase", "two-phase commit is not supported through the gateway")),
        _ => Ok(TxEffect::None),
    }
}

fn setting(
    v: &pg_query::protobuf::VariableSetStmt,
    checked: &mut Checked,
) -> Result<TxEffect, Refusal> {
    use pg_query::protobuf::VariableSetKind as K;
    let name = v.name.to_ascii_lowercase();
    let kind = K::try_from(v.kind);
    if kind == Ok(K::VarResetAll) {
        return Err(denied(
            "reset_all",
            "RESET ALL is refused: it would reset the tenant context",
        ));
    }
    if let Some(key) = context_key(&name) {
        return context_statement(v, key);
    }
    if PROTECTED_SETTINGS.contains(&name.as_str()) || name.starts_with("bulkhead.") {
        return Err(denied(
            "context_setting",
            format!("changing `{name}` is refused: the gateway sets the role, search_path, tenant and how text is read for every transaction"),
        ));
    }
    let transaction_scoped = v.is_local || kind == Ok(K::VarSetMulti) && name == "transaction";
    if !transaction_scoped {
        return Err(unsupported(
            "session_set",
            format!("session-level SET {name} would outlive the transaction on a shared connection; use SET LOCAL inside a transaction"),
        ));
    }
    checked.settings.push(name);
    Ok(TxEffect::None)
}

/// Statements that change the schema (or what is granted on it).
fn is_ddl(node: &NodeEnum) -> bool {
    matches!(
        node,
        NodeEnum::CreateStmt(_)
            | NodeEnum::CreateTableAsStmt(_)
            | NodeEnum::AlterTableStmt(_)
            | NodeEnum::AlterTableCmd(_)
            | NodeEnum::DropStmt(_)
            | NodeEnum::IndexStmt(_)
            | NodeEnum::CreateFunctionStmt(_)
            | NodeEnum::AlterFunctionStmt(_)
            | NodeEnum::CreateSchemaStmt(_)
            | NodeEnum::ViewStmt(_)
            | NodeEnum::CreateSeqStmt(_)
            | NodeEnum::AlterSeqStmt(_)
            | NodeEnum::CreateTrigStmt(_)
            | NodeEnum::RuleStmt(_)
            | NodeEnum::CreatePolicyStmt(_)
            | NodeEnum::AlterPolicyStmt(_)
            | NodeEnum::GrantStmt(_)
            | NodeEnum::AlterDefaultPrivilegesStmt(_)
            | NodeEnum::CreateExtensionStmt(_)
            | NodeEnum::AlterExtensionStmt(_)
            | NodeEnum::AlterExtensionContentsStmt(_)
            | NodeEnum::CommentStmt(_)
            | NodeEnum::SecLabelStmt(_)
            | NodeEnum::RenameStmt(_)
            | NodeEnum::AlterObjectSchemaStmt(_)
            | NodeEnum::AlterObjectDependsStmt(_)
            | NodeEnum::AlterOwnerStmt(_)
            | NodeEnum::CreateDomainStmt(_)
            | NodeEnum::AlterDomainStmt(_)
            | NodeEnum::CreateEnumStmt(_)
            | NodeEnum::AlterEnumStmt(_)
            | NodeEnum::CreateRangeStmt(_)
            | NodeEnum::CompositeTypeStmt(_)
            | NodeEnum::AlterTypeStmt(_)
            | NodeEnum::DefineStmt(_)
            | NodeEnum::CreateCastStmt(_)
            | NodeEnum::CreateOpClassStmt(_)
            | NodeEnum::CreateOpFamilyStmt(_)
            | NodeEnum::AlterOpFamilyStmt(_)
            | NodeEnum::AlterOperatorStmt(_)
            | NodeEnum::CreateConversionStmt(_)
            | NodeEnum::CreateTransformStmt(_)
            | NodeEnum::CreateAmStmt(_)
            | NodeEnum::CreateStatsStmt(_)
            | NodeEnum::AlterStatsStmt(_)
            | NodeEnum::AlterTsdictionaryStmt(_)
            | NodeEnum::AlterTsconfigurationStmt(_)
            | NodeEnum::AlterCollationStmt(_)
            | NodeEnum::CreatePublicationStmt(_)
            | NodeEnum::AlterPublicationStmt(_)
            | NodeEnum::RefreshMatViewStmt(_)
            | NodeEnum::AlterTableMoveAllStmt(_)
    )
}

//! What each top-level statement is: transaction control, a context statement, a statement
//! the gateway refuses, or one that goes to the tenant's backend — with what the session must
//! still check against its login and tenant (DDL, NOTIFY channels, settings the limits rely
//! on).

use bulkhead_wire::SqlState;
use pg_query::protobuf::TransactionStmtKind;
use pg_query::NodeEnum;

use super::{
    refuse, BeginOptions, Checked, ContextKey, ContextSet, Refusal, SessionOp, SqlExecute,
    SqlPrepare, TxEffect,
};

/// Settings a client may set for its session: the gateway keeps each client's values and
/// applies them to whichever backend connection serves its transaction (see
/// `session/settings.rs`). They change how results look or how long a statement may run,
/// never who the session is or what it can reach. (The tier's statement timeout is the
/// gateway's own and holds whatever the session sets.)
pub const SESSION_SETTINGS: &[&str] = &[
    "timezone",
    "datestyle",
    "intervalstyle",
    "extra_float_digits",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "client_min_messages",
    "bytea_output",
    "jit",
    "work_mem",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "default_transaction_deferrable",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "xmlbinary",
    "xmloption",
    "array_nulls",
    "gin_fuzzy_search_limit",
    "random_page_cost",
    "seq_page_cost",
    "cpu_tuple_cost",
    "effective_cache_size",
    "plan_cache_mode",
    "geqo",
    "application_name",
];

/// The largest `work_mem` a session may set (kB): a client cannot take the server's memory.
const WORK_MEM_MAX_KB: u64 = 1 << 20;

/// Whether a session setting may be changed to `value` (its text as written).
fn session_value_allowed(name: &str, value: Option<&str>) -> Result<(), Refusal> {
    if name == "work_mem" {
        if let Some(v) = value {
            let kb = memory_kb(v).ok_or_else(|| {
                refuse(
                    SqlState::InvalidParameterValue,
                    "work_mem",
                    format!(
                        "work_mem `{v}` is not a memory size the gateway understands (e.g. 64MB)"
                    ),
                )
            })?;
            if kb > WORK_MEM_MAX_KB {
                return Err(refuse(SqlState::InsufficientPrivilege, "work_mem", "work_mem above 1GB is refused through the gateway: the server's memory is shared by every tenant"));
            }
        }
    }
    Ok(())
}

/// A memory size in kB (`65536`, `64MB`, `1GB`, `512kB`).
fn memory_kb(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().ok()?;
    let factor = match unit.trim() {
        "" | "kB" => 1,
        "B" => return Some(n / 1024),
        "MB" => 1 << 10,
        "GB" => 1 << 20,
        "TB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// The text of a SET's single constant argument (`'x'`, `x`, `5`).
fn single_value(v: &pg_query::protobuf::VariableSetStmt) -> Option<String> {
    use pg_query::protobuf::a_const::Val;
    let [arg] = v.args.as_slice() else {
        return None;
    };
    match arg.node.as_ref() {
        Some(NodeEnum::AConst(c)) => match c.val.as_ref() {
            Some(Val::Sval(s)) => Some(s.sval.clone()),
            Some(Val::Ival(i)) => Some(i.ival.to_string()),
            Some(Val::Fval(f)) => Some(f.fval.clone()),
            Some(Val::Boolval(b)) => Some(if b.boolval { "on" } else { "off" }.into()),
            _ => None,
        },
        _ => None,
    }
}

/// The arguments of a SET as text (each constant's text), joined like PostgreSQL lists.
fn values_text(v: &pg_query::protobuf::VariableSetStmt) -> Option<String> {
    use pg_query::protobuf::a_const::Val;
    let mut parts = Vec::new();
    for arg in &v.args {
        match arg.node.as_ref() {
            Some(NodeEnum::AConst(c)) => match c.val.as_ref() {
                Some(Val::Sval(s)) => parts.push(s.sval.clone()),
                _ => return None,
            },
            _ => return None,
        }
    }
    Some(parts.join(", "))
}

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

/// Where the statement name of a top-level SQL PREPARE or EXECUTE is (`text` is the
/// statement's own text, `offset` where it starts in the query): the token after the keyword.
pub(super) fn locate_names(
    text: &str,
    offset: usize,
    effect: &mut TxEffect,
    checked: &mut Checked,
) -> Result<(), Refusal> {
    let prepare = match effect {
        TxEffect::Session(SessionOp::Prepare(p)) => Some(p),
        _ => None,
    };
    let execute = checked.executes.last_mut().filter(|e| e.at == (0, 0));
    if prepare.is_none() && execute.is_none() {
        return Ok(());
    }
    let unlocated = || {
        unsupported(
            "sql_prepare",
            "the gateway could not find the statement name in this PREPARE or EXECUTE",
        )
    };
    let scanned = pg_query::scan(text).map_err(|_| unlocated())?;
    let name = scanned
        .tokens
        .iter()
        .filter(|t| {
            t.token != pg_query::protobuf::Token::SqlComment as i32
                && t.token != pg_query::protobuf::Token::CComment as i32
        })
        .nth(1)
        .ok_or_else(unlocated)?;
    let (start, end) = (
        usize::try_from(name.start).map_err(|_| unlocated())?,
        usize::try_from(name.end).map_err(|_| unlocated())?,
    );
    if let Some(p) = prepare {
        p.text = text.to_string();
        p.name_at = (start, end);
    } else if let Some(e) = execute {
        e.at = (offset + start, offset + end);
    }
    Ok(())
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
            if matches!(inner, Some(NodeEnum::ExecuteStmt(_))) {
                return Err(unsupported("explain", "EXPLAIN EXECUTE is not supported through the gateway; EXPLAIN the prepared statement's text"));
            }
            match statement(inner, checked)? {
                TxEffect::None => Ok(TxEffect::None),
                _ => Err(unsupported("explain", "EXPLAIN of this statement is not supported through the gateway")),
            }
        }
        Some(NodeEnum::SelectStmt(s)) if is_unlock_all(s) => {
            Ok(TxEffect::Session(SessionOp::UnlockAll))
        }
        Some(NodeEnum::SelectStmt(s)) => {
            if s.into_clause.is_some() {
                // SELECT ... INTO creates a table.
                checked.ddl = true;
            }
            Ok(TxEffect::None)
        }
        Some(NodeEnum::DoStmt(_)) => Err(denied("do_block", "DO blocks are refused through the gateway")),
        Some(NodeEnum::UnlistenStmt(u)) if u.conditionname.is_empty() || u.conditionname == "*" => {
            // LISTEN is refused, so there is nothing to stop listening to.
            Ok(TxEffect::Session(SessionOp::Noop("UNLISTEN")))
        }
        Some(NodeEnum::VariableShowStmt(v)) if v.name.eq_ignore_ascii_case("application_name") => {
            Ok(TxEffect::Session(SessionOp::ShowAppName))
        }
        Some(NodeEnum::ClosePortalStmt(c)) if c.portalname.is_empty() => {
            // Cursors cannot outlive a transaction through the gateway; those of the
            // current one end with it.
            Ok(TxEffect::Session(SessionOp::Noop("CLOSE CURSOR ALL")))
        }
        Some(NodeEnum::DeallocateStmt(d)) if d.name.is_empty() => {
            Ok(TxEffect::Session(SessionOp::DeallocateAll))
        }
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
        Some(NodeEnum::PrepareStmt(p)) => {
            // The statement inside is judged now, like one sent on its own (PostgreSQL
            // prepares only SELECT, INSERT, UPDATE, DELETE, MERGE and VALUES).
            let inner = p.query.as_ref().and_then(|q| q.node.as_ref());
            if statement(inner, checked)? != TxEffect::None {
                return Err(unsupported("sql_prepare", "this statement cannot be prepared through the gateway"));
            }
            checked.by_value = true;
            Ok(TxEffect::Session(SessionOp::Prepare(Box::new(SqlPrepare {
                name: p.name.clone(),
                text: String::new(),
                name_at: (0, 0),
            }))))
        }
        Some(NodeEnum::ExecuteStmt(e)) => {
            checked.by_value = true;
            checked.executes.push(SqlExecute {
                name: e.name.clone(),
                at: (0, 0),
            });
            Ok(TxEffect::None)
        }
        Some(NodeEnum::DeallocateStmt(d)) => {
            checked.by_value = true;
            Ok(TxEffect::Session(SessionOp::Deallocate(d.name.clone())))
        }
        Some(NodeEnum::DiscardStmt(d)) => {
            use pg_query::protobuf::DiscardMode;
            Ok(TxEffect::Session(match DiscardMode::try_from(d.target) {
                Ok(DiscardMode::DiscardAll) => SessionOp::DiscardAll,
                Ok(DiscardMode::DiscardPlans) => SessionOp::Noop("DISCARD PLANS"),
                Ok(DiscardMode::DiscardSequences) => SessionOp::Noop("DISCARD SEQUENCES"),
                _ => SessionOp::Noop("DISCARD TEMP"),
            }))
        }
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
        Ok(TransactionStmtKind::TransStmtRollbackTo) => Ok(TxEffect::RollbackTo),
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
        return Ok(TxEffect::Session(SessionOp::ResetAll));
    }
    if let Some(key) = context_key(&name) {
        return context_statement(v, key);
    }
    let reset = matches!(kind, Ok(K::VarSetDefault | K::VarReset));
    // Settings the gateway sets itself: only the value it uses is accepted (a no-op).
    let same_as_gateway = match name.as_str() {
        "search_path" => {
            reset
                || matches!(
                    values_text(v).as_deref(),
                    Some("$user, public" | "public" | "public, $user")
                )
        }
        "standard_conforming_strings" => {
            reset || single_value(v).is_some_and(|x| x.eq_ignore_ascii_case("on"))
        }
        "client_encoding" => {
            reset
                || single_value(v).is_some_and(|x| {
                    matches!(
                        x.to_ascii_uppercase().replace(['-', '_'], "").as_str(),
                        "UTF8" | "UNICODE"
                    )
                })
        }
        _ => false,
    };
    if same_as_gateway {
        return Ok(TxEffect::Session(SessionOp::Noop(
            if reset && kind == Ok(K::VarReset) {
                "RESET"
            } else {
                "SET"
            },
        )));
    }
    if name == "application_name" {
        return match (kind, single_value(v)) {
            (Ok(K::VarSetDefault | K::VarReset), _) => {
                Ok(TxEffect::Session(SessionOp::AppName(None)))
            }
            (Ok(K::VarSetValue), Some(value)) => {
                Ok(TxEffect::Session(SessionOp::AppName(Some(value))))
            }
            _ => Err(refuse(
                SqlState::InvalidParameterValue,
                "application_name",
                "application_name takes one value",
            )),
        };
    }
    if PROTECTED_SETTINGS.contains(&name.as_str()) || name.starts_with("bulkhead.") {
        let what = match name.as_str() {
            "search_path" => "the gateway sets search_path to the tenant's place; only `\"$user\", public` (what it is) is accepted — qualify names instead",
            "standard_conforming_strings" | "client_encoding" | "backslash_quote" => "the gateway reads every statement as UTF8 with standard_conforming_strings = on; only those values are accepted",
            _ => "the gateway sets the role, search_path, tenant and how text is read for every transaction",
        };
        return Err(denied(
            "context_setting",
            format!("changing `{name}` is refused: {what}"),
        ));
    }
    if v.is_local {
        checked.settings.push(name);
        return Ok(TxEffect::None);
    }
    if kind == Ok(K::VarSetMulti) {
        // SET TRANSACTION ... (this transaction) or SET SESSION CHARACTERISTICS AS
        // TRANSACTION ... (the session's defaults).
        return match name.as_str() {
            "transaction" | "transaction snapshot" => {
                checked.settings.push(name);
                Ok(TxEffect::None)
            }
            "session characteristics" => {
                checked.session_settings.extend(
                    [
                        "default_transaction_isolation",
                        "default_transaction_read_only",
                        "default_transaction_deferrable",
                    ]
                    .map(String::from),
                );
                Ok(TxEffect::None)
            }
            _ => Err(unsupported(
                "session_set",
                format!("SET {name} is not supported through the gateway"),
            )),
        };
    }
    let planner =
        name.starts_with("enable_") && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if !SESSION_SETTINGS.contains(&name.as_str()) && !planner {
        return Err(unsupported(
            "session_set",
            format!("session-level SET {name} is not kept through the gateway (it keeps only the settings listed under Compatibility in the README); use SET LOCAL inside a transaction"),
        ));
    }
    session_value_allowed(&name, single_value(v).as_deref())?;
    // work_mem's verdict depends on its value: never kept by shape.
    checked.by_value |= name == "work_mem";
    checked.session_settings.push(name);
    Ok(TxEffect::None)
}

/// The value a plain session `SET name = constant` (Some) or `RESET name` (None) gives;
/// None for any other statement.
pub(super) fn session_value(node: Option<&NodeEnum>) -> Option<Option<String>> {
    use pg_query::protobuf::VariableSetKind as K;
    let Some(NodeEnum::VariableSetStmt(v)) = node else {
        return None;
    };
    if v.is_local {
        return None;
    }
    match K::try_from(v.kind) {
        Ok(K::VarSetValue) => values_text_or_single(v).map(Some),
        Ok(K::VarReset | K::VarSetDefault) => Some(None),
        _ => None,
    }
}

/// A SET's value as text: one constant of any kind, or a list of strings.
fn values_text_or_single(v: &pg_query::protobuf::VariableSetStmt) -> Option<String> {
    if v.args.len() == 1 {
        single_value(v)
    } else {
        values_text(v)
    }
}

/// `SELECT pg_advisory_unlock_all()` alone, as pool resets send it.
fn is_unlock_all(s: &pg_query::protobuf::SelectStmt) -> bool {
    if !s.from_clause.is_empty() || s.where_clause.is_some() || s.target_list.len() != 1 {
        return false;
    }
    let Some(NodeEnum::ResTarget(t)) = s.target_list[0].node.as_ref() else {
        return false;
    };
    let Some(NodeEnum::FuncCall(f)) = t.val.as_ref().and_then(|v| v.node.as_ref()) else {
        return false;
    };
    let name: Vec<&str> = f
        .funcname
        .iter()
        .filter_map(|n| match n.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect();
    f.args.is_empty()
        && matches!(
            name.as_slice(),
            ["pg_advisory_unlock_all"] | ["pg_catalog", "pg_advisory_unlock_all"]
        )
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

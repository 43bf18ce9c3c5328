//! The functions a statement calls, found anywhere in its tree, and the ones the gateway
//! refuses: those that change settings, reach server files, large objects or other
//! databases, run SQL text the guard never saw, take locks that outlive the transaction or
//! cross tenants, or administer the server.
//!
//! The walk is over the whole parse tree (serialised, every field), not a list of node kinds
//! someone thought of: a call hidden in an array constructor, a VALUES list, a LIMIT or a
//! RETURNING clause is found like one in a target list.

use bulkhead_wire::SqlState;
use serde_json::Value;

use super::{refuse, Checked, Refusal};

/// A refused family of functions.
struct Rule {
    rule: &'static str,
    code: SqlState,
    message: &'static str,
    matches: fn(&str) -> bool,
}

const RULES: &[Rule] = &[
    Rule {
        rule: "set_config",
        code: SqlState::InsufficientPrivilege,
        message: "set_config() is refused through the gateway: settings that decide who you are cannot be changed; use SET LOCAL for other settings",
        matches: |f| f == "set_config",
    },
    Rule {
        rule: "server_file",
        code: SqlState::InsufficientPrivilege,
        message: "functions that read or write the server's files are refused through the gateway",
        matches: |f| {
            matches!(
                f,
                "pg_read_file"
                    | "pg_read_binary_file"
                    | "pg_stat_file"
                    | "pg_current_logfile"
                    | "pg_file_write"
                    | "pg_file_rename"
                    | "pg_file_unlink"
                    | "pg_file_sync"
                    | "pg_logdir_ls"
            ) || f.starts_with("pg_ls_")
        },
    },
    Rule {
        rule: "large_object",
        code: SqlState::InsufficientPrivilege,
        message: "large objects are shared by every tenant of a database and are refused through the gateway; store bytea in your tables",
        matches: |f| f.starts_with("lo_") || f == "loread" || f == "lowrite",
    },
    Rule {
        rule: "foreign_data",
        code: SqlState::InsufficientPrivilege,
        message: "dblink and foreign-data functions reach other databases and are refused through the gateway",
        matches: |f| f.starts_with("dblink") || f.starts_with("postgres_fdw"),
    },
    Rule {
        rule: "dynamic_sql",
        code: SqlState::InsufficientPrivilege,
        message: "functions that run SQL given as text are refused through the gateway: send the statement itself",
        matches: |f| {
            matches!(
                f,
                "query_to_xml"
                    | "query_to_xmlschema"
                    | "query_to_xml_and_xmlschema"
                    | "cursor_to_xml"
                    | "cursor_to_xmlschema"
                    | "ts_stat"
                    | "ts_rewrite"
            )
        },
    },
    Rule {
        rule: "advisory_lock",
        code: SqlState::InsufficientPrivilege,
        message: "advisory lock keys are shared by every tenant of a database and session locks outlive the transaction: use bulkhead.advisory_xact_lock(key) or bulkhead.try_advisory_xact_lock(key), scoped to your tenant",
        // Unlocking all of the session's own locks is harmless (none can be taken).
        matches: |f| f.starts_with("pg_") && f.contains("advisory") && f != "pg_advisory_unlock_all",
    },
    Rule {
        rule: "server_admin",
        code: SqlState::InsufficientPrivilege,
        message: "functions that administer the server or other sessions are refused through the gateway",
        matches: |f| {
            matches!(
                f,
                "pg_terminate_backend"
                    | "pg_cancel_backend"
                    | "pg_reload_conf"
                    | "pg_rotate_logfile"
                    | "pg_switch_wal"
                    | "pg_promote"
                    | "pg_create_restore_point"
                    | "pg_backup_start"
                    | "pg_backup_stop"
                    | "pg_start_backup"
                    | "pg_stop_backup"
                    | "pg_log_backend_memory_contexts"
                    | "pg_import_system_collations"
                    | "pg_logical_emit_message"
            ) || f.starts_with("pg_stat_reset")
                || f.starts_with("pg_wal_replay_")
                || f.contains("replication_slot")
                || f.starts_with("pg_replication_origin")
                || f.starts_with("pg_logical_slot")
        },
    },
];

/// The name of a function call (`["pg_catalog", "set_config"]` → `set_config`), lowercased.
fn bare_name(call: &serde_json::Map<String, Value>) -> Option<String> {
    let parts = call.get("funcname")?.as_array()?;
    let last = parts.last()?;
    let name = last.pointer("/node/String/sval")?.as_str()?;
    Some(name.to_ascii_lowercase())
}

/// The channel of `pg_notify(channel, payload)` when it is a string constant.
fn notify_channel(call: &serde_json::Map<String, Value>) -> Option<String> {
    let first = call.get("args")?.as_array()?.first()?;
    first
        .pointer("/node/AConst/val/Sval/sval")
        .or_else(|| first.pointer("/node/AConst/sval/sval"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The setting `set_config(name, value, is_local)` changes when `name` is a string constant
/// naming a setting the client's session may keep (not `application_name`, which is the
/// gateway's, nor `work_mem`, whose value is bounded and must be a SET's constant).
fn kept_setting(call: &serde_json::Map<String, Value>) -> Option<String> {
    let name = notify_channel(call)?.to_ascii_lowercase();
    let kept = super::statements::SESSION_SETTINGS.contains(&name.as_str())
        && !matches!(name.as_str(), "application_name" | "work_mem");
    let planner =
        name.starts_with("enable_") && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    (kept || planner).then_some(name)
}

/// Checks every function call in `tree` (a serialised parse tree); NOTIFY channels named by
/// `pg_notify` go into `checked`.
pub(super) fn check(tree: &Value, checked: &mut Checked) -> Result<(), Refusal> {
    let mut stack = vec![tree];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                // A call is a `FuncCall` node, or CALL's own `funccall`.
                for key in ["FuncCall", "funccall"] {
                    if let Some(Value::Object(call)) = map.get(key) {
                        check_call(call, checked)?;
                    }
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items.iter()),
            _ => {}
        }
    }
    Ok(())
}

fn check_call(call: &serde_json::Map<String, Value>, checked: &mut Checked) -> Result<(), Refusal> {
    let Some(name) = bare_name(call) else {
        return Err(refuse(
            SqlState::InsufficientPrivilege,
            "function_name",
            "the gateway could not tell which function this statement calls",
        ));
    };
    if name == "set_config" {
        if let Some(setting) = kept_setting(call) {
            // A setting the client's session keeps (asyncpg turns jit off this way): the
            // value, whatever its scope, is read back when the transaction is over.
            checked.session_settings.push(setting);
            checked.by_value = true;
            return Ok(());
        }
    }
    if let Some(r) = RULES.iter().find(|r| (r.matches)(&name)) {
        return Err(refuse(r.code, r.rule, r.message));
    }
    if name == "pg_notify" {
        let Some(channel) = notify_channel(call) else {
            return Err(refuse(
                SqlState::InsufficientPrivilege,
                "notify_channel",
                "pg_notify() through the gateway takes its channel as a string constant (so it can be checked against your tenant)",
            ));
        };
        checked.notify.push(channel);
        checked.by_value = true;
    }
    Ok(())
}

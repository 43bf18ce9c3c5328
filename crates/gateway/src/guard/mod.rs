//! The guard: every query text is parsed with PostgreSQL's own parser before it reaches a
//! backend, and anything that could step outside the tenant is refused. Text that does not
//! parse is refused: fail closed.
//!
//! Refused, with SQLSTATE 42501 (or 0A000 for what transaction pooling cannot offer) and a
//! message naming the rule: changes of role, authorization, search_path, the tenant settings
//! and the settings that decide how text is read (`statements.rs`); functions that change
//! settings, reach server files, large objects or other databases, run SQL given as text,
//! take advisory locks or administer the server, found anywhere in the tree
//! (`functions.rs`); DO blocks, COPY to or from files and programs, LOCK, TRUNCATE, server
//! administration; and session state that would outlive the transaction on a pooled
//! connection (session SET, LISTEN, WITH HOLD cursors, SQL PREPARE, DISCARD). What depends on
//! the login or the tenant — DDL (allowed to credentials with the migration capability),
//! NOTIFY channels (the tenant's own only), settings the tenant's limits rely on — is
//! recorded in [`Checked`] for the session to judge. The database refuses too (see
//! `bulkhead.current_tenant()` and the tenant roles' privileges); both must be defeated.
//!
//! Invariant (the shape cache relies on it): apart from context statements, no verdict
//! depends on a constant's value, only on the statement's tokens.

mod cache;
mod catalog;
mod functions;
mod quick;
pub(crate) mod statements;

use bulkhead_wire::SqlState;

/// What a statement does to the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxEffect {
    /// BEGIN / START TRANSACTION, with its options.
    Begin(BeginOptions),
    /// COMMIT / END.
    Commit,
    /// ROLLBACK / ABORT (not ROLLBACK TO SAVEPOINT).
    Rollback,
    /// ROLLBACK TO SAVEPOINT: sent to the backend; besides COMMIT and ROLLBACK the one
    /// statement a failed transaction accepts.
    RollbackTo,
    /// A context statement, answered by the gateway itself.
    Context(ContextSet),
    /// A statement about the client's own session, answered by the gateway itself.
    Session(SessionOp),
    /// Anything else.
    None,
}

/// Statements about the client's session that the gateway answers for its virtual session
/// (see `session/settings.rs`): pool resets, `application_name`, and settings whose only
/// allowed value is the one the gateway already uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionOp {
    /// `RESET ALL`: the client's settings go back to those of its startup packet.
    ResetAll,
    /// `DISCARD ALL`: RESET ALL, and the client's prepared statements are forgotten.
    DiscardAll,
    /// `DEALLOCATE ALL`: the client's prepared statements are forgotten.
    DeallocateAll,
    /// `SET application_name` (None: RESET / DEFAULT): the client's own name.
    AppName(Option<String>),
    /// `SHOW application_name`.
    ShowAppName,
    /// `SELECT pg_advisory_unlock_all()` alone: session advisory locks cannot be taken
    /// through the gateway, so there are none to unlock.
    UnlockAll,
    /// A statement with nothing to do through the gateway, answered with its tag:
    /// `CLOSE ALL`, `UNLISTEN *` (LISTEN is refused), `DISCARD PLANS|SEQUENCES|TEMP`, and SET
    /// of `search_path`, `standard_conforming_strings` or `client_encoding` to the value the
    /// gateway already uses.
    Noop(&'static str),
    /// SQL `PREPARE name ... AS statement`: kept as the client's own statement (the statement
    /// inside was judged like any other), prepared on a backend when an EXECUTE needs it.
    Prepare(Box<SqlPrepare>),
    /// SQL `DEALLOCATE name`: the client's statement is forgotten.
    Deallocate(String),
}

/// A SQL-level `PREPARE`: its name, its text, and where the name is in it (so the text can
/// be sent under a backend name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlPrepare {
    pub name: String,
    pub text: String,
    pub name_at: (usize, usize),
}

impl SqlPrepare {
    /// The text without its name (what decides the backend statement).
    pub fn body(&self) -> (&str, &str) {
        (&self.text[..self.name_at.0], &self.text[self.name_at.1..])
    }
}

/// A SQL-level `EXECUTE name(...)`: the name, and where it is in the query text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlExecute {
    pub name: String,
    pub at: (usize, usize),
}

impl SessionOp {
    /// The command tag PostgreSQL answers the statement with.
    pub fn tag(&self) -> &'static str {
        match self {
            SessionOp::ResetAll => "RESET",
            SessionOp::DiscardAll => "DISCARD ALL",
            SessionOp::DeallocateAll => "DEALLOCATE ALL",
            SessionOp::AppName(_) => "SET",
            SessionOp::ShowAppName => "SHOW",
            SessionOp::UnlockAll => "SELECT 1",
            SessionOp::Noop(tag) => tag,
            SessionOp::Prepare(_) => "PREPARE",
            SessionOp::Deallocate(_) => "DEALLOCATE",
        }
    }
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
    /// A statement changes the schema or its grants (refused unless the login may).
    pub ddl: bool,
    /// Channels notified (NOTIFY or `pg_notify`): each must be the tenant's own.
    pub notify: Vec<String>,
    /// Settings changed with SET LOCAL (lowercased): the tenant's limits may forbid some.
    pub settings: Vec<String>,
    /// Session settings changed (SET, RESET, SET SESSION CHARACTERISTICS; lowercased): the
    /// session reads their values back when the transaction is over.
    pub session_settings: Vec<String>,
    /// When every statement is a session SET or RESET of an allowed setting with a constant
    /// value: each (name, value; None for RESET). A session with no tenant chosen yet (a
    /// service login) keeps them without a backend; they are checked when first applied.
    pub session_values: Option<Vec<(String, Option<String>)>>,
    /// The verdict depends on a constant's value (a `pg_notify` channel) or names a
    /// statement (SQL PREPARE, EXECUTE, DEALLOCATE): never kept by shape.
    pub by_value: bool,
    /// SQL-level EXECUTEs, in order: the session points them at its backend statements.
    pub executes: Vec<SqlExecute>,
    /// Every statement that reaches the server reads only the catalogs (see
    /// [`catalog`]): a service login may run it before choosing a tenant.
    pub tenant_free: bool,
}

/// Parses `sql` and returns the transaction effect of each statement, or why it is refused.
pub fn check(sql: &str) -> Result<Vec<TxEffect>, Refusal> {
    inspect(sql).map(|c| c.effects)
}

/// Like [`check`], with everything the session needs to know; cached (see [`cache`]).
pub fn inspect(sql: &str) -> Result<Checked, Refusal> {
    cache::inspect(sql)
}

/// Parses and judges `sql` without any cache (what a cache miss costs).
pub fn inspect_uncached(sql: &str) -> Result<Checked, Refusal> {
    let parsed = pg_query::parse(sql, 0).map_err(|e| {
        refuse(
            SqlState::SyntaxError,
            "unparsable",
            format!(
                "the gateway could not parse this statement and refuses what it cannot check: {e}"
            ),
        )
    })?;
    let mut checked = Checked::default();
    let tree = serde_json::to_value(&parsed.protobuf).map_err(|e| {
        refuse(
            SqlState::SyntaxError,
            "unparsable",
            format!("the gateway could not examine this statement and refuses it: {e}"),
        )
    })?;
    functions::check(&tree, &mut checked)?;
    let mut values = Some(Vec::new());
    checked.tenant_free = true;
    for (k, raw) in parsed.protobuf.stmts.iter().enumerate() {
        let node = raw.stmt.as_ref().and_then(|s| s.node.as_ref());
        let before = checked.session_settings.len();
        if matches!(node, Some(pg_query::NodeEnum::CopyStmt(c)) if c.is_from) {
            checked.copy_in = true;
        }
        let mut effect = statements::statement(node, &mut checked)?;
        let start = usize::try_from(raw.stmt_location).unwrap_or(0);
        let end = match usize::try_from(raw.stmt_len) {
            Ok(0) | Err(_) => sql.len(),
            Ok(len) => (start + len).min(sql.len()),
        };
        statements::locate_names(&sql[start..end], start, &mut effect, &mut checked)?;
        checked.tenant_free &=
            effect != TxEffect::None || catalog::reads_only_catalogs(&tree["stmts"][k]["stmt"]);
        checked.effects.push(effect);
        checked.starts.push(start);
        values = values.and_then(|mut vs| {
            let value = statements::session_value(node)?;
            (checked.session_settings.len() == before + 1).then(|| {
                vs.push((checked.session_settings[before].clone(), value));
                vs
            })
        });
    }
    checked.session_values = values.filter(|v| !v.is_empty());
    Ok(checked)
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
            "SET LOCAL search_path = t_other, public",
            "SET search_path TO t_other",
            "SET LOCAL bulkhead.tenant_id = '00000000-0000-0000-0000-000000000000'",
            "SET LOCAL \"Bulkhead\".\"Tenant_Id\" = 'x'",
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
    fn calls_hidden_anywhere_in_a_statement_are_found() {
        for sql in [
            "SELECT ARRAY[set_config('role', 'x', true)]",
            "SELECT * FROM (VALUES (set_config('role', 'x', true))) v",
            "SELECT 1 LIMIT set_config('role', 'x', true)::int",
            "SELECT 1 OFFSET length(set_config('role', 'x', true))",
            "INSERT INTO t VALUES (1) RETURNING set_config('role', 'x', true)",
            "UPDATE t SET a = set_config('role', 'x', true)",
            "DELETE FROM t WHERE a = set_config('role', 'x', true)",
            "WITH c AS (SELECT set_config('role', 'x', true)) SELECT * FROM c",
            "SELECT * FROM t JOIN u ON set_config('role', 'x', true) = u.a",
            "SELECT count(*) FILTER (WHERE set_config('role','x',true) = '') FROM t",
            "SELECT a FROM t GROUP BY a HAVING max(set_config('role','x',true)) = ''",
            "SELECT a FROM t ORDER BY set_config('role','x',true)",
            "SELECT a IN (set_config('role','x',true)) FROM t",
            "SELECT (SELECT set_config('role','x',true))",
            "SELECT * FROM t, LATERAL (SELECT set_config('role','x',true)) s",
            "SELECT row_number() OVER (ORDER BY set_config('role','x',true)) FROM t",
            "SELECT xmlelement(name a, set_config('role','x',true))",
            "SELECT json_build_object('a', set_config('role','x',true))",
            "COPY (SELECT set_config('role','x',true)) TO STDOUT",
            "EXPLAIN ANALYZE SELECT set_config('role','x',true)",
            "DECLARE c CURSOR FOR SELECT set_config('role','x',true)",
            "CALL p(set_config('role','x',true))",
            "SELECT U&\"set_confi\\0067\"('role','x',true)",
            "SELECT \"SET_CONFIG\"('role','x',true)",
            "SELECT pg_catalog.set_config('role','x',true)",
            "SELECT 1; /* hi */ SELECT set_config('role','x',true)",
            "SELECT set_config($1, $2, $3)",
        ] {
            let r = check(sql).expect_err(sql);
            assert_eq!(r.rule, "set_config", "{sql}: {r:?}");
        }
    }

    #[test]
    fn escapes_through_functions_are_refused_by_rule() {
        for (sql, rule) in [
            ("SELECT pg_read_file('/etc/passwd')", "server_file"),
            ("SELECT * FROM pg_ls_dir('.')", "server_file"),
            ("SELECT pg_read_binary_file('x')", "server_file"),
            ("SELECT lo_import('/etc/passwd')", "large_object"),
            ("SELECT lo_export(1, '/tmp/x')", "large_object"),
            ("SELECT lo_get(1)", "large_object"),
            (
                "SELECT * FROM dblink('host=x', 'select 1') AS t(a int)",
                "foreign_data",
            ),
            ("SELECT dblink_exec('x', 'select 1')", "foreign_data"),
            (
                "SELECT query_to_xml('SET ROLE x', true, true, '')",
                "dynamic_sql",
            ),
            (
                "SELECT * FROM ts_stat('select set_config(''role'',''x'',true)::tsvector')",
                "dynamic_sql",
            ),
            ("SELECT pg_advisory_lock(1)", "advisory_lock"),
            ("SELECT pg_try_advisory_xact_lock(1)", "advisory_lock"),
            (
                "SELECT PG_ADVISORY_UNLOCK_ALL(), pg_advisory_lock(1)",
                "advisory_lock",
            ),
            ("SELECT pg_terminate_backend(1)", "server_admin"),
            ("SELECT pg_reload_conf()", "server_admin"),
            (
                "SELECT pg_create_logical_replication_slot('s', 'pgoutput')",
                "server_admin",
            ),
        ] {
            assert_eq!(check(sql).expect_err(sql).rule, rule, "{sql}");
        }
    }

    #[test]
    fn statements_that_escape_or_block_everyone_are_refused() {
        for (sql, rule) in [
            (
                "LOCK TABLE customers IN ACCESS EXCLUSIVE MODE",
                "lock_table",
            ),
            ("TRUNCATE customers", "truncate"),
            ("VACUUM customers", "server_admin"),
            ("LOAD 'plpgsql'", "server_admin"),
            ("CREATE ROLE evil", "server_admin"),
            ("GRANT bh_t_x TO bh_t_y", "server_admin"),
            (
                "ALTER ROLE CURRENT_USER SET search_path = x",
                "server_admin",
            ),
            (
                "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw",
                "server_admin",
            ),
            (
                "IMPORT FOREIGN SCHEMA p FROM SERVER s INTO public",
                "server_admin",
            ),
            ("LISTEN events", "listen"),
            ("UNLISTEN events", "listen"),
            (
                "SET LOCAL standard_conforming_strings = off",
                "context_setting",
            ),
            ("SET LOCAL client_encoding = 'SJIS'", "context_setting"),
            ("SET LOCAL backslash_quote = on", "context_setting"),
            (
                "SET LOCAL session_replication_role = replica",
                "context_setting",
            ),
            ("SELECT pg_notify($1, 'x')", "notify_channel"),
        ] {
            assert_eq!(check(sql).expect_err(sql).rule, rule, "{sql}");
        }
    }

    #[test]
    fn what_depends_on_the_login_or_tenant_is_recorded_for_the_session() {
        for sql in [
            "CREATE TABLE x (a int)",
            "CREATE TEMP TABLE x (a int)",
            "SELECT 1 INTO newtable",
            "ALTER TABLE customers ADD COLUMN x int",
            "DROP TABLE customers",
            "CREATE INDEX ON customers (name)",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'",
            "CREATE VIEW v AS SELECT 1",
            "GRANT SELECT ON customers TO PUBLIC",
            "COMMENT ON TABLE customers IS 'x'",
            "EXPLAIN ANALYZE CREATE TABLE y AS SELECT 1",
        ] {
            assert!(inspect(sql).expect(sql).ddl, "{sql}");
        }
        assert!(!inspect("SELECT 1").expect("select").ddl);
        let n = inspect("NOTIFY t_abc_orders, 'x'").expect("notify");
        assert_eq!(n.notify, ["t_abc_orders"]);
        let n = inspect("SELECT pg_notify('t_abc_orders', 'x')").expect("pg_notify");
        assert_eq!(n.notify, ["t_abc_orders"]);
        assert!(
            n.by_value,
            "a pg_notify channel is a constant: judged by value"
        );
        let t = inspect("SET LOCAL statement_timeout = '10min'").expect("timeout");
        assert_eq!(t.settings, ["statement_timeout"]);
    }

    #[test]
    fn the_clients_own_session_is_kept_and_pool_resets_are_answered() {
        use SessionOp as S;
        for (sql, op) in [
            ("RESET ALL", S::ResetAll),
            ("DISCARD ALL", S::DiscardAll),
            ("DEALLOCATE ALL", S::DeallocateAll),
            ("CLOSE ALL", S::Noop("CLOSE CURSOR ALL")),
            ("UNLISTEN *", S::Noop("UNLISTEN")),
            ("SELECT pg_advisory_unlock_all()", S::UnlockAll),
            (
                "SET application_name = 'web'",
                S::AppName(Some("web".into())),
            ),
            (
                "SET LOCAL application_name = 'web'",
                S::AppName(Some("web".into())),
            ),
            ("RESET application_name", S::AppName(None)),
            ("SHOW application_name", S::ShowAppName),
            ("SET search_path = \"$user\", public", S::Noop("SET")),
            ("SET standard_conforming_strings = on", S::Noop("SET")),
            ("SET client_encoding = 'UTF8'", S::Noop("SET")),
            ("SET NAMES 'utf8'", S::Noop("SET")),
        ] {
            assert_eq!(check(sql).expect(sql), [TxEffect::Session(op)], "{sql}");
        }
        for (sql, name) in [
            ("SET TIME ZONE 'UTC'", "timezone"),
            ("SET SESSION DateStyle TO ISO", "datestyle"),
            ("SET statement_timeout = 0", "statement_timeout"),
            ("RESET lock_timeout", "lock_timeout"),
            ("SET enable_seqscan = off", "enable_seqscan"),
            ("SET work_mem = '64MB'", "work_mem"),
        ] {
            let c = inspect(sql).expect(sql);
            assert_eq!(c.effects, [TxEffect::None], "{sql}");
            assert_eq!(c.session_settings, [name], "{sql}");
        }
        assert_eq!(
            check("SET work_mem = '8GB'").expect_err("too much").rule,
            "work_mem"
        );
        // set_config of a kept setting, as asyncpg sends it; never of one that decides who
        // the session is, nor with the name as a parameter.
        let c = inspect("SELECT current_setting('jit'), set_config('jit', 'off', false)")
            .expect("asyncpg's jit");
        assert_eq!(c.session_settings, ["jit"]);
        assert!(c.by_value, "judged by the setting's name");
        for sql in [
            "SELECT set_config('role', 'x', false)",
            "SELECT set_config('application_name', 'x', false)",
            "SELECT set_config($1, 'off', false)",
        ] {
            assert_eq!(check(sql).expect_err(sql).rule, "set_config", "{sql}");
        }
        let c = inspect("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE")
            .expect("characteristics");
        assert!(c
            .session_settings
            .contains(&"default_transaction_isolation".into()));
    }

    #[test]
    fn sql_prepared_statements_are_located_and_judged() {
        let c =
            inspect("/* c */ PREPARE \"Q\" (int) AS SELECT $1; EXECUTE \"Q\"(1)").expect("prepare");
        let [TxEffect::Session(SessionOp::Prepare(p)), TxEffect::None] = c.effects.as_slice()
        else {
            panic!("{c:?}");
        };
        assert_eq!(p.name, "Q");
        assert_eq!(&p.text[p.name_at.0..p.name_at.1], "\"Q\"");
        assert_eq!(p.body(), ("PREPARE ", " (int) AS SELECT $1"));
        let sql = "/* c */ PREPARE \"Q\" (int) AS SELECT $1; EXECUTE \"Q\"(1)";
        let e = &c.executes[0];
        assert_eq!((e.name.as_str(), &sql[e.at.0..e.at.1]), ("Q", "\"Q\""));
        assert!(c.by_value, "never kept by shape");
        assert_eq!(
            check("DEALLOCATE PREPARE q").expect("deallocate"),
            [TxEffect::Session(SessionOp::Deallocate("q".into()))]
        );
        for sql in [
            "PREPARE p AS SELECT pg_read_file('/etc/passwd')",
            "EXECUTE p(set_config('role', 'x', false))",
            "PREPARE p AS SELECT lo_import('/etc/passwd')",
        ] {
            assert_eq!(
                check(sql).expect_err(sql).code,
                SqlState::InsufficientPrivilege,
                "{sql}"
            );
        }
    }

    #[test]
    fn session_state_is_refused_and_unparsable_text_fails_closed() {
        for sql in [
            "SET max_parallel_workers_per_gather = 0",
            "SET \"enable_x; DROP TABLE t\" = 1",
            "LISTEN x",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "EXPLAIN EXECUTE p",
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
            Some(vec![TxEffect::RollbackTo])
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

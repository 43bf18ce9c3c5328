//! SQL-level prepared statements (`PREPARE`, `EXECUTE`, `DEALLOCATE`) under transaction
//! pooling. A client's PREPARE is kept by the gateway (its statement was judged by the guard
//! like any other) and answered at once; an EXECUTE is pointed at a backend statement named
//! from the tenant's role, search_path and the PREPARE's text (like protocol-level statements,
//! see `prepared.rs`), and the PREPARE is sent first, in the same query string, on a
//! connection that lacks it. Its reply is not relayed. DEALLOCATE forgets the client's name;
//! the backend statement stays for whoever runs the same text for the same tenant.
//!
//! PostgreSQL keeps protocol-level and SQL-level statements in one namespace per session;
//! so does the gateway (a PREPARE of a name the client's driver already prepared fails with
//! 42P05, DEALLOCATE of either kind works).

use bulkhead_wire::SqlState;

use super::Session;
use crate::expect::Expectations;
use crate::guard::{Checked, Refusal, SqlPrepare};

/// A query text whose EXECUTEs point at backend statements.
pub(super) struct Pointed {
    /// The text to send: the PREPAREs the connection lacks, then the client's statements.
    pub text: String,
    /// The backend statements the text prepares, in order.
    pub prepares: Vec<String>,
}

fn missing(name: &str) -> Refusal {
    Refusal {
        code: SqlState::InvalidSqlStatementName,
        rule: "sql_prepare",
        message: format!("prepared statement \"{name}\" does not exist"),
    }
}

impl Session {
    /// PREPARE: kept as the client's statement.
    pub(super) fn sql_prepare(&mut self, p: &SqlPrepare) -> Result<(), Refusal> {
        if self.statements.contains_key(&p.name) || self.sql_statements.contains_key(&p.name) {
            return Err(Refusal {
                code: SqlState::DuplicatePreparedStatement,
                rule: "sql_prepare",
                message: format!("prepared statement \"{}\" already exists", p.name),
            });
        }
        self.sql_statements.insert(p.name.clone(), p.clone());
        Ok(())
    }

    /// DEALLOCATE name: the client's statement of either kind is forgotten.
    pub(super) fn sql_deallocate(&mut self, name: &str) -> Result<(), Refusal> {
        if self.sql_statements.remove(name).is_none() && self.statements.remove(name).is_none() {
            return Err(missing(name));
        }
        Ok(())
    }

    /// SQL EXECUTE in the extended protocol: refused (the gateway points EXECUTEs at backend
    /// statements in simple queries only).
    pub(super) fn no_sql_execute(c: &Checked) -> Result<(), Refusal> {
        if c.executes.is_empty() {
            return Ok(());
        }
        Err(Refusal {
            code: SqlState::FeatureNotSupported,
            rule: "sql_execute_extended",
            message: "through the gateway, SQL EXECUTE runs in a simple query (no parameters); with parameters, use your driver's prepared statements instead of SQL PREPARE".into(),
        })
    }

    /// Refuses an EXECUTE of a statement the client has not prepared (before any backend is
    /// involved).
    pub(super) fn check_executes(&self, checked: &Checked) -> Result<(), Refusal> {
        match checked
            .executes
            .iter()
            .find(|e| !self.sql_statements.contains_key(&e.name))
        {
            Some(e) => Err(missing(&e.name)),
            None => Ok(()),
        }
    }

    /// The text from byte `from` of `sql`, its EXECUTEs pointed at the attached connection's
    /// statements, preceded by the PREPAREs it lacks; None when the text executes none.
    pub(super) fn point_executes(
        &mut self,
        sql: &str,
        checked: &Checked,
        from: usize,
    ) -> Option<Pointed> {
        let executes: Vec<_> = checked.executes.iter().filter(|e| e.at.0 >= from).collect();
        if executes.is_empty() {
            return None;
        }
        let known = self
            .backend
            .as_mut()
            .map(|b| b.conn().prepared.clone())
            .unwrap_or_default();
        let mut prepares: Vec<String> = Vec::new();
        let mut head = String::new();
        let mut body = String::with_capacity(sql.len() - from + 32);
        let mut at = from;
        for e in executes {
            let Some(p) = self.sql_statements.get(&e.name) else {
                continue;
            };
            let (before, after) = p.body();
            let name = self.backend_name(&format!("{before}\0{after}"), &[]);
            if !known.contains(&name) && !prepares.contains(&name) {
                head.push_str(before);
                head.push_str(&name);
                head.push_str(after);
                // A newline first: the PREPARE's trailing line comment ends there.
                head.push_str("\n;");
                prepares.push(name.clone());
            }
            body.push_str(&sql[at..e.at.0]);
            body.push_str(&name);
            at = e.at.1;
        }
        body.push_str(&sql[at..]);
        head.push_str(&body);
        Some(Pointed {
            text: head,
            prepares,
        })
    }

    /// After a text from [`Self::point_executes`] ran: the PREPAREs that completed (the
    /// first `expect.swallowed - skip` of them) are known on the connection.
    pub(super) fn record_sql_prepared(
        &mut self,
        prepares: &[String],
        expect: &Expectations,
        skip: usize,
    ) {
        let done = expect.swallowed.saturating_sub(skip).min(prepares.len());
        if let Some(b) = self.backend.as_mut() {
            b.conn().prepared.extend(prepares[..done].iter().cloned());
        }
    }
}

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

use std::borrow::Cow;
use std::collections::HashSet;

use bulkhead_wire::{to_server, SqlState};
use bytes::BytesMut;

use super::Session;
use crate::expect::{Expect, Expectations, Shape};
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

    /// [`Self::check_executes`] for an extended-protocol unit: what it executes and what it
    /// parses.
    pub(super) fn check_unit_executes(
        &self,
        executed: &Checked,
        parsed: &super::prepared::Parsed,
    ) -> Result<(), Refusal> {
        self.check_executes(executed)?;
        parsed.all().try_for_each(|c| self.check_executes(c))
    }

    /// The text from byte `from` of `sql`, its EXECUTEs pointed at the attached connection's
    /// statements, preceded by the PREPAREs it lacks; None when the text executes none.
    pub(super) fn point_executes(
        &mut self,
        sql: &str,
        checked: &Checked,
        from: usize,
    ) -> Option<Pointed> {
        if !checked.executes.iter().any(|e| e.at.0 >= from) {
            return None;
        }
        let known = self
            .backend
            .as_mut()
            .map(|b| b.conn().prepared.clone())
            .unwrap_or_default();
        let (missing, body) = self.pointed(sql, checked, from, &known);
        let mut head = String::new();
        for (_, prepare) in &missing {
            head.push_str(prepare);
            // A newline first: the PREPARE's trailing line comment ends there.
            head.push_str("\n;");
        }
        head.push_str(&body);
        Some(Pointed {
            text: head,
            prepares: missing.into_iter().map(|(name, _)| name).collect(),
        })
    }

    /// The text of `sql` from byte `from` with its EXECUTEs pointed at backend statements,
    /// and the PREPAREs (backend name, text) of those not in `known`.
    fn pointed(
        &self,
        sql: &str,
        checked: &Checked,
        from: usize,
        known: &HashSet<String>,
    ) -> (Vec<(String, String)>, String) {
        let mut missing: Vec<(String, String)> = Vec::new();
        let mut body = String::with_capacity(sql.len() - from + 32);
        let mut at = from;
        for e in checked.executes.iter().filter(|e| e.at.0 >= from) {
            let Some(p) = self.sql_statements.get(&e.name) else {
                continue;
            };
            let (before, after) = p.body();
            let name = self.backend_name(&format!("{before}\0{after}"), &[]);
            if !known.contains(&name) && !missing.iter().any(|(n, _)| *n == name) {
                missing.push((name.clone(), format!("{before}{name}{after}")));
            }
            body.push_str(&sql[at..e.at.0]);
            body.push_str(&name);
            at = e.at.1;
        }
        body.push_str(&sql[at..]);
        (missing, body)
    }

    /// In the extended protocol: a Parse's text with its EXECUTEs pointed at backend
    /// statements, each PREPARE the connection lacks sent before it as a statement of its
    /// own (a named statement and portal the gateway closes again, so the client's unnamed
    /// ones stay as they are; replies swallowed). The text itself when it executes none.
    pub(super) fn point_parse<'q>(
        &self,
        query: &'q str,
        checked: Option<&Checked>,
        out: &mut BytesMut,
        expect: &mut Expectations,
        known: &mut HashSet<String>,
        attempted: &mut Vec<String>,
    ) -> Cow<'q, str> {
        let Some(checked) = checked.filter(|c| !c.executes.is_empty()) else {
            return Cow::Borrowed(query);
        };
        const TEMP: &str = "bh_sql_prepare";
        let (missing, body) = self.pointed(query, checked, 0, known);
        for (name, prepare) in missing {
            to_server::parse(out, TEMP, &prepare, &[]);
            to_server::bind(out, TEMP, TEMP, &[], &[], &[]);
            to_server::execute(out, TEMP, 0);
            to_server::close(out, b'P', TEMP);
            to_server::close(out, b'S', TEMP);
            for shape in [
                Shape::Parse,
                Shape::Bind,
                Shape::Execute,
                Shape::Close,
                Shape::Close,
            ] {
                expect.push(Expect::Swallow(shape));
            }
            known.insert(name.clone());
            attempted.push(name);
        }
        Cow::Owned(body)
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

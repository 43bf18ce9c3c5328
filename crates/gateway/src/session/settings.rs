//! The client's virtual session: the settings it chose (in its startup packet, with SET,
//! RESET, SET SESSION CHARACTERISTICS), kept by the gateway and applied to whichever
//! backend connection serves its transaction, so that the client sees exactly the session
//! it set and never another client's.
//!
//! - A session SET of an allowed setting (see `guard::statements::SESSION_SETTINGS`) runs on
//!   the backend as the client wrote it, so PostgreSQL validates the value, reports it
//!   (ParameterStatus) and applies SET's transaction rules (a SET in a transaction that
//!   rolls back is undone). When the transaction is over, the gateway reads the values of
//!   the settings changed back from the server: that is the client's value now.
//! - When a client's transaction gets a connection whose settings differ from the client's,
//!   the difference (only that) is applied in the same write as the transaction's first
//!   statement, as a query of its own before it: `set_config(name, value, false)` or `RESET`.
//!   Its replies are not relayed (the client already knows its own values).
//! - `application_name` is the client's alone: answered by the gateway, never sent to a
//!   backend (whose `application_name` carries the context token, see `backend/held.rs`).
//! - Pool resets (`RESET ALL`, `DISCARD ALL`) put the client's settings back to its startup
//!   packet's; `DEALLOCATE ALL` and `DISCARD ALL` forget its prepared statements. None touch
//!   the tenant context or another client's state.

use std::collections::{BTreeMap, BTreeSet};

use bulkhead_wire::{to_client, to_server, Frame, SqlState};
use bytes::BytesMut;

use crate::backend::SessionValues;
use crate::guard::statements::SESSION_SETTINGS;
use crate::guard::{ContextKey, ContextSet, SessionOp};

/// A startup parameter (or `-c` option) that chooses the session's tenant.
fn context_key(name: &str) -> Option<ContextKey> {
    match name.to_ascii_lowercase().as_str() {
        "bulkhead.tenant" => Some(ContextKey::Tenant),
        "bulkhead.token" => Some(ContextKey::Token),
        _ => None,
    }
}

/// Startup parameters that become the client's initial settings (lowercased).
fn startup_setting(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    (SESSION_SETTINGS.contains(&lower.as_str()) && lower != "application_name").then_some(lower)
}

/// One client's session settings.
#[derive(Debug, Default)]
pub(crate) struct ClientSettings {
    /// Its startup packet's settings: what RESET ALL returns to.
    startup: BTreeMap<String, String>,
    /// Its values now (absent: the server's default).
    pub values: BTreeMap<String, String>,
    startup_app: String,
    /// Its `application_name`.
    pub app_name: String,
    /// Settings a statement of the running transaction changed: read back at its end.
    pub touched: BTreeSet<String>,
    /// The difference being applied to the leased connection: (name, value or RESET).
    applying: Vec<(String, Option<String>)>,
    /// Replies of that query still to swallow (its ReadyForQuery ends them).
    pub syncing: bool,
    sync_failed: Option<String>,
    /// The tenant context its startup packet chose (`options=-c bulkhead.tenant=…`, or a
    /// `bulkhead.tenant`/`bulkhead.token` parameter): the session's tenant, as a plain SET.
    pub startup_context: Option<ContextSet>,
}

impl ClientSettings {
    /// The settings of a startup packet: allowed settings, `application_name` and the `-c
    /// name=value` of `options`. Others are ignored, as before.
    pub fn from_startup(params: &[(String, String)]) -> Self {
        let mut s = ClientSettings::default();
        for (k, v) in params {
            if k == "application_name" {
                s.startup_app = v.clone();
            } else if k == "options" {
                for (name, value) in options(v) {
                    if let Some(key) = context_key(&name) {
                        s.choose_at_startup(key, value);
                    } else if let Some(name) = startup_setting(&name) {
                        s.startup.insert(name, value);
                    }
                }
            } else if let Some(key) = context_key(k) {
                s.choose_at_startup(key, v.clone());
            } else if let Some(name) = startup_setting(k) {
                if name == "client_encoding" {
                    continue;
                }
                s.startup.insert(name, v.clone());
            }
        }
        s.values = s.startup.clone();
        s.app_name = s.startup_app.clone();
        s
    }

    fn choose_at_startup(&mut self, key: ContextKey, value: String) {
        self.startup_context = Some(ContextSet {
            local: false,
            key,
            value: Some(value),
        });
    }

    /// RESET ALL: back to the startup packet's settings.
    pub fn reset_all(&mut self) {
        self.values = self.startup.clone();
        self.app_name = self.startup_app.clone();
    }

    /// A session setting chosen without a backend (None: RESET, back to the startup value).
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        match value
            .map(str::to_string)
            .or_else(|| self.startup.get(name).cloned())
        {
            Some(v) => self.values.insert(name.to_string(), v),
            None => self.values.remove(name),
        };
    }

    /// SET application_name (None: its startup value).
    pub fn set_app_name(&mut self, value: Option<&str>) {
        self.app_name = value.map_or_else(|| self.startup_app.clone(), str::to_string);
    }

    /// True when `conn` holds exactly this client's settings (nothing to apply).
    pub fn held_by(&self, conn: &SessionValues) -> bool {
        conn.0.len() == self.values.len()
            && self
                .values
                .iter()
                .all(|(name, want)| conn.0.get(name).is_some_and(|v| v.as_ref() == Some(want)))
    }

    /// The query that gives `conn` this client's settings, if they differ; remembered to
    /// be confirmed by [`Self::on_sync_reply`].
    pub fn sync_query(&mut self, conn: &SessionValues) -> Option<BytesMut> {
        let mut plan = Vec::new();
        for (name, want) in &self.values {
            if conn.0.get(name) != Some(&Some(want.clone())) {
                plan.push((name.clone(), Some(want.clone())));
            }
        }
        for name in conn.0.keys() {
            if !self.values.contains_key(name) {
                plan.push((name.clone(), None));
            }
        }
        if plan.is_empty() {
            return None;
        }
        let mut sql = String::new();
        for (name, value) in &plan {
            match value {
                Some(v) => sql.push_str(&format!(
                    "SELECT pg_catalog.set_config({}, {}, false);",
                    literal(name),
                    literal(v)
                )),
                None => sql.push_str(&format!("RESET {};", ident(name))),
            }
        }
        self.applying = plan;
        self.syncing = true;
        self.sync_failed = None;
        let mut out = BytesMut::new();
        to_server::query(&mut out, &sql);
        Some(out)
    }

    /// A reply to the sync query (never relayed). At its ReadyForQuery, `conn` is updated:
    /// with what was applied, or, after an error, with those settings unknown (so the next
    /// client sets them again). Returns a warning for the client when a value of its own
    /// was refused (it is dropped, as the server would never have accepted it).
    pub fn on_sync_reply(&mut self, frame: &Frame, conn: &mut SessionValues) -> Option<String> {
        match frame.tag {
            b'E' => {
                let message = match bulkhead_wire::BackendMessage::decode(frame) {
                    Ok(bulkhead_wire::BackendMessage::Error(f)) => {
                        f.message().unwrap_or_default().to_string()
                    }
                    _ => String::new(),
                };
                self.sync_failed = Some(message);
                None
            }
            b'Z' => {
                self.syncing = false;
                let applied = std::mem::take(&mut self.applying);
                match self.sync_failed.take() {
                    None => {
                        for (name, value) in applied {
                            match value {
                                Some(v) => conn.0.insert(name, Some(v)),
                                None => conn.0.remove(&name),
                            };
                        }
                        None
                    }
                    Some(message) => {
                        // Statements before the failing one ran; which did is not known.
                        let mut dropped = Vec::new();
                        for (name, value) in applied {
                            conn.0.insert(name.clone(), None);
                            if let Some(v) = value {
                                if message.contains(&name) || message.contains(&v) {
                                    self.values.remove(&name);
                                    self.startup.remove(&name);
                                    dropped.push(format!("{name} = {v}"));
                                }
                            }
                        }
                        Some(format!(
                            "the server did not accept the session setting(s) {}: {message}; the server's default applies",
                            if dropped.is_empty() { "chosen".to_string() } else { dropped.join(", ") }
                        ))
                    }
                }
            }
            _ => None,
        }
    }

    /// The query that reads the touched settings back (None when nothing was touched), with
    /// their names in order.
    pub fn readback_query(&self) -> Option<(BytesMut, Vec<String>)> {
        if self.touched.is_empty() {
            return None;
        }
        let names: Vec<String> = self.touched.iter().cloned().collect();
        let columns: Vec<String> = names
            .iter()
            .map(|n| format!("pg_catalog.current_setting({}, true)", literal(n)))
            .collect();
        let mut out = BytesMut::new();
        to_server::query(&mut out, &format!("SELECT {}", columns.join(", ")));
        Some((out, names))
    }

    /// The values read back: the client's values now, and what `conn` holds.
    pub fn read_back(
        &mut self,
        names: &[String],
        values: &[Option<String>],
        conn: &mut SessionValues,
    ) {
        for (name, value) in names.iter().zip(values) {
            match value {
                Some(v) => {
                    self.values.insert(name.clone(), v.clone());
                    conn.0.insert(name.clone(), Some(v.clone()));
                }
                None => {
                    self.values.remove(name);
                    conn.0.insert(name.clone(), None);
                }
            }
        }
        self.touched.clear();
    }
}

impl super::Session {
    /// Carries out a session statement for the client's virtual session; with `simple`,
    /// writes its replies (in the extended protocol they are synthesised in place).
    pub(super) fn session_op(
        &mut self,
        op: &SessionOp,
        simple: bool,
    ) -> Result<(), crate::guard::Refusal> {
        let app_before = self.settings.app_name.clone();
        match op {
            SessionOp::DiscardAll if self.explicit => {
                return Err(crate::guard::Refusal {
                    code: SqlState::ActiveSqlTransaction,
                    rule: "discard_in_transaction",
                    message: "DISCARD ALL cannot run inside a transaction block".into(),
                })
            }
            SessionOp::ResetAll => self.settings.reset_all(),
            SessionOp::DiscardAll => {
                self.settings.reset_all();
                self.statements.clear();
                self.sql_statements.clear();
            }
            SessionOp::DeallocateAll => {
                self.statements.clear();
                self.sql_statements.clear();
            }
            SessionOp::Prepare(p) => self.sql_prepare(p)?,
            SessionOp::Deallocate(name) => self.sql_deallocate(name)?,
            SessionOp::AppName(v) => self.settings.set_app_name(v.as_deref()),
            SessionOp::ShowAppName if simple => {
                let w = &mut self.io.wbuf;
                to_client::row_description(w, &[("application_name", 25)]);
                to_client::data_row(w, &[Some(&self.settings.app_name)]);
            }
            SessionOp::UnlockAll if simple => {
                let w = &mut self.io.wbuf;
                to_client::row_description(w, &[("pg_advisory_unlock_all", 2278)]);
                to_client::data_row(w, &[Some("")]);
            }
            SessionOp::ShowAppName | SessionOp::UnlockAll | SessionOp::Noop(_) => {}
        }
        if self.settings.app_name != app_before {
            to_client::parameter_status(
                &mut self.io.wbuf,
                "application_name",
                &self.settings.app_name,
            );
        }
        if simple {
            to_client::command_complete(&mut self.io.wbuf, op.tag());
        }
        Ok(())
    }

    /// [`Self::session_op`] for each statement of an extended-protocol unit.
    pub(super) fn session_ops(&mut self, ops: &[SessionOp]) -> Result<(), crate::guard::Refusal> {
        for op in ops {
            self.session_op(op, false)?;
        }
        Ok(())
    }

    /// Prepares what gives the newly leased connection the client's settings.
    pub(super) fn plan_sync(&mut self) {
        self.pending_sync = match self.backend.as_mut() {
            Some(b) => self.settings.sync_query(&b.conn().settings),
            None => None,
        };
    }

    /// A reply of the sync query, if one is owed: taken (never relayed). True when taken.
    pub(super) fn sync_reply(&mut self, frame: &Frame) -> bool {
        if !self.settings.syncing {
            return false;
        }
        if let Some(b) = self.backend.as_mut() {
            if let Some(warning) = self.settings.on_sync_reply(frame, &mut b.conn().settings) {
                self.io.notice("WARNING", SYNC_WARNING, &warning);
            }
        }
        true
    }

    /// Before an idle connection goes back: reads the settings the transaction changed
    /// back from the server (the client's values now). False when that failed and the
    /// connection must be closed.
    pub(super) async fn read_settings_back(&mut self) -> bool {
        let Some((query, names)) = self.settings.readback_query() else {
            return true;
        };
        let Some(b) = self.backend.as_mut() else {
            self.settings.touched.clear();
            return true;
        };
        let conn = b.conn();
        if conn.send(&query).await.is_err() {
            self.settings.touched.clear();
            return false;
        }
        let mut values = None;
        let mut failed = false;
        loop {
            let Ok(frame) = conn.recv().await else {
                self.settings.touched.clear();
                return false;
            };
            match frame.tag {
                b'D' => values = bulkhead_wire::data_row_texts(&frame),
                b'E' => failed = true,
                b'Z' => break,
                _ => {}
            }
        }
        match values {
            Some(v) if !failed && v.len() == names.len() => {
                self.settings.read_back(&names, &v, &mut conn.settings);
                true
            }
            _ => {
                self.settings.touched.clear();
                false
            }
        }
    }
}

/// The `-c name=value` (or `--name=value`) settings of an `options` startup parameter.
fn options(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        let pair = if w == "-c" {
            words.next()
        } else if let Some(rest) = w.strip_prefix("-c") {
            Some(rest)
        } else {
            w.strip_prefix("--")
        };
        if let Some((k, v)) = pair.and_then(|p| p.split_once('=')) {
            out.push((k.replace('-', "_"), v.to_string()));
        }
    }
    out
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The warning a client gets when its setting could not be applied.
pub(super) const SYNC_WARNING: SqlState = SqlState::InvalidParameterValue;

#[cfg(test)]
mod tests {
    use super::*;

    fn startup(pairs: &[(&str, &str)]) -> ClientSettings {
        let params: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ClientSettings::from_startup(&params)
    }

    #[test]
    fn startup_parameters_and_options_become_the_initial_settings() {
        let s = startup(&[
            ("TimeZone", "Europe/Berlin"),
            ("DateStyle", "ISO"),
            ("application_name", "app"),
            (
                "options",
                "-c statement_timeout=5s --lock-timeout=1s -c role=admin",
            ),
            ("search_path", "other"),
        ]);
        assert_eq!(
            s.values.get("timezone").map(String::as_str),
            Some("Europe/Berlin")
        );
        assert_eq!(
            s.values.get("statement_timeout").map(String::as_str),
            Some("5s")
        );
        assert_eq!(s.values.get("lock_timeout").map(String::as_str), Some("1s"));
        assert!(!s.values.contains_key("role"), "never who the session is");
        assert!(!s.values.contains_key("search_path"));
        assert_eq!(s.app_name, "app");
    }

    #[test]
    fn only_the_difference_is_applied_and_quoted() {
        let mut s = startup(&[("TimeZone", "UTC")]);
        s.values.insert("datestyle".into(), "ISO, DMY'".into());
        let mut conn = SessionValues::default();
        conn.0.insert("timezone".into(), Some("UTC".into()));
        conn.0.insert("work_mem".into(), Some("64MB".into()));
        let q = s.sync_query(&conn).expect("differs");
        let text = String::from_utf8_lossy(&q[5..]).to_string();
        assert!(
            text.contains("set_config('datestyle', 'ISO, DMY''', false)"),
            "{text}"
        );
        assert!(text.contains("RESET \"work_mem\""), "{text}");
        assert!(!text.contains("timezone"), "{text}");
        let ready = Frame {
            tag: b'Z',
            body: bytes::Bytes::from_static(b"I"),
        };
        assert!(s.on_sync_reply(&ready, &mut conn).is_none());
        assert!(s.sync_query(&conn).is_none(), "nothing left to apply");
    }
}

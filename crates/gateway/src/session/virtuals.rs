//! Extended-protocol messages the gateway answers itself: those of context statements
//! (`SET [LOCAL] bulkhead.tenant|token`) and of statements about the client's own session
//! (pool resets, `SET application_name`, see `settings.rs`), which drivers send like any other statement
//! (Parse, Bind, Describe, Execute, Close). They never reach the backend; their replies
//! take their place among the backend's (see [`crate::expect`]).

use std::collections::HashMap;

use bulkhead_wire::{FrontendMessage, SqlState};

use super::prepared::{ClientStatement, Parsed};
use super::Session;
use crate::expect::Synth;
use crate::guard::{Checked, ContextSet, Refusal, SessionOp, TxEffect};

/// Which messages of a unit the gateway answers, and the context statements it executes.
#[derive(Debug, Default)]
pub(super) struct Virtuals {
    /// Per message: the replies the gateway writes, when it answers the message itself.
    pub replies: Vec<Option<Vec<Synth>>>,
    /// The context statements executed, in order.
    pub contexts: Vec<ContextSet>,
    /// The session statements executed, in order.
    pub session_ops: Vec<SessionOp>,
}

impl Virtuals {
    /// True when no message needs the backend.
    pub fn all(&self) -> bool {
        self.replies.iter().all(Option::is_some)
    }

    /// The gateway's replies to message `i`, if it answers it.
    pub fn answer(&self, i: usize) -> Option<&[Synth]> {
        self.replies.get(i).and_then(|r| r.as_deref())
    }
}

/// A statement the gateway answers itself in the extended protocol.
#[derive(Clone, Copy)]
enum Virtual<'a> {
    Context(&'a ContextSet),
    Session(&'a SessionOp),
}

/// The statement the gateway answers that a checked text is, alone. (`SELECT
/// pg_advisory_unlock_all()` returns a row: in the extended protocol it goes to the
/// backend, where it is harmless. `SHOW application_name` is answered with the client's own
/// name, never the connection's.)
fn context_of(c: &Checked) -> Option<Virtual<'_>> {
    match c.effects.as_slice() {
        [TxEffect::Context(set)] => Some(Virtual::Context(set)),
        [TxEffect::Session(op)] if !matches!(op, SessionOp::UnlockAll) => {
            Some(Virtual::Session(op))
        }
        _ => None,
    }
}

/// What a Describe of a statement the gateway answers returns: its columns.
fn columns(v: Virtual<'_>) -> Synth {
    match v {
        Virtual::Session(SessionOp::ShowAppName) => Synth::AppNameColumn,
        _ => Synth::NoData,
    }
}

/// The statement a name refers to at this point of a unit: this unit's Parse, an earlier
/// one, or the current unnamed statement.
fn statement<'a>(
    name: &str,
    unnamed: &'a Checked,
    parsed: &'a Parsed,
    statements: &'a HashMap<String, ClientStatement>,
) -> Option<&'a Checked> {
    if name.is_empty() {
        return Some(unnamed);
    }
    parsed
        .named(name)
        .or_else(|| statements.get(name).map(|st| &st.checked))
}

impl Session {
    /// Classifies a unit's messages. Named context statements are remembered (Parse) or
    /// forgotten (Close) here. A context statement executed after a statement that needs
    /// the backend is refused, like in a query string.
    pub(super) fn classify(
        &mut self,
        batch: &[FrontendMessage],
        parsed: &Parsed,
    ) -> Result<Virtuals, Refusal> {
        let mut v = Virtuals::default();
        // Named context statements to remember (Some) or forget (None) once the unit is read.
        let mut named: Vec<(&str, Option<ClientStatement>)> = Vec::new();
        let statements = &self.statements;
        let mut unnamed: &Checked = &self.unnamed;
        // Portal → (its context statement, whether it is a BEGIN).
        let mut portals: HashMap<&str, (Option<Virtual>, bool)> = HashMap::new();
        let mut data_executed = false;
        for (i, m) in batch.iter().enumerate() {
            let virtual_statement = |name: &str, unnamed: &'_ Checked| {
                statement(name, unnamed, parsed, statements)
                    .and_then(context_of)
                    .map(columns)
            };
            let context_of_statement =
                |name: &str, unnamed: &Checked| virtual_statement(name, unnamed).is_some();
            let reply = match m {
                FrontendMessage::Parse {
                    name,
                    query,
                    param_types,
                } => {
                    let checked = parsed.at(i);
                    let ctx = checked.and_then(context_of).is_some();
                    match checked {
                        Some(c) if name.is_empty() => unnamed = c,
                        Some(c) if ctx => named.push((
                            name,
                            Some(ClientStatement {
                                query: query.clone(),
                                types: param_types.clone(),
                                checked: c.clone(),
                                backend_name: String::new(),
                            }),
                        )),
                        _ => {}
                    }
                    ctx.then(|| vec![Synth::ParseComplete])
                }
                FrontendMessage::Bind {
                    portal,
                    statement: name,
                    ..
                } => {
                    let checked = statement(name, unnamed, parsed, statements);
                    let ctx = checked.and_then(context_of);
                    let begins = matches!(
                        checked.map(|c| c.effects.as_slice()),
                        Some([TxEffect::Begin(_)])
                    );
                    portals.insert(portal, (ctx, begins));
                    ctx.map(|_| vec![Synth::BindComplete])
                }
                FrontendMessage::Describe { kind: b'S', name } => virtual_statement(name, unnamed)
                    .map(|columns| vec![Synth::NoParameters, columns]),
                FrontendMessage::Describe { name, .. } => portals
                    .get(name.as_str())
                    .and_then(|p| p.0)
                    .map(|v| vec![columns(v)]),
                FrontendMessage::Execute { portal, .. } => match portals.get(portal.as_str()) {
                    Some((Some(Virtual::Session(SessionOp::ShowAppName)), _)) => {
                        Some(vec![Synth::AppNameRow, Synth::Complete("SHOW")])
                    }
                    Some((Some(Virtual::Session(op)), _)) => {
                        v.session_ops.push((*op).clone());
                        Some(vec![Synth::Complete(op.tag())])
                    }
                    Some((Some(Virtual::Context(ctx)), _)) => {
                        if data_executed {
                            return Err(Refusal {
                                code: SqlState::FeatureNotSupported,
                                rule: "context_order",
                                message: "through the gateway, SET bulkhead.tenant/bulkhead.token must come before the transaction's first statement".into(),
                            });
                        }
                        v.contexts.push((*ctx).clone());
                        Some(vec![Synth::Complete(super::context::command_tag(ctx))])
                    }
                    Some((None, true)) => None,
                    _ => {
                        data_executed = true;
                        None
                    }
                },
                FrontendMessage::Close { kind: b'S', name } => {
                    let ctx = context_of_statement(name, unnamed);
                    if ctx && !name.is_empty() {
                        named.push((name, None));
                    }
                    ctx.then(|| vec![Synth::CloseComplete])
                }
                FrontendMessage::Close { name, .. } => portals
                    .get(name.as_str())
                    .and_then(|p| p.0)
                    .map(|_| vec![Synth::CloseComplete]),
                FrontendMessage::Flush => Some(Vec::new()),
                _ => None,
            };
            v.replies.push(reply);
        }
        for (name, st) in named {
            match st {
                Some(st) => {
                    self.statements.insert(name.to_string(), st);
                }
                None => {
                    self.statements.remove(name);
                }
            }
        }
        Ok(v)
    }

    /// Answers a unit the gateway handles entirely (its Sync's ReadyForQuery is the
    /// caller's).
    pub(super) fn answer_virtual(
        &mut self,
        batch: &[FrontendMessage],
        parsed: &Parsed,
        v: &Virtuals,
    ) {
        for (i, m) in batch.iter().enumerate() {
            if let FrontendMessage::Parse { name, .. } = m {
                if name.is_empty() {
                    self.unnamed = parsed.at(i).cloned().unwrap_or_default();
                }
            }
            for s in v.answer(i).unwrap_or_default() {
                s.write(&mut self.io.wbuf, &self.settings.app_name);
            }
        }
    }
}

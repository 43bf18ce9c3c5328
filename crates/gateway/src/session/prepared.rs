//! Prepared statements under transaction pooling. A client's named statements are kept
//! here (text, parameter types, what the guard found) and prepared on whichever backend
//! connection runs the transaction, under a gateway-chosen name derived from the role,
//! search_path, text and types, so a backend statement is never shared across tenants and
//! is prepared once per connection, then reused.

use std::collections::{HashMap, HashSet};

use bulkhead_wire::{to_server, FrontendMessage, TransactionStatus};
use bytes::BytesMut;
use sha2::{Digest, Sha256};

use super::virtuals::Virtuals;
use super::Session;
use crate::expect::{Expect, Expectations, Shape};
use crate::guard::{self, Checked, Refusal};
use crate::GatewayError;

/// A client's named statement.
pub(super) struct ClientStatement {
    pub query: String,
    pub types: Vec<u32>,
    pub checked: Checked,
    /// Its name on backends (empty for statements the gateway answers itself).
    pub backend_name: String,
}

/// What the guard found in each Parse of a unit, by the message's position: two unnamed
/// Parses in one unit (pgJDBC sends its BEGIN and the statement after it so) are each their
/// own. Named ones are found by name too.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    at: HashMap<usize, Checked>,
    named: HashMap<String, usize>,
}

impl Parsed {
    /// The statement of the Parse at message `i`.
    pub fn at(&self, i: usize) -> Option<&Checked> {
        self.at.get(&i)
    }

    /// The statement the unit's last Parse named `name` (not empty) carries.
    pub fn named(&self, name: &str) -> Option<&Checked> {
        self.named.get(name).and_then(|i| self.at.get(i))
    }

    /// True when the unit parses nothing.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Every statement the unit parses.
    pub fn all(&self) -> impl Iterator<Item = &Checked> {
        self.at.values()
    }
}

impl Session {
    /// Checks the text of every Parse in `batch`; the first refusal refuses them all.
    pub(super) fn check_parses(batch: &[FrontendMessage]) -> Result<Parsed, Refusal> {
        let mut parsed = Parsed::default();
        for (i, m) in batch.iter().enumerate() {
            if let FrontendMessage::Parse { name, query, .. } = m {
                parsed.at.insert(i, guard::inspect(query)?);
                if !name.is_empty() {
                    parsed.named.insert(name.clone(), i);
                }
            }
        }
        Ok(parsed)
    }

    /// What the statements this unit sends to the backend execute, in order: their
    /// transaction effects and whether one of them is COPY FROM STDIN; `tenant_free` when
    /// what it parses and executes reads only the catalogs.
    pub(super) fn executed(
        &mut self,
        batch: &[FrontendMessage],
        parsed: &Parsed,
        virtuals: &Virtuals,
    ) -> Checked {
        let mut portals: HashMap<&str, &str> = HashMap::new();
        let mut out = Checked {
            tenant_free: true,
            ..Checked::default()
        };
        for (i, m) in batch.iter().enumerate() {
            match m {
                FrontendMessage::Parse { name, .. } => {
                    let c = parsed.at(i);
                    out.tenant_free &= c.is_some_and(|c| c.tenant_free);
                    if name.is_empty() {
                        self.unnamed = c.cloned().unwrap_or_default();
                    }
                }
                FrontendMessage::Bind {
                    portal, statement, ..
                } => {
                    portals.insert(portal, statement);
                }
                FrontendMessage::Execute { portal, .. } if virtuals.answer(i).is_none() => {
                    let stmt = portals.get(portal.as_str()).copied().unwrap_or("");
                    let c = match parsed.named(stmt) {
                        _ if stmt.is_empty() => &self.unnamed,
                        Some(c) => c,
                        None => match self.statements.get(stmt) {
                            Some(s) => &s.checked,
                            None => continue,
                        },
                    };
                    out.effects.extend(c.effects.iter().cloned());
                    out.tenant_free &= c.tenant_free;
                    out.copy_in |= c.copy_in;
                    out.ddl |= c.ddl;
                    out.notify.extend(c.notify.iter().cloned());
                    out.executes.extend(c.executes.iter().cloned());
                    out.settings.extend(c.settings.iter().cloned());
                    out.session_settings
                        .extend(c.session_settings.iter().cloned());
                }
                _ => {}
            }
        }
        out
    }

    pub(super) fn backend_name(&self, query: &str, types: &[u32]) -> String {
        let mut h = Sha256::new();
        let (role, path) = self
            .route
            .as_ref()
            .map(|r| (r.role.as_str(), r.search_path.as_str()))
            .unwrap_or_default();
        for part in [role.as_bytes(), path.as_bytes(), query.as_bytes()] {
            h.update(part);
            h.update([0]);
        }
        for t in types {
            h.update(t.to_be_bytes());
        }
        format!("bh_{}", &hex::encode(h.finalize())[..24])
    }

    /// Rewrites a unit for the attached backend, ending with Sync.
    pub(super) fn translate(
        &mut self,
        batch: Vec<FrontendMessage>,
        parsed: &Parsed,
        virtuals: &Virtuals,
    ) -> (BytesMut, Expectations, Vec<String>) {
        let mut expect = Expectations::default();
        let (out, attempted) = self.translate_into(batch, parsed, virtuals, &mut expect, true);
        (out, expect, attempted)
    }

    /// Rewrites messages for the attached backend, queueing what the client is owed into
    /// `expect`: named statements get backend names and are prepared on this connection
    /// when missing, Close of a named statement and the messages the gateway answers itself
    /// are answered in their place. With `sync`, ends with Sync. Returns the backend names
    /// this unit prepares.
    pub(super) fn translate_into(
        &mut self,
        batch: Vec<FrontendMessage>,
        parsed: &Parsed,
        virtuals: &Virtuals,
        expect: &mut Expectations,
        sync: bool,
    ) -> (BytesMut, Vec<String>) {
        let mut out = BytesMut::new();
        let mut attempted: Vec<String> = Vec::new();
        // Taken for the unit and put back after: what the unit prepares is recorded, and
        // forgotten again by `record_prepared` if the unit fails.
        let mut known: HashSet<String> = self
            .backend
            .as_mut()
            .map(|b| std::mem::take(&mut b.conn().prepared))
            .unwrap_or_default();
        for (i, m) in batch.into_iter().enumerate() {
            if matches!(m, FrontendMessage::Flush) {
                to_server::flush(&mut out);
                continue;
            }
            if let Some(replies) = virtuals.answer(i) {
                for r in replies {
                    expect.push(Expect::Synthetic(*r));
                }
                continue;
            }
            match m {
                FrontendMessage::Parse {
                    name,
                    query,
                    param_types,
                } if !name.is_empty() => {
                    let text = self.point_parse(
                        &query,
                        parsed.at(i),
                        &mut out,
                        expect,
                        &mut known,
                        &mut attempted,
                    );
                    let bname = self.backend_name(&text, &param_types);
                    if known.contains(&bname) {
                        expect.push(Expect::Synthetic(crate::expect::Synth::ParseComplete));
                    } else {
                        to_server::parse(&mut out, &bname, &text, &param_types);
                        expect.push(Expect::Relay(Shape::Parse));
                        known.insert(bname.clone());
                        attempted.push(bname.clone());
                    }
                    let checked = parsed.at(i).cloned().unwrap_or_default();
                    self.statements.insert(
                        name,
                        ClientStatement {
                            query,
                            types: param_types,
                            checked,
                            backend_name: bname,
                        },
                    );
                }
                FrontendMessage::Parse {
                    name,
                    query,
                    param_types,
                } => {
                    let text = self.point_parse(
                        &query,
                        parsed.at(i),
                        &mut out,
                        expect,
                        &mut known,
                        &mut attempted,
                    );
                    to_server::parse(&mut out, &name, &text, &param_types);
                    expect.push(Expect::Relay(Shape::Parse));
                }
                FrontendMessage::Bind {
                    portal,
                    statement,
                    param_formats,
                    params,
                    result_formats,
                } => {
                    let stmt = self.ensure_prepared(
                        &statement,
                        &mut out,
                        expect,
                        &mut known,
                        &mut attempted,
                    );
                    let values: Vec<Option<&[u8]>> = params.iter().map(|p| p.as_deref()).collect();
                    to_server::bind(
                        &mut out,
                        &portal,
                        &stmt,
                        &param_formats,
                        &values,
                        &result_formats,
                    );
                    expect.push(Expect::Relay(Shape::Bind));
                }
                FrontendMessage::Describe { kind: b'S', name } => {
                    let stmt =
                        self.ensure_prepared(&name, &mut out, expect, &mut known, &mut attempted);
                    to_server::describe(&mut out, b'S', &stmt);
                    expect.push(Expect::Relay(Shape::DescribeStatement));
                }
                FrontendMessage::Describe { kind, name } => {
                    to_server::describe(&mut out, kind, &name);
                    expect.push(Expect::Relay(Shape::DescribePortal));
                }
                FrontendMessage::Execute { portal, max_rows } => {
                    to_server::execute(&mut out, &portal, max_rows);
                    expect.push(Expect::Relay(Shape::Execute));
                }
                FrontendMessage::Close { kind: b'S', name } if !name.is_empty() => {
                    // The backend statement may serve this client again; keep it prepared.
                    self.statements.remove(&name);
                    expect.push(Expect::Synthetic(crate::expect::Synth::CloseComplete));
                }
                FrontendMessage::Close { kind, name } => {
                    to_server::close(&mut out, kind, &name);
                    expect.push(Expect::Relay(Shape::Close));
                }
                _ => {}
            }
        }
        if let Some(b) = self.backend.as_mut() {
            b.conn().prepared = known;
        }
        if sync {
            to_server::sync(&mut out);
            expect.push(Expect::Relay(Shape::Ready));
        }
        (out, attempted)
    }

    /// The backend name of a client statement, preparing it on this connection first when
    /// it is not there (the injected Parse's reply is swallowed).
    fn ensure_prepared(
        &self,
        client_name: &str,
        out: &mut BytesMut,
        expect: &mut Expectations,
        known: &mut HashSet<String>,
        attempted: &mut Vec<String>,
    ) -> String {
        let Some(s) = self
            .statements
            .get(client_name)
            .filter(|_| !client_name.is_empty())
        else {
            return client_name.to_string();
        };
        // SQL EXECUTEs point at this connection's backend statements, named for its route.
        let text = self.point_parse(&s.query, Some(&s.checked), out, expect, known, attempted);
        let name = match &text {
            std::borrow::Cow::Borrowed(_) => s.backend_name.clone(),
            std::borrow::Cow::Owned(pointed) => self.backend_name(pointed, &s.types),
        };
        if !known.contains(&name) {
            to_server::parse(out, &name, &text, &s.types);
            expect.push(Expect::Swallow(Shape::Parse));
            known.insert(name.clone());
            attempted.push(name.clone());
        }
        name
    }

    /// After a unit: if it failed, some Parse may have failed, so every name it tried is
    /// closed and forgotten (closing a missing statement is not an error).
    pub(super) async fn record_prepared(
        &mut self,
        attempted: Vec<String>,
        status: TransactionStatus,
    ) -> Result<(), GatewayError> {
        if status != TransactionStatus::Failed || attempted.is_empty() {
            return Ok(());
        }
        let Some(b) = self.backend.as_mut() else {
            return Ok(());
        };
        let mut out = BytesMut::new();
        let mut expect = Expectations::default();
        for name in &attempted {
            to_server::close(&mut out, b'S', name);
            b.conn().prepared.remove(name);
            expect.push(Expect::Swallow(Shape::Close));
        }
        to_server::sync(&mut out);
        expect.push(Expect::Swallow(Shape::Ready));
        self.forward(&out, &mut expect, false).await?;
        Ok(())
    }
}

//! One client's session after login: transaction pooling.
//!
//! The client's input is taken one unit at a time (a simple Query, or extended-protocol
//! messages up to Sync). A unit that starts outside a transaction checks out a backend
//! connection for the tenant's placement and opens a transaction with the tenant's context
//! (`BEGIN; SET LOCAL ROLE; SET LOCAL search_path; SET LOCAL bulkhead.tenant_id`). When the
//! unit ends outside a client transaction, the gateway commits (or rolls back) and returns
//! the connection; inside a client transaction the connection stays until COMMIT/ROLLBACK.
//!
//! Invariant: a backend connection goes back to the pool only idle (ReadyForQuery `I`) with
//! nothing unread; a client that vanishes or breaks the protocol takes its connection with
//! it (closed, never reused dirty).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bulkhead_wire::{
    to_client, to_server, BackendMessage, Frame, FrontendMessage, SqlState, TransactionStatus,
};
use bytes::BytesMut;
use sha2::{Digest, Sha256};

use crate::backend::Leased;
use crate::expect::{Expect, Expectations, Shape};
use crate::frontend::{ClientIo, GatewayState};
use crate::guard::{self, Checked, Refusal, TxEffect};
use crate::route::Route;
use crate::GatewayError;

struct ClientStatement {
    query: String,
    types: Vec<u32>,
    checked: Checked,
    backend_name: String,
}

/// A logged-in client.
pub struct Session {
    io: ClientIo,
    state: Arc<GatewayState>,
    route: Route,
    backend: Option<Leased>,
    explicit: bool,
    aborted: bool,
    statements: HashMap<String, ClientStatement>,
    unnamed: Checked,
    cancel: crate::cancel::Slot,
    seen: crate::watch::Seen,
    /// A unit sent in part (after a Flush) and not yet ended by Sync.
    partial: Option<Partial>,
}

/// What a unit sent in part has done so far.
#[derive(Default)]
struct Partial {
    /// A statement of the unit was refused: the rest up to Sync is skipped.
    refused: bool,
    effects: Vec<TxEffect>,
    attempted: Vec<String>,
    expect: Expectations,
}

impl Session {
    /// A session for a client whose route is resolved.
    pub fn new(
        io: ClientIo,
        state: Arc<GatewayState>,
        route: Route,
        cancel: crate::cancel::Slot,
        seen: crate::watch::Seen,
    ) -> Self {
        Self {
            io,
            state,
            route,
            backend: None,
            explicit: false,
            aborted: false,
            statements: HashMap::new(),
            unnamed: Checked::default(),
            cancel,
            seen,
            partial: None,
        }
    }

    /// Serves the client until it leaves.
    pub async fn run(mut self) -> Result<(), GatewayError> {
        let mut batch: Vec<FrontendMessage> = Vec::new();
        loop {
            let frame = match self.io.read_frame().await {
                Ok(f) => f,
                Err(GatewayError::Protocol(e)) => {
                    return self.fatal(GatewayError::Protocol(e)).await
                }
                Err(e) => return Err(e),
            };
            let msg = match FrontendMessage::decode(&frame) {
                Ok(m) => m,
                Err(e) => return self.fatal(GatewayError::Protocol(e)).await,
            };
            match msg {
                FrontendMessage::Terminate => return Ok(()),
                FrontendMessage::Query(sql) => {
                    if !self.refresh_route().await? {
                        continue;
                    }
                    let started = std::time::Instant::now();
                    self.simple(&sql).await?;
                    self.state
                        .metrics
                        .query(&self.route.service, started.elapsed());
                }
                FrontendMessage::Sync => {
                    let unit = std::mem::take(&mut batch);
                    if !self.refresh_route().await? {
                        continue;
                    }
                    let started = std::time::Instant::now();
                    self.extended(unit).await?;
                    self.state
                        .metrics
                        .query(&self.route.service, started.elapsed());
                }
                FrontendMessage::FunctionCall => {
                    self.io.error(
                        "ERROR",
                        SqlState::FeatureNotSupported,
                        "the function-call protocol is not supported",
                    );
                    self.ready(self.status()).await?;
                }
                FrontendMessage::Flush => {
                    batch.push(FrontendMessage::Flush);
                    let unit = std::mem::take(&mut batch);
                    self.flush_partial(unit).await?;
                }
                m @ (FrontendMessage::Parse { .. }
                | FrontendMessage::Bind { .. }
                | FrontendMessage::Describe { .. }
                | FrontendMessage::Execute { .. }
                | FrontendMessage::Close { .. }) => batch.push(m),
                _ => {
                    return self
                        .fatal(GatewayError::Protocol(
                            bulkhead_wire::ProtocolError::Malformed {
                                what: "session",
                                detail: "unexpected message outside COPY or login",
                            },
                        ))
                        .await
                }
            }
        }
    }

    /// Before a unit outside a transaction: if the directory changed for this tenant (or
    /// everything), resolve the route again. A tenant that may no longer be served ends the
    /// session; when the directory cannot answer, the unit is refused and the check retried
    /// next time. Returns whether the unit may run.
    async fn refresh_route(&mut self) -> Result<bool, GatewayError> {
        if self.backend.is_some() {
            // Inside a client transaction: the change applies when it ends.
            return Ok(true);
        }
        let now = self.state.watch.seen(&self.route.tenant);
        if now == self.seen {
            return Ok(true);
        }
        let service: bulkhead_model::ServiceName = match self.route.service.parse() {
            Ok(s) => s,
            Err(_) => return Ok(true),
        };
        let role = self.state.gateway_role().await?.to_string();
        match crate::route::resolve(&self.state.directory, &service, &self.route.tenant, &role)
            .await
        {
            Ok(route) => {
                self.route = route;
                self.seen = now;
                Ok(true)
            }
            Err(e @ GatewayError::NotAuthorized(_)) => {
                tracing::info!(tenant = %self.route.tenant, error = %e, "session ended by a directory change");
                self.fatal(e).await.map(|_| false)
            }
            Err(e) => {
                self.io.error("ERROR", e.sqlstate(), &e.to_string());
                self.ready(self.status()).await?;
                Ok(false)
            }
        }
    }

    async fn fatal(&mut self, e: GatewayError) -> Result<(), GatewayError> {
        self.io.error("FATAL", e.sqlstate(), &e.to_string());
        let _ = self.io.flush().await;
        Err(e)
    }

    fn status(&self) -> TransactionStatus {
        match (self.explicit, self.aborted) {
            (false, _) => TransactionStatus::Idle,
            (true, false) => TransactionStatus::InTransaction,
            (true, true) => TransactionStatus::Failed,
        }
    }

    async fn ready(&mut self, status: TransactionStatus) -> Result<(), GatewayError> {
        to_client::ready_for_query(&mut self.io.wbuf, status);
        self.io.flush().await
    }

    /// Answers a refused unit without touching the backend. Inside a client transaction the
    /// transaction is marked failed, as PostgreSQL would.
    async fn refuse(&mut self, r: Refusal) -> Result<(), GatewayError> {
        self.note_refusal(&r);
        self.io.error("ERROR", r.code, &r.message);
        self.ready(self.status()).await
    }

    /// Logs and counts a refusal; inside a client transaction the transaction is marked
    /// failed, as PostgreSQL would.
    fn note_refusal(&mut self, r: &Refusal) {
        tracing::info!(tenant = %self.route.tenant, rule = r.rule, "statement refused");
        self.state
            .metrics
            .count("bulkhead_gateway_refusals_total", r.rule);
        if self.explicit {
            self.aborted = true;
        }
    }

    /// The Sync that ends a partly sent unit with a refused statement: only the Sync reaches
    /// the backend, so nothing sent after the refusal runs. Inside a client transaction the
    /// transaction stays failed; outside, the gateway's own transaction is rolled back.
    async fn end_refused_partial(&mut self) -> Result<(), GatewayError> {
        self.partial = None;
        if self.backend.is_some() {
            let mut out = BytesMut::new();
            to_server::sync(&mut out);
            let mut expect = Expectations::default();
            expect.push(Expect::Relay(Shape::Ready));
            self.forward(&out, &mut expect, false).await?;
            if !self.explicit {
                self.finish_backend("ROLLBACK").await?;
            }
        }
        self.ready(self.status()).await
    }

    /// Checks the order of transaction control in one unit: BEGIN only first, COMMIT or
    /// ROLLBACK only last. Returns (begins, ends).
    fn shape(effects: &[TxEffect]) -> Result<(bool, bool), Refusal> {
        let n = effects.len();
        for (i, e) in effects.iter().enumerate() {
            let misplaced = match e {
                TxEffect::Begin => i != 0,
                TxEffect::Commit | TxEffect::Rollback => i + 1 != n,
                TxEffect::None => false,
            };
            if misplaced {
                return Err(Refusal {
                    code: SqlState::FeatureNotSupported,
                    rule: "transaction_shape",
                    message: "through the gateway, BEGIN must come first and COMMIT/ROLLBACK last in a query string; send the rest as separate queries".into(),
                });
            }
        }
        let begins = effects.first() == Some(&TxEffect::Begin);
        let ends = matches!(effects.last(), Some(TxEffect::Commit | TxEffect::Rollback)) && n > 0;
        Ok((begins, ends))
    }

    /// Handles COMMIT/ROLLBACK of a transaction the gateway already knows is failed.
    async fn end_aborted(&mut self, effects: &[TxEffect]) -> Result<bool, GatewayError> {
        if !self.aborted {
            return Ok(false);
        }
        if effects.len() == 1 && matches!(effects[0], TxEffect::Commit | TxEffect::Rollback) {
            self.finish_backend("ROLLBACK").await?;
            to_client::command_complete(&mut self.io.wbuf, "ROLLBACK");
            self.explicit = false;
            self.aborted = false;
            self.ready(TransactionStatus::Idle).await?;
        } else {
            self.io.error(
                "ERROR",
                SqlState::InFailedSqlTransaction,
                "current transaction is aborted, commands ignored until end of transaction block",
            );
            self.ready(TransactionStatus::Failed).await?;
        }
        Ok(true)
    }

    async fn simple(&mut self, sql: &str) -> Result<(), GatewayError> {
        let (effects, copy_in) = match guard::inspect(sql) {
            Ok(c) => (c.effects, c.copy_in),
            Err(r) => return self.refuse(r).await,
        };
        if effects.is_empty() && !self.aborted {
            to_client::empty_query_response(&mut self.io.wbuf);
            return self.ready(self.status()).await;
        }
        let Some((begins, ends)) = self.admit(&effects).await? else {
            return Ok(());
        };
        if self.backend.is_none() && !begins && !ends && !copy_in {
            if !self.lease().await? {
                return Ok(());
            }
            let mut out = BytesMut::new();
            to_server::query(&mut out, sql);
            let mut expect = Expectations::default();
            expect.push(Expect::Relay(Shape::Ready));
            let (_, end) = self.pipelined(&out, &mut expect).await?;
            self.release(end).await;
            return self.ready(TransactionStatus::Idle).await;
        }
        let mut rest = sql.to_string();
        if self.backend.is_none() {
            if begins {
                let pieces = pg_query::split_with_parser(sql).unwrap_or_default();
                let first = pieces.first().copied().unwrap_or("BEGIN");
                if !self.attach(first, true).await? {
                    return Ok(());
                }
                rest = pieces[1..].join(";\n");
                if rest.trim().is_empty() {
                    self.explicit = true;
                    return self.ready(TransactionStatus::InTransaction).await;
                }
            } else if !self.attach("BEGIN", false).await? {
                return Ok(());
            }
        }
        let mut out = BytesMut::new();
        to_server::query(&mut out, &rest);
        let mut expect = Expectations::default();
        expect.push(Expect::Relay(Shape::Ready));
        let status = self
            .forward(&out, &mut expect, begins && !self.explicit)
            .await?;
        self.finish_unit(status, begins, ends).await
    }

    /// Checks the text of every Parse in `batch`; the first refusal refuses them all.
    fn check_parses(batch: &[FrontendMessage]) -> Result<HashMap<String, Checked>, Refusal> {
        let mut parsed = HashMap::new();
        for m in batch {
            if let FrontendMessage::Parse { name, query, .. } = m {
                parsed.insert(name.clone(), guard::inspect(query)?);
            }
        }
        Ok(parsed)
    }

    async fn extended(&mut self, batch: Vec<FrontendMessage>) -> Result<(), GatewayError> {
        if self.partial.as_ref().is_some_and(|p| p.refused) {
            return self.end_refused_partial().await;
        }
        let parsed = match Self::check_parses(&batch) {
            Ok(p) => p,
            Err(r) => return self.refuse(r).await,
        };
        let executed = self.executed(&batch, &parsed);
        if let Some(partial) = self.partial.take() {
            return self
                .finish_partial(partial, batch, &parsed, executed.effects)
                .await;
        }
        let (effects, copy_in) = (executed.effects, executed.copy_in);
        let Some((begins, ends)) = self.admit(&effects).await? else {
            return Ok(());
        };
        if self.backend.is_none() && !begins && !ends && !copy_in {
            if !self.lease().await? {
                return Ok(());
            }
            let (out, mut expect, attempted) = self.translate(batch, &parsed);
            let (unit, end) = self.pipelined(&out, &mut expect).await?;
            self.record_prepared(attempted, unit).await?;
            self.release(end).await;
            return self.ready(TransactionStatus::Idle).await;
        }
        if self.backend.is_none() && !self.attach("BEGIN", false).await? {
            return Ok(());
        }
        let (out, mut expect, attempted) = self.translate(batch, &parsed);
        let status = self
            .forward(&out, &mut expect, begins && !self.explicit)
            .await?;
        self.record_prepared(attempted, status).await?;
        self.finish_unit(status, begins, ends).await
    }

    /// Flush without Sync: the client wants the replies to what it sent so far before it
    /// sends more. Sends it on an attached backend (opening the tenant's transaction first
    /// if needed) and relays the replies; the unit ends at the next Sync.
    async fn flush_partial(&mut self, batch: Vec<FrontendMessage>) -> Result<(), GatewayError> {
        if self.partial.as_ref().is_some_and(|p| p.refused) {
            // Still skipping to Sync after a refusal: nothing is sent.
            return Ok(());
        }
        let parsed = match Self::check_parses(&batch) {
            Ok(p) => p,
            Err(r) => {
                // Like an error inside the unit: answered now, and everything the client sends
                // until its Sync is skipped (never forwarded).
                self.note_refusal(&r);
                self.io.error("ERROR", r.code, &r.message);
                let mut partial = self.partial.take().unwrap_or_default();
                partial.refused = true;
                self.partial = Some(partial);
                return self.io.flush().await;
            }
        };
        let executed = self.executed(&batch, &parsed);
        if self.partial.is_none() && self.backend.is_none() && !self.attach("BEGIN", false).await? {
            return Ok(());
        }
        let mut partial = self.partial.take().unwrap_or_default();
        partial.effects.extend(executed.effects);
        let (out, attempted) = self.translate_into(batch, &parsed, &mut partial.expect, false);
        partial.attempted.extend(attempted);
        if let Err(e) = self.send_backend(&out).await {
            self.backend_lost(e).await?;
            self.partial = Some(partial);
            return self.io.flush().await;
        }
        // If the backend is lost meanwhile (reported to the client), the partial unit is kept
        // so that the client's Sync is answered without running the rest anywhere else.
        self.relay_until(&mut partial.expect, false, true).await?;
        self.partial = Some(partial);
        self.io.flush().await
    }

    /// The Sync that ends a unit sent in part.
    async fn finish_partial(
        &mut self,
        mut partial: Partial,
        rest: Vec<FrontendMessage>,
        parsed: &HashMap<String, Checked>,
        effects: Vec<TxEffect>,
    ) -> Result<(), GatewayError> {
        if self.backend.is_none() {
            // The backend was lost meanwhile: already reported.
            return self.ready(TransactionStatus::Idle).await;
        }
        partial.effects.extend(effects);
        // Misplaced transaction control was already sent: judge only what it did.
        let (begins, ends) = Self::shape(&partial.effects).unwrap_or_default();
        let (out, attempted) = self.translate_into(rest, parsed, &mut partial.expect, true);
        partial.attempted.extend(attempted);
        let status = self
            .forward(&out, &mut partial.expect, begins && !self.explicit)
            .await?;
        self.record_prepared(partial.attempted, status).await?;
        self.finish_unit(status, begins, ends).await
    }

    /// After a unit: the statements it prepared exist on this connection, unless the unit
    /// failed, in which case some Parse may have failed and every name it tried is closed
    /// and forgotten (closing a missing statement is not an error).
    async fn record_prepared(
        &mut self,
        attempted: Vec<String>,
        status: TransactionStatus,
    ) -> Result<(), GatewayError> {
        let Some(b) = self.backend.as_mut() else {
            return Ok(());
        };
        if status != TransactionStatus::Failed {
            b.conn().prepared.extend(attempted);
            return Ok(());
        }
        if attempted.is_empty() {
            return Ok(());
        }
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

    /// One round trip for a unit outside any transaction: the context prologue, the unit and
    /// COMMIT go out in one write. If the prologue failed, its transaction is aborted and the
    /// unit's statements fail with 25P02 instead of running without context; if the unit
    /// failed, COMMIT rolls back. Returns the unit's status and the status after COMMIT.
    async fn pipelined(
        &mut self,
        unit: &[u8],
        expect: &mut Expectations,
    ) -> Result<(TransactionStatus, TransactionStatus), GatewayError> {
        let mut out = BytesMut::with_capacity(unit.len() + 256);
        to_server::query(&mut out, &self.route.prologue("BEGIN"));
        out.extend_from_slice(unit);
        to_server::query(&mut out, "COMMIT");
        if let Err(e) = self.send_backend(&out).await {
            let s = self.backend_lost(e).await?;
            return Ok((s, s));
        }
        let mut prologue = Expectations::default();
        prologue.push(Expect::Swallow(Shape::Ready));
        let first = self.relay(&mut prologue, false).await?;
        if self.backend.is_none() {
            return Ok((first, first));
        }
        if first != TransactionStatus::InTransaction {
            tracing::error!(tenant = %self.route.tenant, "setting the tenant context failed");
        }
        let unit_status = self.relay(expect, false).await?;
        if self.backend.is_none() {
            return Ok((unit_status, unit_status));
        }
        let mut commit = Expectations::default();
        commit.push(Expect::Swallow(Shape::Ready));
        let end = self.relay(&mut commit, false).await?;
        Ok((unit_status, end))
    }

    /// Decides whether a checked unit may run: answers it when the client's transaction is
    /// already failed or when its transaction control is out of order. Returns (begins, ends)
    /// when it may run, None when the client has been answered.
    async fn admit(&mut self, effects: &[TxEffect]) -> Result<Option<(bool, bool)>, GatewayError> {
        if self.end_aborted(effects).await? {
            return Ok(None);
        }
        match Self::shape(effects) {
            Ok(s) => Ok(Some(s)),
            Err(r) => {
                self.refuse(r).await?;
                Ok(None)
            }
        }
    }

    /// Leases a backend connection for this session and points its cancel key at it;
    /// false when the client was answered with why not.
    async fn lease(&mut self) -> Result<bool, GatewayError> {
        let Some(leased) = self.checkout().await? else {
            return Ok(false);
        };
        self.backend = Some(leased);
        self.arm_cancel().await;
        Ok(true)
    }

    /// Takes a backend connection for the tenant, or answers the client with why not.
    async fn checkout(&mut self) -> Result<Option<Leased>, GatewayError> {
        match self
            .state
            .pools
            .checkout(&self.route.cluster, &self.route.target)
            .await
        {
            Ok(l) => Ok(Some(l)),
            Err(e) => {
                if matches!(e, GatewayError::PoolTimeout) {
                    self.state.metrics.checkout_timeout();
                }
                tracing::warn!(tenant = %self.route.tenant, error = %e, "no backend connection");
                self.io.error("ERROR", e.sqlstate(), &e.to_string());
                self.ready(self.status()).await?;
                Ok(None)
            }
        }
    }

    /// What the statements this unit executes do, in order: their transaction effects and
    /// whether one of them is COPY FROM STDIN.
    fn executed(
        &mut self,
        batch: &[FrontendMessage],
        parsed: &HashMap<String, Checked>,
    ) -> Checked {
        let mut portals: HashMap<&str, &str> = HashMap::new();
        let mut out = Checked::default();
        for m in batch {
            match m {
                FrontendMessage::Parse { name, .. } if name.is_empty() => {
                    self.unnamed = parsed.get("").cloned().unwrap_or_default();
                }
                FrontendMessage::Bind {
                    portal, statement, ..
                } => {
                    portals.insert(portal, statement);
                }
                FrontendMessage::Execute { portal, .. } => {
                    let stmt = portals.get(portal.as_str()).copied().unwrap_or("");
                    let c = match parsed.get(stmt) {
                        Some(c) => c.clone(),
                        None if stmt.is_empty() => self.unnamed.clone(),
                        None => self
                            .statements
                            .get(stmt)
                            .map(|s| s.checked.clone())
                            .unwrap_or_default(),
                    };
                    out.effects.extend(c.effects);
                    out.copy_in |= c.copy_in;
                }
                _ => {}
            }
        }
        out
    }

    fn backend_name(&self, query: &str, types: &[u32]) -> String {
        let mut h = Sha256::new();
        for part in [
            self.route.role.as_bytes(),
            self.route.search_path.as_bytes(),
            query.as_bytes(),
        ] {
            h.update(part);
            h.update([0]);
        }
        for t in types {
            h.update(t.to_be_bytes());
        }
        format!("bh_{}", &hex::encode(h.finalize())[..24])
    }

    /// Rewrites a unit for the backend: named statements get backend names keyed by role,
    /// search_path, text and types (never shared across tenants), are prepared on this
    /// connection when missing, and Close of a named statement is answered by the gateway.
    fn translate(
        &mut self,
        batch: Vec<FrontendMessage>,
        parsed: &HashMap<String, Checked>,
    ) -> (BytesMut, Expectations, Vec<String>) {
        let mut expect = Expectations::default();
        let (out, attempted) = self.translate_into(batch, parsed, &mut expect, true);
        (out, expect, attempted)
    }

    /// Like [`Self::translate`], queueing into `expect`; with `sync`, ends with Sync.
    fn translate_into(
        &mut self,
        batch: Vec<FrontendMessage>,
        parsed: &HashMap<String, Checked>,
        expect: &mut Expectations,
        sync: bool,
    ) -> (BytesMut, Vec<String>) {
        let mut out = BytesMut::new();
        let mut attempted: Vec<String> = Vec::new();
        let mut known: HashSet<String> = self
            .backend
            .as_mut()
            .map(|b| b.conn().prepared.clone())
            .unwrap_or_default();
        for m in batch {
            match m {
                FrontendMessage::Parse {
                    name,
                    query,
                    param_types,
                } if !name.is_empty() => {
                    let bname = self.backend_name(&query, &param_types);
                    if known.contains(&bname) {
                        expect.push(Expect::Synthetic(b'1'));
                    } else {
                        to_server::parse(&mut out, &bname, &query, &param_types);
                        expect.push(Expect::Relay(Shape::Parse));
                        known.insert(bname.clone());
                        attempted.push(bname.clone());
                    }
                    let checked = parsed.get(&name).cloned().unwrap_or_default();
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
                    to_server::parse(&mut out, &name, &query, &param_types);
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
                    expect.push(Expect::Synthetic(b'3'));
                }
                FrontendMessage::Close { kind, name } => {
                    to_server::close(&mut out, kind, &name);
                    expect.push(Expect::Relay(Shape::Close));
                }
                FrontendMessage::Flush => to_server::flush(&mut out),
                _ => {}
            }
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
        if !known.contains(&s.backend_name) {
            to_server::parse(out, &s.backend_name, &s.query, &s.types);
            expect.push(Expect::Swallow(Shape::Parse));
            known.insert(s.backend_name.clone());
            attempted.push(s.backend_name.clone());
        }
        s.backend_name.clone()
    }

    /// Checks out a connection and opens a transaction with the tenant's context. With
    /// `relay_begin`, the client's own BEGIN opened it and its CommandComplete is relayed.
    /// Returns false when the client was answered with an error instead.
    async fn attach(&mut self, begin: &str, relay_begin: bool) -> Result<bool, GatewayError> {
        let leased = self
            .state
            .pools
            .checkout(&self.route.cluster, &self.route.target)
            .await;
        let leased = match leased {
            Ok(l) => l,
            Err(e) => {
                if matches!(e, GatewayError::PoolTimeout) {
                    self.state.metrics.checkout_timeout();
                }
                tracing::warn!(tenant = %self.route.tenant, error = %e, "no backend connection");
                self.io.error("ERROR", e.sqlstate(), &e.to_string());
                self.ready(self.status()).await?;
                return Ok(false);
            }
        };
        self.backend = Some(leased);
        self.arm_cancel().await;
        let mut out = BytesMut::new();
        to_server::query(&mut out, &self.route.prologue(begin));
        let sent = match self.backend.as_mut() {
            Some(b) => b.conn().send(&out).await,
            None => Err(GatewayError::Backend("no backend".into())),
        };
        if let Err(e) = sent {
            self.backend_lost(e).await?;
            self.ready(TransactionStatus::Idle).await?;
            return Ok(false);
        }
        let mut first = relay_begin;
        loop {
            let frame = match self.backend_recv().await {
                Ok(f) => f,
                Err(e) => {
                    self.backend_lost(e).await?;
                    self.ready(TransactionStatus::Idle).await?;
                    return Ok(false);
                }
            };
            match frame.tag {
                b'C' if first => {
                    first = false;
                    self.write_frame(&frame);
                }
                b'E' => {
                    // The context could not be set: never run the client's statement.
                    tracing::error!(tenant = %self.route.tenant, "setting the tenant context failed");
                    self.write_frame(&frame);
                }
                b'Z' => {
                    let status = ready_status(&frame)?;
                    if status != TransactionStatus::InTransaction {
                        self.drop_backend();
                        self.ready(TransactionStatus::Idle).await?;
                        return Ok(false);
                    }
                    return Ok(true);
                }
                _ => {}
            }
        }
    }

    async fn backend_recv(&mut self) -> Result<Frame, GatewayError> {
        let Some(b) = self.backend.as_mut() else {
            return Err(GatewayError::Backend("no backend".into()));
        };
        b.conn().recv().await
    }

    fn drop_backend(&mut self) {
        self.backend = None;
    }

    /// Points this session's cancel key at the backend it now uses.
    async fn arm_cancel(&mut self) {
        let target = self.backend.as_mut().map(|b| {
            let key = b.conn().key.clone();
            crate::cancel::CancelTarget {
                host: self.route.target.host.clone(),
                port: self.route.target.port,
                pid: key.0,
                secret: key.1,
            }
        });
        *self.cancel.lock().await = target;
    }

    /// Stops cancels from reaching the backend (before it goes back to the pool).
    async fn disarm_cancel(&mut self) {
        *self.cancel.lock().await = None;
    }

    fn write_frame(&mut self, frame: &Frame) {
        let w = &mut self.io.wbuf;
        w.extend_from_slice(&[frame.tag]);
        w.extend_from_slice(&((frame.body.len() + 4) as i32).to_be_bytes());
        w.extend_from_slice(&frame.body);
    }

    /// Sends `out` to the backend and relays its replies as `expect` says, until
    /// ReadyForQuery, whose status is returned (not relayed). With `mute_begin_warning`, the
    /// warning a client's BEGIN inside the gateway's transaction causes is dropped.
    async fn forward(
        &mut self,
        out: &[u8],
        expect: &mut Expectations,
        mute_begin_warning: bool,
    ) -> Result<TransactionStatus, GatewayError> {
        if let Err(e) = self.send_backend(out).await {
            return self.backend_lost(e).await;
        }
        self.relay(expect, mute_begin_warning).await
    }

    async fn send_backend(&mut self, out: &[u8]) -> Result<(), GatewayError> {
        match self.backend.as_mut() {
            Some(b) => b.conn().send(out).await,
            None => Err(GatewayError::Backend("no backend".into())),
        }
    }

    /// Relays the backend's replies as `expect` says until ReadyForQuery, whose status is
    /// returned (not relayed).
    async fn relay(
        &mut self,
        expect: &mut Expectations,
        mute_begin_warning: bool,
    ) -> Result<TransactionStatus, GatewayError> {
        self.relay_until(expect, mute_begin_warning, false).await
    }

    /// [`Self::relay`], or with `until_drained` (after a Flush, no Sync sent) until every
    /// owed reply has arrived; the transaction is then still open.
    async fn relay_until(
        &mut self,
        expect: &mut Expectations,
        mute_begin_warning: bool,
        until_drained: bool,
    ) -> Result<TransactionStatus, GatewayError> {
        loop {
            if until_drained && expect.drained() {
                return Ok(TransactionStatus::InTransaction);
            }
            let frame = match self.backend_recv().await {
                Ok(f) => f,
                Err(e) => return self.backend_lost(e).await,
            };
            if frame.tag == b'E' && is_fatal(&frame) {
                // The server is ending that backend session; the client's session goes on.
                return self
                    .backend_lost(GatewayError::Backend(
                        "the server terminated the connection".into(),
                    ))
                    .await;
            }
            let d = expect.on_backend(frame.tag);
            for t in d.before {
                empty_message(&mut self.io.wbuf, t);
            }
            if frame.tag == b'Z' {
                return ready_status(&frame);
            }
            let muted = mute_begin_warning
                && frame.tag == b'N'
                && matches!(BackendMessage::decode(&frame), Ok(BackendMessage::Notice(f)) if f.code() == Some("25001"));
            if d.relay && !muted {
                self.write_frame(&frame);
            }
            for t in d.after {
                empty_message(&mut self.io.wbuf, t);
            }
            if frame.tag == b'G' {
                let extended = expect.waits_for_sync();
                self.copy_in(extended).await?;
            }
            if self.io.wbuf.len() > 64 * 1024 {
                self.io.flush().await?;
            }
        }
    }

    /// COPY FROM STDIN: forwards the client's data until CopyDone or CopyFail. In the
    /// extended protocol the server ignored the Sync that came before the data, so the
    /// client's next Sync is forwarded too: it is what ends the unit.
    async fn copy_in(&mut self, extended: bool) -> Result<(), GatewayError> {
        self.io.flush().await?;
        let mut copying = true;
        loop {
            let frame = self.io.read_frame().await?;
            if !copying {
                if frame.tag != b'S' {
                    return Err(GatewayError::Protocol(
                        bulkhead_wire::ProtocolError::Malformed {
                            what: "COPY",
                            detail: "expected Sync after CopyDone",
                        },
                    ));
                }
                let bytes = frame.to_bytes();
                return self.send_backend(&bytes).await;
            }
            let done = matches!(frame.tag, b'c' | b'f');
            if !matches!(frame.tag, b'd' | b'c' | b'f' | b'H' | b'S') {
                return Err(GatewayError::Protocol(
                    bulkhead_wire::ProtocolError::Malformed {
                        what: "COPY",
                        detail: "unexpected message during COPY FROM STDIN",
                    },
                ));
            }
            let bytes = frame.to_bytes();
            self.send_backend(&bytes).await?;
            if done {
                if !extended {
                    return Ok(());
                }
                copying = false;
            }
        }
    }

    /// The backend failed mid-unit: the transaction is gone. Tell the client and go on.
    async fn backend_lost(&mut self, e: GatewayError) -> Result<TransactionStatus, GatewayError> {
        tracing::warn!(tenant = %self.route.tenant, error = %e, "backend connection lost");
        self.drop_backend();
        self.explicit = false;
        self.aborted = false;
        self.io.error(
            "ERROR",
            SqlState::ConnectionFailure,
            "the connection to the tenant's database was lost; the transaction was rolled back",
        );
        Ok(TransactionStatus::Idle)
    }

    /// Sends gateway-internal messages and swallows their replies, except errors.
    async fn internal(
        &mut self,
        out: &[u8],
        expect: &mut Expectations,
    ) -> Result<TransactionStatus, GatewayError> {
        self.forward(out, expect, false).await
    }

    /// Ends the backend transaction with `sql` (COMMIT or ROLLBACK), relaying only an error,
    /// and gives the connection back when it is idle.
    async fn finish_backend(&mut self, sql: &str) -> Result<TransactionStatus, GatewayError> {
        if self.backend.is_none() {
            return Ok(TransactionStatus::Idle);
        }
        let mut out = BytesMut::new();
        to_server::query(&mut out, sql);
        let mut expect = Expectations::default();
        expect.push(Expect::Swallow(Shape::Ready));
        let status = self.internal(&out, &mut expect).await?;
        self.release(status).await;
        Ok(status)
    }

    async fn release(&mut self, status: TransactionStatus) {
        self.disarm_cancel().await;
        if let Some(b) = self.backend.take() {
            if status == TransactionStatus::Idle {
                b.give_back();
            }
        }
    }

    async fn finish_unit(
        &mut self,
        status: TransactionStatus,
        begins: bool,
        ends: bool,
    ) -> Result<(), GatewayError> {
        if self.backend.is_none() {
            // Lost mid-unit: already reported.
            return self.ready(TransactionStatus::Idle).await;
        }
        if begins {
            self.explicit = true;
        }
        if ends || status == TransactionStatus::Idle {
            self.explicit = false;
            self.aborted = false;
            if status == TransactionStatus::Idle {
                self.release(status).await;
            } else {
                self.finish_backend("ROLLBACK").await?;
            }
            return self.ready(TransactionStatus::Idle).await;
        }
        if !self.explicit {
            let end = if status == TransactionStatus::Failed {
                "ROLLBACK"
            } else {
                "COMMIT"
            };
            self.finish_backend(end).await?;
            return self.ready(TransactionStatus::Idle).await;
        }
        self.aborted = status == TransactionStatus::Failed;
        self.ready(status).await
    }
}

fn ready_status(frame: &Frame) -> Result<TransactionStatus, GatewayError> {
    match BackendMessage::decode(frame)? {
        BackendMessage::ReadyForQuery(s) => Ok(s),
        _ => Err(GatewayError::Backend("expected ReadyForQuery".into())),
    }
}

fn is_fatal(frame: &Frame) -> bool {
    matches!(BackendMessage::decode(frame), Ok(BackendMessage::Error(f)) if matches!(f.severity(), Some("FATAL" | "PANIC")))
}

fn empty_message(buf: &mut BytesMut, tag: u8) {
    buf.extend_from_slice(&[tag, 0, 0, 0, 4]);
}

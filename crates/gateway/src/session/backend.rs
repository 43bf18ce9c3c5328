//! The session's side of its backend connection: checking one out for the transaction's
//! tenant, opening the transaction with the tenant's context, relaying replies in the order
//! the client is owed them, COPY, and giving the connection back only when it is idle.

use bulkhead_wire::{to_server, BackendMessage, Frame, SqlState, TransactionStatus};
use bytes::BytesMut;

use super::Session;
use crate::backend::ServerConn;
use crate::expect::{Expect, Expectations, Shape};
use crate::route::Opening;
use crate::GatewayError;

impl Session {
    /// Checks out a backend connection for the tenant of the transaction about to start and
    /// points the client's cancel key at it; false when the client was answered with why
    /// not.
    pub(super) async fn lease(&mut self, tenant_free: bool) -> Result<bool, GatewayError> {
        match self.lease_or_why(tenant_free).await? {
            Ok(()) => Ok(true),
            Err(e) => {
                let r = super::context::refusal_of(e);
                self.answer_error(r.code, &r.message).await?;
                Ok(false)
            }
        }
    }

    /// [`Self::lease`], leaving the answer to a failure to the caller (a unit sent in part
    /// answers it without ReadyForQuery, which belongs to its Sync).
    pub(super) async fn lease_or_why(
        &mut self,
        tenant_free: bool,
    ) -> Result<Result<(), GatewayError>, GatewayError> {
        let route = match self.transaction_route(tenant_free).await? {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        // The catalog route has no tenant, so no tenant's limits: it runs only catalog reads.
        let pass = match route.tenant.map(|t| self.admit(&route, t)).transpose() {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        // Preferred: a connection that already holds the tenant's context and the client's
        // settings (then nothing is switched or applied); for a schema tenant then one that
        // has already run in its schema, or of its group (see `backend/affinity.rs`).
        let settings = &self.settings;
        let schema = route.schema_affinity();
        let rank = |c: &ServerConn| match schema {
            _ if c.held.holds(&route) && settings.held_by(&c.settings) => 3,
            Some((key, _)) if c.warmth.has(key) => 2,
            Some((_, group)) if c.group == group => 1,
            _ => 0,
        };
        match self
            .state
            .pools
            .checkout(&route.cluster, &route.target, rank)
            .await
        {
            Ok(mut leased) => {
                if let Some((key, _)) = schema {
                    leased.conn().warmth.saw(key);
                }
                self.backend = Some(leased);
                self.plan_sync();
                self.usage_leased();
                if let (Some(t), true) = (route.tenant, self.logged_tenant != route.tenant) {
                    self.logged_tenant = Some(t);
                    tracing::Span::current().record("tenant", tracing::field::display(t));
                }
                self.pass = pass;
                self.route = Some(route);
                self.arm_cancel().await;
                Ok(Ok(()))
            }
            Err(e) => {
                if matches!(e, GatewayError::PoolTimeout) {
                    self.state.metrics.checkout_timeout();
                }
                tracing::warn!(tenant = ?route.tenant, error = %e, "no backend connection");
                Ok(Err(e))
            }
        }
    }

    /// What opens the transaction on the leased connection before the client's first
    /// statement: `begin` (None for a transaction the client did not open) and, when the
    /// connection does not hold the tenant's context, the switch to it (see
    /// [`crate::backend::HeldContext`]). None when nothing needs to be sent: an implicit
    /// transaction on a connection that holds the context runs the client's statements as
    /// they are.
    pub(super) fn opening(&mut self, begin: Option<String>) -> Option<Opening> {
        let route = self.route.clone()?;
        let conn = self.backend.as_mut()?.conn();
        if conn.held.holds(&route) {
            return begin.map(|b| route.opening(&b, None));
        }
        let signer = conn.signer.clone();
        let holds = conn
            .held
            .role_and_path()
            .map(|(r, p)| (r.to_string(), p.to_string()));
        let token = conn
            .held
            .switch_to(&route, route.session_role(signer.as_deref()));
        let switch = crate::route::Switch {
            token: &token,
            signer: signer.as_deref(),
            pid: conn.key.0,
            holds: holds.as_ref().map(|(r, p)| (r.as_str(), p.as_str())),
        };
        Some(route.opening(begin.as_deref().unwrap_or("BEGIN"), Some(switch)))
    }

    /// Opens the transaction on the leased connection: `opening`, then `unit`, then COMMIT
    /// when asked, all in one write; relays the opening's replies (only an error). If the
    /// context cannot be set, the transaction is aborted, so the unit's statements fail
    /// instead of running without it. False when the backend was lost (reported to the
    /// client).
    pub(super) async fn open_with(
        &mut self,
        opening: &Opening,
        unit: &[u8],
        commit: bool,
    ) -> Result<bool, GatewayError> {
        let mut out = BytesMut::with_capacity(unit.len() + opening.sql.len() + 32);
        to_server::query(&mut out, &opening.sql);
        out.extend_from_slice(unit);
        if commit {
            to_server::query(&mut out, "COMMIT");
        }
        if let Err(e) = self.send_backend(&out).await {
            self.backend_lost(e).await?;
            return Ok(false);
        }
        let mut replies = Expectations::default();
        replies.push(Expect::Swallow(Shape::Ready));
        let status = self.relay(&mut replies, false).await?;
        if self.backend.is_none() {
            return Ok(false);
        }
        if status != TransactionStatus::InTransaction {
            tracing::error!(tenant = ?self.ctx.tenant(), "setting the tenant context failed");
        }
        Ok(true)
    }

    /// Opens the transaction and runs a simple-protocol unit in one query string: the
    /// transaction's opening, the client's statements (`count` of them, text checked by the
    /// guard), and COMMIT when asked. PostgreSQL answers it with one flush, and a failure in
    /// the opening skips the rest of the string, so the client's statements never run without
    /// their context. Returns the status at the end, or None when the backend was lost
    /// (reported to the client).
    pub(super) async fn open_simple(
        &mut self,
        opening: &Opening,
        sql: &str,
        count: usize,
        commit: bool,
        prepares: &[String],
    ) -> Result<Option<TransactionStatus>, GatewayError> {
        let mut text = String::with_capacity(opening.sql.len() + sql.len() + 16);
        text.push_str(&opening.sql);
        // A newline first: a client's trailing line comment ends there.
        text.push_str(";\n");
        text.push_str(sql);
        let mut expect = Expectations::default();
        // The opening, and the SQL PREPAREs `sql` starts with (see `sql_prepared.rs`).
        for _ in 0..opening.statements + prepares.len() {
            expect.push(Expect::Swallow(Shape::Execute));
        }
        if commit {
            text.push_str("\n;COMMIT");
            for _ in 0..count {
                expect.push(Expect::Relay(Shape::Execute));
            }
            expect.push(Expect::Swallow(Shape::Execute));
        }
        expect.push(Expect::Relay(Shape::Ready));
        let mut out = BytesMut::with_capacity(text.len() + 8);
        to_server::query(&mut out, &text);
        let status = self.forward(&out, &mut expect, false).await?;
        if self.backend.is_none() {
            return Ok(None);
        }
        self.record_sql_prepared(prepares, &expect, opening.statements);
        Ok(Some(status))
    }

    /// Points this session's cancel key at the backend it now uses.
    async fn arm_cancel(&mut self) {
        let target = match (self.backend.as_mut(), self.route.as_ref()) {
            (Some(b), Some(route)) => {
                let key = b.conn().key.clone();
                Some(crate::cancel::CancelTarget {
                    server: route.target.clone(),
                    pid: key.0,
                    secret: key.1,
                })
            }
            _ => None,
        };
        *self.cancel.lock().await = target;
    }

    /// Stops cancels from reaching the backend (before it goes back to the pool).
    async fn disarm_cancel(&mut self) {
        *self.cancel.lock().await = None;
    }

    /// A ParameterStatus that tells what context the connection holds (never relayed: the
    /// client's `application_name` is its own, answered at login). True when taken.
    fn held_parameter(&mut self, frame: &Frame) -> bool {
        let Ok(BackendMessage::ParameterStatus(name, value)) = BackendMessage::decode(frame) else {
            return false;
        };
        if name != "application_name" {
            return false;
        }
        if let Some(b) = self.backend.as_mut() {
            b.conn().held.on_parameter(&name, &value);
        }
        true
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
    pub(super) async fn forward(
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

    pub(super) async fn send_backend(&mut self, out: &[u8]) -> Result<(), GatewayError> {
        self.arm_deadline();
        let sync = self.pending_sync.take();
        match self.backend.as_mut() {
            Some(b) => match sync {
                // The client's settings go first, in the same write.
                Some(mut sync) => {
                    sync.extend_from_slice(out);
                    b.conn().send(&sync).await
                }
                None => b.conn().send(out).await,
            },
            None => Err(GatewayError::Backend("no backend".into())),
        }
    }

    /// Relays the backend's replies as `expect` says until ReadyForQuery, whose status is
    /// returned (not relayed).
    pub(super) async fn relay(
        &mut self,
        expect: &mut Expectations,
        mute_begin_warning: bool,
    ) -> Result<TransactionStatus, GatewayError> {
        self.relay_until(expect, mute_begin_warning, false).await
    }

    /// [`Self::relay`], or with `until_drained` (after a Flush, no Sync sent) until every
    /// owed reply has arrived; the transaction is then still open.
    pub(super) async fn relay_until(
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
            if self.sync_reply(&frame) {
                continue;
            }
            if frame.tag == b'S' && self.held_parameter(&frame) {
                continue;
            }
            if frame.tag == b'E' && is_fatal(&frame) {
                // The server is ending that backend session; the client's session goes on.
                return self
                    .backend_lost(GatewayError::Backend(
                        "the server terminated the connection".into(),
                    ))
                    .await;
            }
            let d = expect.on_backend(frame.tag);
            if self.limit_error(&frame).is_some() {
                // Said as the limit it hit, in its place.
                for s in d.before.iter().chain(&d.after) {
                    s.write(&mut self.io.wbuf, &self.settings.app_name);
                }
                continue;
            }
            for s in d.before {
                s.write(&mut self.io.wbuf, &self.settings.app_name);
            }
            if frame.tag == b'Z' {
                let status = ready_status(&frame)?;
                if status == TransactionStatus::Idle {
                    if let Some(b) = self.backend.as_mut() {
                        b.conn().held.settle();
                    }
                }
                return Ok(status);
            }
            let muted = mute_begin_warning
                && frame.tag == b'N'
                && matches!(BackendMessage::decode(&frame), Ok(BackendMessage::Notice(f)) if f.code() == Some("25001"));
            if d.relay && !muted {
                self.count_reply(&frame);
                self.write_frame(&frame);
            }
            for s in d.after {
                s.write(&mut self.io.wbuf, &self.settings.app_name);
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
    pub(super) async fn backend_lost(
        &mut self,
        e: GatewayError,
    ) -> Result<TransactionStatus, GatewayError> {
        tracing::warn!(tenant = ?self.ctx.tenant(), error = %e, "backend connection lost");
        // What the transaction changed was lost with it.
        self.settings.touched.clear();
        self.settings.syncing = false;
        self.pending_sync = None;
        if self.backend.is_some() {
            self.meter_transaction();
        }
        self.backend = None;
        self.pass = None;
        self.limit_cancelled = false;
        self.disarm_cancel().await;
        self.transaction_ended();
        self.io.error(
            "ERROR",
            SqlState::ConnectionFailure,
            "the connection to the tenant's database was lost; the transaction was rolled back",
        );
        Ok(TransactionStatus::Idle)
    }

    /// Ends the backend transaction with `sql` (COMMIT or ROLLBACK), relaying only an error,
    /// and gives the connection back when it is idle.
    pub(super) async fn finish_backend(
        &mut self,
        sql: &str,
    ) -> Result<TransactionStatus, GatewayError> {
        if self.backend.is_none() {
            return Ok(TransactionStatus::Idle);
        }
        let mut out = BytesMut::new();
        to_server::query(&mut out, sql);
        let mut expect = Expectations::default();
        expect.push(Expect::Swallow(Shape::Ready));
        let status = self.forward(&out, &mut expect, false).await?;
        self.release(status).await;
        Ok(status)
    }

    /// Gives the connection back if it is idle (closes it otherwise).
    pub(super) async fn release(&mut self, status: TransactionStatus) {
        self.disarm_cancel().await;
        self.pass = None;
        let cancelled = std::mem::take(&mut self.limit_cancelled);
        if self.backend.is_some() {
            self.meter_transaction();
        }
        let reusable =
            status == TransactionStatus::Idle && !cancelled && self.read_settings_back().await;
        self.settings.touched.clear();
        self.settings.syncing = false;
        self.pending_sync = None;
        if let Some(b) = self.backend.take() {
            // After a limit's cancel the connection is closed: the cancel might still land.
            if reusable {
                b.give_back();
            }
        }
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

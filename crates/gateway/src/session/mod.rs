//! One client's session after login: transaction pooling.
//!
//! The client's input is taken one unit at a time (a simple Query, or extended-protocol
//! messages up to Sync). Transaction control and the tenant context are answered by the
//! gateway itself where it can: a client's BEGIN is remembered, not sent; `SET [LOCAL]
//! bulkhead.tenant|token` chooses the tenant (see `context.rs`). The first statement that
//! needs the database checks out a backend connection for the tenant's placement and goes
//! out in the same write as the transaction's opening (`BEGIN; SET LOCAL ROLE; SET LOCAL
//! search_path; SET LOCAL bulkhead.tenant_id`). When the unit ends outside a client
//! transaction, the gateway commits (or rolls back) and returns the connection; inside a
//! client transaction the connection stays until COMMIT/ROLLBACK.
//!
//! Invariant: a backend connection goes back to the pool only idle (ReadyForQuery `I`) with
//! nothing unread; a client that vanishes or breaks the protocol takes its connection with
//! it (closed, never reused dirty).

mod backend;
mod context;
mod limit;
mod prepared;
mod rules;
mod settings;
mod sql_prepared;
mod usage;
mod virtuals;

pub(crate) use settings::ClientSettings;

use std::collections::HashMap;
use std::sync::Arc;

use bulkhead_wire::{to_client, FrontendMessage, SqlState, TransactionStatus};
use bytes::BytesMut;

use crate::auth::Identity;
use crate::backend::Leased;
use crate::expect::{Expect, Expectations, Shape, Synth};
use crate::frontend::{ClientIo, GatewayState};
use crate::guard::{self, Checked, Refusal, SessionOp, TxEffect};
use crate::route::Route;
use crate::GatewayError;
use context::TenantContext;
use prepared::ClientStatement;

/// A logged-in client.
pub struct Session {
    io: ClientIo,
    state: Arc<GatewayState>,
    /// The service (a metrics label).
    service: String,
    /// Its query statistics.
    stats: Arc<crate::metrics::ServiceStats>,
    ctx: TenantContext,
    /// The route of the transaction that holds `backend`.
    route: Option<Arc<Route>>,
    /// The last route resolved, and the directory's change count then.
    route_memo: Option<(Arc<Route>, u64)>,
    backend: Option<Leased>,
    /// In a transaction the client opened (BEGIN), whether or not a backend holds it yet.
    explicit: bool,
    /// The client's transaction failed: only ROLLBACK (or COMMIT) is accepted.
    aborted: bool,
    /// The client's BEGIN, answered by the gateway and sent with the first statement.
    pending_begin: Option<String>,
    statements: HashMap<String, ClientStatement>,
    /// The client's SQL-level prepared statements (PREPARE), by name.
    sql_statements: HashMap<String, guard::SqlPrepare>,
    unnamed: Checked,
    cancel: crate::cancel::Slot,
    /// A unit sent in part (after a Flush) and not yet ended by Sync.
    partial: Option<Partial>,
    /// The tenant's gate (its running transactions and rate), kept for its next transaction.
    gate: Option<(bulkhead_model::TenantId, Arc<crate::limits::Gate>)>,
    /// The running transaction's place under its tenant's limits.
    pass: Option<crate::limits::Pass>,
    /// When the query sent last runs past the tier's statement timeout.
    deadline: Option<tokio::time::Instant>,
    /// The gateway cancelled the running query for its statement timeout.
    limit_cancelled: bool,
    /// The running transaction's usage counts.
    usage: usage::SessionUsage,
    /// The tenant the session's log span names (recorded again only when it changes).
    logged_tenant: Option<bulkhead_model::TenantId>,
    /// The client's own session settings.
    settings: ClientSettings,
    /// What gives the leased connection the client's settings, sent before the next write.
    pending_sync: Option<BytesMut>,
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
    /// A session for a logged-in client.
    pub fn new(
        io: ClientIo,
        state: Arc<GatewayState>,
        service: String,
        identity: Identity,
        cancel: crate::cancel::Slot,
        settings: ClientSettings,
    ) -> Self {
        let ctx = TenantContext::new(identity, state.watch.global());
        let stats = state.metrics.service(&service);
        let logged_tenant = ctx.tenant();
        Self {
            logged_tenant,
            stats,
            io,
            state,
            service,
            ctx,
            route: None,
            route_memo: None,
            backend: None,
            explicit: false,
            aborted: false,
            pending_begin: None,
            statements: HashMap::new(),
            sql_statements: HashMap::new(),
            unnamed: Checked::default(),
            cancel,
            partial: None,
            gate: None,
            pass: None,
            deadline: None,
            limit_cancelled: false,
            usage: Default::default(),
            settings,
            pending_sync: None,
        }
    }

    /// Starts the session (the tenant its startup packet chose, then the greeting) and
    /// serves the client until it leaves.
    pub(crate) async fn run(
        mut self,
        greeting: crate::frontend::Greeting,
    ) -> Result<(), GatewayError> {
        if let Some(choice) = self.settings.startup_context.take() {
            if let Err(e) = self.apply_context(&choice).await {
                let r = context::refusal_of(e);
                self.count_refusal(&r);
                self.io.error(
                    "FATAL",
                    r.code,
                    &format!("startup bulkhead.tenant: {}", r.message),
                );
                let _ = self.io.flush().await;
                return Err(GatewayError::NotAuthorized(r.message));
            }
        }
        greeting.write(&mut self.io, &self.settings);
        self.io.flush().await?;
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
                    self.check_login().await?;
                    let started = std::time::Instant::now();
                    self.simple(&sql).await?;
                    self.stats.query(started.elapsed());
                }
                FrontendMessage::Sync => {
                    let unit = std::mem::take(&mut batch);
                    self.check_login().await?;
                    let started = std::time::Instant::now();
                    self.extended(unit).await?;
                    self.stats.query(started.elapsed());
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

    /// The client's transaction is over (or there was none): what it chose goes with it.
    fn transaction_ended(&mut self) {
        self.explicit = false;
        self.aborted = false;
        self.pending_begin = None;
        self.ctx.end_transaction();
    }

    /// The client's transaction is over (or was lost, already reported): it is told so.
    async fn ended(&mut self) -> Result<(), GatewayError> {
        self.transaction_ended();
        self.ready(TransactionStatus::Idle).await
    }

    /// The transaction ended on the backend with `status`: an idle connection goes back to
    /// the pool; otherwise a statement failed and its COMMIT was skipped, so it is rolled back
    /// first.
    async fn ended_on_backend(&mut self, status: TransactionStatus) -> Result<(), GatewayError> {
        if status == TransactionStatus::Idle {
            self.release(status).await;
        } else {
            self.finish_backend("ROLLBACK").await?;
        }
        self.ended().await
    }

    /// The BEGIN that opens the transaction on the backend: the client's, answered earlier,
    /// or a plain one.
    fn take_begin(&mut self) -> String {
        self.pending_begin
            .take()
            .unwrap_or_else(|| "BEGIN".to_string())
    }

    /// Answers a unit with an error without touching the backend; inside a client
    /// transaction the transaction is marked failed, as PostgreSQL would.
    async fn answer_error(&mut self, code: SqlState, message: &str) -> Result<(), GatewayError> {
        self.io.error("ERROR", code, message);
        if self.explicit {
            self.aborted = true;
        } else {
            self.ctx.end_transaction();
        }
        self.ready(self.status()).await
    }

    /// Answers a refused unit without touching the backend.
    async fn refuse(&mut self, r: Refusal) -> Result<(), GatewayError> {
        self.count_refusal(&r);
        self.answer_error(r.code, &r.message).await
    }

    /// Logs, counts and audits a refusal.
    fn count_refusal(&self, r: &Refusal) {
        let tenant = self.ctx.tenant();
        tracing::info!(tenant = ?tenant, rule = r.rule, "statement refused");
        self.state
            .metrics
            .count("bulkhead_gateway_refusals_total", r.rule);
        self.state
            .audit(bulkhead_audit::action::REFUSED, tenant, || {
                serde_json::json!({
                    "service": self.service,
                    "rule": r.rule,
                    "sqlstate": r.code.code(),
                    "message": r.message,
                })
            });
    }

    /// The Sync that ends a partly sent unit with a refused statement: only the Sync reaches
    /// the backend, so nothing sent after the refusal runs. Inside a client transaction the
    /// transaction stays failed; outside, the gateway's own transaction is rolled back.
    async fn end_refused_partial(&mut self) -> Result<(), GatewayError> {
        self.partial = None;
        if self.backend.is_some() {
            let mut out = BytesMut::new();
            bulkhead_wire::to_server::sync(&mut out);
            let mut expect = Expectations::default();
            expect.push(Expect::Relay(Shape::Ready));
            self.forward(&out, &mut expect, false).await?;
            if !self.explicit {
                self.finish_backend("ROLLBACK").await?;
            }
        }
        if !self.explicit {
            self.transaction_ended();
        }
        self.ready(self.status()).await
    }

    /// Checks the order of what goes to the backend in one unit: no BEGIN (the gateway
    /// answers a leading one), COMMIT or ROLLBACK only last, no tenant choice after a
    /// statement. Returns whether the unit ends the transaction.
    fn shape(effects: &[TxEffect]) -> Result<bool, Refusal> {
        let n = effects.len();
        for (i, e) in effects.iter().enumerate() {
            let misplaced = match e {
                TxEffect::Begin(_) => i != 0,
                TxEffect::Commit | TxEffect::Rollback => i + 1 != n,
                // Sent to the backend, where it is harmless (extended protocol only).
                TxEffect::Session(SessionOp::UnlockAll | SessionOp::ShowAppName) => false,
                TxEffect::Session(op) => {
                    return Err(Refusal {
                        code: SqlState::FeatureNotSupported,
                        rule: "session_order",
                        message: format!("through the gateway, {} must come before the other statements of a query string (or be sent on its own)", op.tag()),
                    })
                }
                TxEffect::Context(_) => {
                    return Err(Refusal {
                        code: SqlState::FeatureNotSupported,
                        rule: "context_order",
                        message: "through the gateway, SET bulkhead.tenant/bulkhead.token must come before the transaction's first statement".into(),
                    })
                }
                TxEffect::None | TxEffect::RollbackTo => false,
            };
            if misplaced {
                return Err(Refusal {
                    code: SqlState::FeatureNotSupported,
                    rule: "transaction_shape",
                    message: "through the gateway, BEGIN must come first and COMMIT/ROLLBACK last in a query string; send the rest as separate queries".into(),
                });
            }
        }
        Ok(matches!(
            effects.last(),
            Some(TxEffect::Commit | TxEffect::Rollback)
        ))
    }

    /// Handles a unit in a transaction the gateway already knows is failed: COMMIT or
    /// ROLLBACK end it; a unit that starts with ROLLBACK TO SAVEPOINT, or (extended protocol)
    /// only prepares it on the backend holding the savepoint, goes on to the backend, which
    /// recovers the transaction or says why not, as PostgreSQL allows; anything else is
    /// refused. `extended` is the unit's messages and the statements they parse, each message
    /// owed its reply. Returns true when the unit was answered.
    async fn end_aborted(
        &mut self,
        effects: &[TxEffect],
        extended: Option<(&[FrontendMessage], &prepared::Parsed)>,
    ) -> Result<bool, GatewayError> {
        let recovers = match (effects.first(), extended) {
            (Some(TxEffect::RollbackTo), _) => true,
            (None, Some((_, parsed))) => {
                self.backend.is_some()
                    && !parsed.is_empty()
                    && parsed
                        .all()
                        .all(|c| matches!(c.effects.as_slice(), [TxEffect::RollbackTo]))
            }
            _ => false,
        };
        if !self.aborted || recovers {
            return Ok(false);
        }
        let batch = extended.map(|(batch, _)| batch);
        if effects.len() == 1 && matches!(effects[0], TxEffect::Commit | TxEffect::Rollback) {
            self.finish_backend("ROLLBACK").await?;
            match batch {
                None => to_client::command_complete(&mut self.io.wbuf, "ROLLBACK"),
                Some(batch) => {
                    for m in batch {
                        let replies: &[Synth] = match m {
                            FrontendMessage::Parse { .. } => &[Synth::ParseComplete],
                            FrontendMessage::Bind { .. } => &[Synth::BindComplete],
                            FrontendMessage::Describe { kind: b'S', .. } => {
                                &[Synth::NoParameters, Synth::NoData]
                            }
                            FrontendMessage::Describe { .. } => &[Synth::NoData],
                            FrontendMessage::Execute { .. } => &[Synth::Complete("ROLLBACK")],
                            FrontendMessage::Close { .. } => &[Synth::CloseComplete],
                            _ => &[],
                        };
                        for r in replies {
                            r.write(&mut self.io.wbuf, &self.settings.app_name);
                        }
                    }
                }
            }
            self.ended().await?;
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

    /// A simple Query. Its leading BEGIN and tenant choices, and a COMMIT or ROLLBACK of a
    /// transaction that never reached the backend, are answered here; the rest goes to the
    /// tenant's backend.
    async fn simple(&mut self, sql: &str) -> Result<(), GatewayError> {
        let checked = match guard::inspect(sql) {
            Ok(c) => c,
            Err(r) => return self.refuse(r).await,
        };
        let n = checked.effects.len();
        if n == 0 && !self.aborted {
            to_client::empty_query_response(&mut self.io.wbuf);
            return self.ready(self.status()).await;
        }
        if self.end_aborted(&checked.effects, None).await? {
            return Ok(());
        }
        let mut i = 0;
        while i < n {
            match &checked.effects[i] {
                TxEffect::Begin(options) => {
                    if self.explicit {
                        self.io.notice(
                            "WARNING",
                            SqlState::ActiveSqlTransaction,
                            "there is already a transaction in progress",
                        );
                    } else {
                        self.explicit = true;
                        self.pending_begin = Some(options.sql());
                    }
                    Synth::Complete("BEGIN").write(&mut self.io.wbuf, &self.settings.app_name);
                }
                TxEffect::Context(c) => {
                    if c.local && !self.explicit && n == 1 {
                        self.io.notice(
                            "WARNING",
                            SqlState::NoActiveSqlTransaction,
                            "SET LOCAL can only be used in transaction blocks",
                        );
                    } else if let Err(e) = self.apply_context(c).await {
                        return self.answer_context_error(e).await;
                    }
                    Synth::Complete(context::command_tag(c))
                        .write(&mut self.io.wbuf, &self.settings.app_name);
                }
                TxEffect::Session(op) => {
                    if let Err(r) = self.session_op(op, true) {
                        return self.refuse(r).await;
                    }
                }
                TxEffect::Commit | TxEffect::Rollback if self.backend.is_none() && i + 1 == n => {
                    if !self.explicit {
                        self.io.notice(
                            "WARNING",
                            SqlState::NoActiveSqlTransaction,
                            "there is no transaction in progress",
                        );
                    }
                    let tag = if checked.effects[i] == TxEffect::Commit {
                        "COMMIT"
                    } else {
                        "ROLLBACK"
                    };
                    self.transaction_ended();
                    Synth::Complete(tag).write(&mut self.io.wbuf, &self.settings.app_name);
                }
                _ => break,
            }
            i += 1;
        }
        if i == n {
            if !self.explicit {
                self.ctx.end_transaction();
            }
            return self.ready(self.status()).await;
        }
        let ends = match self
            .judge(&checked)
            .and_then(|()| Self::shape(&checked.effects[i..]))
        {
            Ok(e) => e,
            Err(r) => return self.refuse(r).await,
        };
        if let (Some(values), None) = (&checked.session_values, self.ctx.tenant()) {
            if i == 0 && self.backend.is_none() {
                // No tenant to run them for yet: kept, and applied with the first
                // transaction (where the server checks them).
                for (name, value) in values {
                    self.settings.set(name, value.as_deref());
                    let tag = if value.is_some() { "SET" } else { "RESET" };
                    to_client::command_complete(&mut self.io.wbuf, tag);
                }
                return self.ready(self.status()).await;
            }
        }
        self.settings
            .touched
            .extend(checked.session_settings.iter().cloned());
        if let Err(r) = self.check_executes(&checked) {
            return self.refuse(r).await;
        }
        let from = checked.starts[i];
        if self.backend.is_some() {
            return self.simple_attached(sql, &checked, from, ends).await;
        }
        if !self.lease(checked.tenant_free).await? {
            return Ok(());
        }
        let begin = self.explicit.then(|| self.take_begin());
        let Some(opening) = self.opening(begin) else {
            // The connection holds the tenant's context: the statements go as they are, an
            // implicit transaction of their own.
            return self.simple_attached(sql, &checked, from, ends).await;
        };
        let pointed = self.point_executes(sql, &checked, from);
        let (rest, prepares) = match &pointed {
            Some(p) => (p.text.as_str(), p.prepares.as_slice()),
            None => (&sql[from..], &[][..]),
        };
        // COPY FROM STDIN reads the client's data before the rest of the string runs; a unit
        // that ends the transaction itself needs no COMMIT.
        let commit = !self.explicit && !ends && !checked.copy_in;
        let Some(status) = self
            .open_simple(&opening, rest, n - i, commit, prepares)
            .await?
        else {
            return self.ended().await;
        };
        if commit {
            return self.ended_on_backend(status).await;
        }
        self.finish_unit(status, ends).await
    }

    /// Sends a simple query's statements from byte `from` on to the attached backend as they
    /// are (with its SQL EXECUTEs pointed at backend statements).
    async fn simple_attached(
        &mut self,
        sql: &str,
        checked: &Checked,
        from: usize,
        ends: bool,
    ) -> Result<(), GatewayError> {
        let pointed = self.point_executes(sql, checked, from);
        let (rest, prepares) = match &pointed {
            Some(p) => (p.text.as_str(), p.prepares.as_slice()),
            None => (&sql[from..], &[][..]),
        };
        let mut out = BytesMut::with_capacity(rest.len() + 6);
        bulkhead_wire::to_server::query(&mut out, rest);
        let mut expect = Expectations::default();
        for _ in prepares {
            expect.push(Expect::Swallow(Shape::Execute));
        }
        expect.push(Expect::Relay(Shape::Ready));
        let status = self.forward(&out, &mut expect, false).await?;
        self.record_sql_prepared(prepares, &expect, 0);
        self.finish_unit(status, ends).await
    }

    /// Runs a unit on the attached backend; when it was `fresh`ly checked out for this unit,
    /// with the transaction's opening in the same write (and, for a unit outside a client
    /// transaction, the COMMIT too). `attempted` are backend statement names the unit
    /// prepares.
    async fn run_unit(
        &mut self,
        out: BytesMut,
        mut expect: Expectations,
        ends: bool,
        copy_in: bool,
        attempted: Vec<String>,
        fresh: bool,
    ) -> Result<(), GatewayError> {
        let opening = if fresh {
            let begin = self.explicit.then(|| self.take_begin());
            self.opening(begin)
        } else {
            None
        };
        let Some(opening) = opening else {
            // A transaction under way, or an implicit one on a connection that holds the
            // tenant's context: the unit goes as it is (its Sync ends an implicit one).
            let status = self.forward(&out, &mut expect, false).await?;
            self.record_prepared(attempted, status).await?;
            return self.finish_unit(status, ends).await;
        };
        // COPY FROM STDIN cannot be followed in the same write (the server would read the
        // COMMIT as COPY data), and a unit that ends the transaction itself needs none.
        let commit = !self.explicit && !ends && !copy_in;
        if !self.open_with(&opening, &out, commit).await? {
            return self.ended().await;
        }
        let status = self.relay(&mut expect, false).await?;
        if self.backend.is_none() {
            return self.ended().await;
        }
        if commit {
            let mut end = Expectations::default();
            end.push(Expect::Swallow(Shape::Ready));
            let end = self.relay(&mut end, false).await?;
            if self.backend.is_some() {
                self.record_prepared(attempted, status).await?;
            }
            return self.ended_on_backend(end).await;
        }
        self.record_prepared(attempted, status).await?;
        self.finish_unit(status, ends).await
    }

    /// An extended-protocol unit (everything up to Sync).
    async fn extended(&mut self, batch: Vec<FrontendMessage>) -> Result<(), GatewayError> {
        if self.partial.as_ref().is_some_and(|p| p.refused) {
            return self.end_refused_partial().await;
        }
        let parsed = match Self::check_parses(&batch) {
            Ok(p) => p,
            Err(r) => return self.refuse(r).await,
        };
        let virtuals = match self.classify(&batch, &parsed) {
            Ok(v) => v,
            Err(r) => return self.refuse(r).await,
        };
        if let Some(partial) = self.partial.take() {
            if let Err(e) = self.apply_contexts(&virtuals).await {
                return self.answer_context_error(e).await;
            }
            let executed = self.executed(&batch, &parsed, &virtuals);
            let judged = self
                .judge(&executed)
                .and_then(|()| self.check_unit_executes(&executed, &parsed))
                .and_then(|()| self.session_ops(&virtuals.session_ops));
            self.settings
                .touched
                .extend(executed.session_settings.iter().cloned());
            if let Err(r) = judged {
                // Nothing more of the unit runs: its Sync ends it like a refusal's.
                self.partial = Some(partial);
                self.refuse_partial(r).await?;
                return self.end_refused_partial().await;
            }
            return self
                .finish_partial(partial, batch, &parsed, &virtuals, executed.effects)
                .await;
        }
        let executed = self.executed(&batch, &parsed, &virtuals);
        // A bare Sync in a failed transaction is answered with its status, like PostgreSQL.
        let bare = batch.iter().all(|m| matches!(m, FrontendMessage::Flush));
        if !bare
            && self
                .end_aborted(&executed.effects, Some((&batch, &parsed)))
                .await?
        {
            return Ok(());
        }
        if let Err(e) = self.apply_contexts(&virtuals).await {
            return self.answer_context_error(e).await;
        }
        if let Err(r) = self
            .judge(&executed)
            .and_then(|()| self.check_unit_executes(&executed, &parsed))
        {
            return self.refuse(r).await;
        }
        if let Err(r) = self.session_ops(&virtuals.session_ops) {
            return self.refuse(r).await;
        }
        self.settings
            .touched
            .extend(executed.session_settings.iter().cloned());
        if virtuals.all() || (batch.is_empty() && self.backend.is_none()) {
            self.answer_virtual(&batch, &parsed, &virtuals);
            if !self.explicit {
                self.ctx.end_transaction();
            }
            return self.ready(self.status()).await;
        }
        let ends = match Self::shape_extended(&executed.effects) {
            Ok(e) => e,
            Err(r) => return self.refuse(r).await,
        };
        if let (Some(TxEffect::Begin(options)), None) =
            (executed.effects.first(), self.backend.as_ref())
        {
            // The client's BEGIN goes to the backend after the gateway's own (written from
            // its options): its warning is muted, and the client is in a transaction from
            // here on.
            let begin = options.sql();
            self.explicit = true;
            self.pending_begin = None;
            if !self.lease(executed.tenant_free).await? {
                return Ok(());
            }
            let (out, mut expect, attempted) = self.translate(batch, &parsed, &virtuals);
            let Some(opening) = self.opening(Some(begin)) else {
                return self.ended().await;
            };
            if !self.open_with(&opening, &out, false).await? {
                return self.ended().await;
            }
            let status = self.relay(&mut expect, true).await?;
            self.record_prepared(attempted, status).await?;
            return self.finish_unit(status, ends).await;
        }
        if matches!(executed.effects.first(), Some(TxEffect::Begin(_))) {
            self.explicit = true;
        }
        let fresh = self.backend.is_none();
        if fresh && !self.lease(executed.tenant_free).await? {
            return Ok(());
        }
        let (out, expect, attempted) = self.translate(batch, &parsed, &virtuals);
        self.run_unit(out, expect, ends, executed.copy_in, attempted, fresh)
            .await
    }

    /// [`Self::shape`] for an extended-protocol unit, where a BEGIN is sent to the backend
    /// when it comes first.
    fn shape_extended(effects: &[TxEffect]) -> Result<bool, Refusal> {
        match effects.split_first() {
            Some((TxEffect::Begin(_), rest)) => Self::shape(rest),
            _ => Self::shape(effects),
        }
    }

    /// Flush without Sync: the client wants the replies to what it sent so far before it
    /// sends more. Sends it on an attached backend (opening the tenant's transaction first
    /// if needed) and relays the replies; the unit ends at the next Sync.
    async fn flush_partial(&mut self, batch: Vec<FrontendMessage>) -> Result<(), GatewayError> {
        if self.partial.as_ref().is_some_and(|p| p.refused) {
            // Still skipping to Sync after a refusal: nothing is sent.
            return Ok(());
        }
        let checked = Self::check_parses(&batch)
            .and_then(|parsed| self.classify(&batch, &parsed).map(|v| (parsed, v)));
        let (parsed, virtuals) = match checked {
            Ok(x) => x,
            Err(r) => return self.refuse_partial(r).await,
        };
        if let Err(e) = self.apply_contexts(&virtuals).await {
            let r = context::refusal_of(e);
            return self.refuse_partial(r).await;
        }
        if let Err(r) = self.session_ops(&virtuals.session_ops) {
            return self.refuse_partial(r).await;
        }
        if self.partial.is_none() && self.backend.is_none() && virtuals.all() {
            // Nothing needs the backend yet.
            self.answer_virtual(&batch, &parsed, &virtuals);
            return self.io.flush().await;
        }
        let executed = self.executed(&batch, &parsed, &virtuals);
        if let Err(r) = self
            .judge(&executed)
            .and_then(|()| self.check_unit_executes(&executed, &parsed))
        {
            return self.refuse_partial(r).await;
        }
        self.settings
            .touched
            .extend(executed.session_settings.iter().cloned());
        let opening = self.partial.is_none() && self.backend.is_none();
        // A BEGIN that opens the unit: the gateway's own BEGIN carries its options, and the
        // warning of the client's (inside it) is muted.
        let client_begin = match executed.effects.first() {
            Some(TxEffect::Begin(o)) if opening => Some(o.sql()),
            _ => None,
        };
        if opening {
            if let Err(e) = self.lease_or_why(executed.tenant_free).await? {
                // Answered now, without ReadyForQuery: the unit ends at the client's Sync.
                return self.fail_partial(e.sqlstate(), &e.to_string()).await;
            }
        }
        let mut partial = self.partial.take().unwrap_or_default();
        partial.effects.extend(executed.effects);
        let (out, attempted) =
            self.translate_into(batch, &parsed, &virtuals, &mut partial.expect, false);
        partial.attempted.extend(attempted);
        let mute = client_begin.is_some();
        if opening {
            let begin = client_begin.unwrap_or_else(|| self.take_begin());
            let sent = match self.opening(Some(begin)) {
                Some(o) => self.open_with(&o, &out, false).await?,
                None => false,
            };
            if !sent {
                self.partial = Some(partial);
                return self.io.flush().await;
            }
        } else if let Err(e) = self.send_backend(&out).await {
            self.backend_lost(e).await?;
            self.partial = Some(partial);
            return self.io.flush().await;
        }
        // If the backend is lost meanwhile (reported to the client), the partial unit is kept
        // so that the client's Sync is answered without running the rest anywhere else.
        self.relay_until(&mut partial.expect, mute, true).await?;
        self.partial = Some(partial);
        self.io.flush().await
    }

    /// A refusal in a unit sent in part: answered now, and everything the client sends until
    /// its Sync is skipped (never forwarded), like an error inside the unit.
    async fn refuse_partial(&mut self, r: Refusal) -> Result<(), GatewayError> {
        self.count_refusal(&r);
        self.fail_partial(r.code, &r.message).await
    }

    /// An error in a unit sent in part: answered now (no ReadyForQuery: that belongs to the
    /// client's Sync), and everything until the Sync is skipped.
    async fn fail_partial(&mut self, code: SqlState, message: &str) -> Result<(), GatewayError> {
        if self.explicit {
            self.aborted = true;
        }
        self.io.error("ERROR", code, message);
        let mut partial = self.partial.take().unwrap_or_default();
        partial.refused = true;
        self.partial = Some(partial);
        self.io.flush().await
    }

    /// The Sync that ends a unit sent in part.
    async fn finish_partial(
        &mut self,
        mut partial: Partial,
        rest: Vec<FrontendMessage>,
        parsed: &prepared::Parsed,
        virtuals: &virtuals::Virtuals,
        effects: Vec<TxEffect>,
    ) -> Result<(), GatewayError> {
        if self.backend.is_none() {
            // The backend was lost meanwhile: already reported.
            return self.ended().await;
        }
        partial.effects.extend(effects);
        // Misplaced transaction control was already sent: judge only what it did.
        let ends = Self::shape_extended(&partial.effects).unwrap_or_default();
        let begins = matches!(partial.effects.first(), Some(TxEffect::Begin(_)));
        let (out, attempted) =
            self.translate_into(rest, parsed, virtuals, &mut partial.expect, true);
        partial.attempted.extend(attempted);
        let status = self
            .forward(&out, &mut partial.expect, begins && !self.explicit)
            .await?;
        if begins {
            self.explicit = true;
        }
        self.record_prepared(partial.attempted, status).await?;
        self.finish_unit(status, ends).await
    }

    /// After a unit ran on the attached backend: ends the gateway's transaction when the
    /// client is not in one of its own, gives the connection back when the transaction is
    /// over, and tells the client where it stands.
    async fn finish_unit(
        &mut self,
        status: TransactionStatus,
        ends: bool,
    ) -> Result<(), GatewayError> {
        if self.backend.is_none() {
            // Lost mid-unit: already reported.
            return self.ended().await;
        }
        if ends || status == TransactionStatus::Idle {
            return self.ended_on_backend(status).await;
        }
        if !self.explicit {
            let end = if status == TransactionStatus::Failed {
                "ROLLBACK"
            } else {
                "COMMIT"
            };
            self.finish_backend(end).await?;
            return self.ended().await;
        }
        self.aborted = status == TransactionStatus::Failed;
        self.ready(status).await
    }
}

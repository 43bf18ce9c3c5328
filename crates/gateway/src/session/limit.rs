//! The session's side of its tenant's limits (see [`crate::limits`]): a transaction takes a
//! pass before it takes a backend connection, and a query that runs past the tier's statement
//! timeout is cancelled by the gateway itself — so no setting a client can change decides it.
//! A connection whose query was cancelled this way is closed afterwards, never handed to
//! another tenant with a cancel possibly still in flight.

use std::sync::Arc;

use bulkhead_wire::{to_client, BackendMessage, Frame, SqlState};

use super::Session;
use crate::limits::{Gate, LimitHit, Pass};
use crate::route::Route;
use crate::GatewayError;
use bulkhead_model::TenantId;

impl Session {
    /// Records a limit hit in the audit log.
    fn audit_limit(&self, route: &Route, limit: &str, value: u64) {
        self.state
            .audit(bulkhead_audit::action::LIMIT_HIT, route.tenant, || {
                serde_json::json!({
                    "service": self.service,
                    "tier": route.tier.to_string(),
                    "limit": limit,
                    "value": value,
                })
            });
    }

    fn gate(&mut self, tenant: TenantId) -> Arc<Gate> {
        if let Some((held, gate)) = &self.gate {
            if *held == tenant {
                return gate.clone();
            }
        }
        let gate = self.state.gates.of(tenant);
        self.gate = Some((tenant, gate.clone()));
        gate
    }

    /// A pass for a transaction of `route`'s tenant, or the error that refuses it.
    pub(super) fn admit(&mut self, route: &Route, tenant: TenantId) -> Result<Pass, GatewayError> {
        let gate = self.gate(tenant);
        let limits = self.state.settings.limits.for_tier(&route.tier);
        let hit = match gate.enter(limits) {
            Ok(pass) => return Ok(pass),
            Err(hit) => hit,
        };
        self.state.metrics.count(
            "bulkhead_gateway_limits_total",
            match hit {
                LimitHit::Concurrency(_) => "concurrency",
                LimitHit::Rate(_) => "rate",
            },
        );
        tracing::info!(%tenant, tier = %route.tier, ?hit, "tenant limit reached");
        let (limit, value) = match hit {
            LimitHit::Concurrency(n) => ("concurrency", n as u64),
            LimitHit::Rate(n) => ("rate", n as u64),
        };
        self.audit_limit(route, limit, value);
        let message = match hit {
            LimitHit::Concurrency(n) => format!(
                "tenant {} is at its limit of {n} concurrent transactions (tier {}); retry when one ends",
                tenant, route.tier
            ),
            LimitHit::Rate(n) => format!(
                "tenant {} is over its limit of {n} transactions per second (tier {}); retry shortly",
                tenant, route.tier
            ),
        };
        Err(GatewayError::Refused {
            code: SqlState::TooManyConnections,
            message,
        })
    }

    /// Starts the statement-timeout clock of the tier, for what was just sent.
    pub(super) fn arm_deadline(&mut self) {
        self.deadline = self.route.as_ref().and_then(|r| {
            self.state
                .settings
                .limits
                .for_tier(&r.tier)
                .statement_timeout
                .map(|t| tokio::time::Instant::now() + t)
        });
    }

    /// The next frame from the backend; past the deadline, the query is cancelled (once) and
    /// the wait goes on for the server's answer.
    pub(super) async fn backend_recv(&mut self) -> Result<Frame, GatewayError> {
        loop {
            let deadline = self.deadline;
            let Some(b) = self.backend.as_mut() else {
                return Err(GatewayError::Backend("no backend".into()));
            };
            let Some(deadline) = deadline else {
                return b.conn().recv().await;
            };
            if let Ok(frame) = tokio::time::timeout_at(deadline, b.conn().recv()).await {
                return frame;
            }
            self.deadline = None;
            self.limit_cancelled = true;
            let target = self.cancel.lock().await.clone();
            if let Some(target) = target {
                crate::cancel::send(&target).await;
            }
        }
    }

    /// The error a limit-cancelled query ends with, said as the limit it hit; None for any
    /// other frame.
    pub(super) fn limit_error(&mut self, frame: &Frame) -> Option<()> {
        if !self.limit_cancelled || frame.tag != b'E' {
            return None;
        }
        let Ok(BackendMessage::Error(fields)) = BackendMessage::decode(frame) else {
            return None;
        };
        if fields.code() != Some(SqlState::QueryCanceled.code()) {
            return None;
        }
        let route = self.route.as_ref()?;
        let took = self
            .state
            .settings
            .limits
            .for_tier(&route.tier)
            .statement_timeout
            .unwrap_or_default();
        self.state
            .metrics
            .count("bulkhead_gateway_limits_total", "statement_timeout");
        let route = route.clone();
        self.audit_limit(&route, "statement_timeout", took.as_millis() as u64);
        let route = &route;
        let message = match route.tenant {
            Some(tenant) => format!(
                "canceling statement: tenant {tenant} reached its statement timeout of {} ms (tier {})",
                took.as_millis(),
                route.tier
            ),
            None => format!(
                "canceling statement: a catalog query reached the statement timeout of {} ms",
                took.as_millis()
            ),
        };
        to_client::error_response(
            &mut self.io.wbuf,
            "ERROR",
            SqlState::QueryCanceled,
            &message,
            None,
        );
        Some(())
    }
}

//! The tenant context a backend connection holds between transactions.
//!
//! Setting the context (role, search_path, tenant setting) in every transaction costs
//! PostgreSQL several statements per transaction. Instead the gateway sets it for the
//! connection's session when the connection changes tenant, in the same transaction as the
//! first statement it serves, and reuses it while the connection serves that tenant.
//!
//! What the connection holds is learnt from the server, never assumed: the switch also sets
//! `application_name` to a token unique to that switch, and PostgreSQL reports the session's
//! `application_name` (a ParameterStatus) before every ReadyForQuery where it changed. When
//! the switch's transaction commits, the report carries the token; when it rolls back — an
//! error, a client ROLLBACK, a procedure's own ROLLBACK, a lost connection — the value
//! reverts and so does what the gateway believes.
//!
//! Invariant: a client statement runs without the context set in its own transaction only on
//! a connection whose server last reported, at idle, the token of exactly that context.
//! Clients cannot set `application_name` for the session (the guard refuses session-level
//! SET and `set_config`), and tokens are never reused.

use std::sync::atomic::{AtomicU64, Ordering};

use bulkhead_provisioner::naming::session_tag;
use std::sync::OnceLock;

use crate::route::Route;

/// The context settings of one tenant placement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    role: String,
    search_path: String,
    tenant: Option<bulkhead_model::TenantId>,
    /// The role the session runs as: the tenant's own, or its database's signed-context
    /// role (see [`super::Signer`]).
    session_role: String,
}

impl Settings {
    fn of(route: &Route, session_role: &str) -> Self {
        Self {
            role: route.role.clone(),
            search_path: route.search_path.clone(),
            tenant: route.tenant,
            session_role: session_role.to_string(),
        }
    }

    fn is(&self, route: &Route) -> bool {
        self.tenant == route.tenant
            && self.role == route.role
            && self.search_path == route.search_path
    }
}

/// What one backend connection's session holds.
#[derive(Debug, Default)]
pub struct HeldContext {
    /// The context the server confirmed at the last idle ReadyForQuery, with its token.
    confirmed: Option<(String, Settings)>,
    /// A switch sent in the transaction under way, with its token.
    pending: Option<(String, Settings)>,
    /// The session's `application_name` as last reported by the server.
    reported: String,
}

/// A token no other switch of this process used (and a random prefix, so none of another
/// gateway process either). It begins with the tenant's runtime role (see
/// `bulkhead_provisioner::naming::session_tag`: an opaque name every role can read in
/// `pg_roles` anyway, never the tenant id), so the mover can tell which backends hold a
/// tenant's context (`pg_stat_activity.application_name`, which every role can read too)
/// when it drains them at cutover; at most 63 bytes, PostgreSQL's limit.
fn next_token(role: &str) -> String {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let prefix = *PREFIX.get_or_init(rand::random::<u32>);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}{prefix:08x}.{n:x}", session_tag(role))
}

impl HeldContext {
    /// True when the connection holds `route`'s context (confirmed by the server).
    pub fn holds(&self, route: &Route) -> bool {
        self.pending.is_none() && matches!(&self.confirmed, Some((_, s)) if s.is(route))
    }

    /// The role and search_path the session holds, as the server confirmed them (a switch
    /// need not set them again).
    pub fn role_and_path(&self) -> Option<(&str, &str)> {
        match (&self.pending, &self.confirmed) {
            (None, Some((_, s))) => Some((&s.session_role, &s.search_path)),
            _ => None,
        }
    }

    /// Starts a switch to `route`'s context with the session running as `session_role`:
    /// returns the token the switch must set as `application_name`.
    pub fn switch_to(&mut self, route: &Route, session_role: &str) -> String {
        let token = next_token(&route.role);
        self.pending = Some((token.clone(), Settings::of(route, session_role)));
        token
    }

    /// A ParameterStatus from the server.
    pub fn on_parameter(&mut self, name: &str, value: &str) {
        if name == "application_name" {
            value.clone_into(&mut self.reported);
        }
    }

    /// The server is idle (ReadyForQuery `I`): what it reported decides what it holds.
    pub fn settle(&mut self) {
        if let Some((token, settings)) = self.pending.take() {
            if token == self.reported {
                self.confirmed = Some((token, settings));
                return;
            }
        }
        if !matches!(&self.confirmed, Some((token, _)) if *token == self.reported) {
            self.confirmed = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(tenant: u128) -> Route {
        Route::for_tests(bulkhead_model::TenantId::from(uuid::Uuid::from_u128(
            tenant,
        )))
    }

    #[test]
    fn a_switch_holds_only_once_the_server_reports_its_token() {
        let (a, b) = (route(1), route(2));
        let mut held = HeldContext::default();
        assert!(!held.holds(&a));
        let token = held.switch_to(&a, &a.role);
        assert!(!held.holds(&a), "not before the server confirms");
        held.on_parameter("application_name", &token);
        assert!(!held.holds(&a), "not before the transaction is over");
        held.settle();
        assert!(held.holds(&a));
        assert!(!held.holds(&b));
    }

    #[test]
    fn a_switch_rolled_back_leaves_the_previous_context() {
        let (a, b) = (route(1), route(2));
        let mut held = HeldContext::default();
        let ta = held.switch_to(&a, &a.role);
        held.on_parameter("application_name", &ta);
        held.settle();
        let tb = held.switch_to(&b, &b.role);
        // Reported mid-transaction, then reverted by a rollback.
        held.on_parameter("application_name", &tb);
        held.on_parameter("application_name", &ta);
        held.settle();
        assert!(held.holds(&a));
        assert!(!held.holds(&b));
    }

    #[test]
    fn anything_else_reported_means_nothing_is_held() {
        let a = route(1);
        let mut held = HeldContext::default();
        let ta = held.switch_to(&a, &a.role);
        held.on_parameter("application_name", &ta);
        held.settle();
        held.on_parameter("application_name", "psql");
        held.settle();
        assert!(!held.holds(&a));
        // A switch whose report never came (no commit) holds nothing either.
        held.switch_to(&a, &a.role);
        held.settle();
        assert!(!held.holds(&a));
    }

    #[test]
    fn tokens_are_never_reused() {
        let role = "bh_t_0123456789abcdef0123456789abcdef";
        let a = next_token(role);
        let b = next_token(role);
        assert_ne!(a, b);
        assert!(a.starts_with(&session_tag(role)));
        assert!(a.len() <= 63, "{a} is longer than application_name keeps");
    }
}

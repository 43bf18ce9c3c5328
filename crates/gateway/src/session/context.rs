//! The tenant context of a session: which tenant each transaction acts for.
//!
//! A tenant login is pinned to its tenant for good: naming another is refused, naming the
//! same one is accepted and changes nothing. A service login chooses per transaction
//! (`SET LOCAL bulkhead.tenant = '<id or slug>'` or `SET LOCAL bulkhead.token = '<jwt>'`)
//! or for the session (plain `SET`, until `RESET`); a service can require tokens. The
//! tenant of a transaction is fixed once its first statement reached the backend.
//!
//! These statements never reach the backend: the gateway answers them, and writes the
//! context into the transaction's opening itself.

use std::sync::Arc;

use bulkhead_directory::TenantRef;
use bulkhead_model::TenantId;
use bulkhead_wire::SqlState;

use super::Session;
use crate::auth::{tenant_from_token, Identity};
use crate::guard::{ContextKey, ContextSet, Refusal};
use crate::route::Route;
use crate::GatewayError;

/// A chosen tenant, and until when the token that chose it is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chosen {
    tenant: TenantId,
    expires_at: Option<i64>,
}

/// What a session acts for.
pub(super) struct TenantContext {
    identity: Identity,
    /// Service logins: the tenant chosen for the session (plain SET).
    session: Option<Chosen>,
    /// The tenant chosen for the current transaction (SET LOCAL).
    local: Option<Chosen>,
    /// The directory's global generation when the login was last checked.
    checked_at: u64,
}

/// The CommandComplete tag of a context statement.
pub(super) fn command_tag(c: &ContextSet) -> &'static str {
    if c.value.is_none() {
        "RESET"
    } else {
        "SET"
    }
}

/// A context failure as a refusal (for units answered in part).
pub(super) fn refusal_of(e: GatewayError) -> Refusal {
    Refusal {
        code: e.sqlstate(),
        rule: "context",
        message: e.to_string(),
    }
}

fn denied(message: impl Into<String>) -> GatewayError {
    GatewayError::Refused {
        code: SqlState::InsufficientPrivilege,
        message: message.into(),
    }
}

/// Why a statement on tenant data cannot run yet.
pub(super) fn no_tenant() -> GatewayError {
    denied("no tenant is chosen: SET LOCAL bulkhead.tenant = '<tenant id or slug>' (or bulkhead.token) inside the transaction first")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

impl TenantContext {
    pub(super) fn new(identity: Identity, global: u64) -> Self {
        Self {
            identity,
            session: None,
            local: None,
            checked_at: global,
        }
    }

    /// The tenant the current transaction acts for, if one is chosen.
    pub(super) fn tenant(&self) -> Option<TenantId> {
        match &self.identity {
            Identity::Tenant(t) => Some(*t),
            Identity::Tenants(_) | Identity::Service { .. } => {
                self.local.or(self.session).map(|c| c.tenant)
            }
        }
    }

    /// Who the session is.
    pub(super) fn identity(&self) -> &Identity {
        &self.identity
    }

    fn chosen(&self) -> Option<Chosen> {
        self.local.or(self.session)
    }

    /// The transaction ended: its SET LOCAL goes with it.
    pub(super) fn end_transaction(&mut self) {
        self.local = None;
    }
}

impl Session {
    /// Before a unit outside a transaction: a service credential revoked since the login
    /// ends the session.
    pub(super) async fn check_login(&mut self) -> Result<(), GatewayError> {
        let global = self.state.watch.global();
        if self.backend.is_some() || global == self.ctx.checked_at {
            return Ok(());
        }
        if let Identity::Service { user, .. } = &self.ctx.identity {
            let service = self
                .service
                .parse()
                .map_err(|_| GatewayError::UnknownService(self.service.clone()))?;
            match self
                .state
                .directory
                .credential_verifier(&service, user)
                .await
            {
                Ok(Some(c)) => {
                    let user = user.clone();
                    self.ctx.identity = Identity::Service {
                        user,
                        may_ddl: c.may_ddl,
                    };
                }
                Ok(None) => {
                    return self
                        .fatal(GatewayError::NotAuthorized(
                            "the service credential of this session was revoked".into(),
                        ))
                        .await;
                }
                // Checked again at the next unit.
                Err(_) => return Ok(()),
            }
        }
        self.ctx.checked_at = global;
        Ok(())
    }

    /// Applies a context statement, or says why not (the caller answers the client).
    pub(super) async fn apply_context(&mut self, c: &ContextSet) -> Result<(), GatewayError> {
        let chosen = match &c.value {
            None => None,
            Some(v) => Some(self.resolve_choice(c.key, v).await?),
        };
        match (&self.ctx.identity, chosen) {
            (Identity::Tenant(pinned), chosen) => {
                return match chosen {
                    Some(ch) if ch.tenant != *pinned => Err(denied(
                        "this session's login pins it to its tenant; it cannot act for another",
                    )),
                    _ => Ok(()),
                };
            }
            (Identity::Tenants(allowed), Some(ch)) if !allowed.contains(&ch.tenant) => {
                return Err(denied(format!(
                    "this session's token names {} tenants and {} is not one of them",
                    allowed.len(),
                    ch.tenant
                )));
            }
            _ => {}
        }
        let after = if c.local {
            chosen.or(self.ctx.session)
        } else {
            chosen
        };
        if let Some(route) = self.route.as_ref().filter(|_| self.backend.is_some()) {
            if after.map(|a| a.tenant) != route.tenant {
                return Err(denied(
                    "the tenant of a transaction cannot change after its first statement; COMMIT or ROLLBACK first",
                ));
            }
        }
        if c.local {
            self.ctx.local = chosen;
        } else {
            // Like PostgreSQL, a SET overrides a SET LOCAL of the same transaction.
            self.ctx.session = chosen;
            self.ctx.local = None;
        }
        Ok(())
    }

    /// The tenant a context value names: an id or slug (refused when the service requires
    /// tokens), or a token verified against the service's keys. The tenant must be served
    /// in this service now.
    async fn resolve_choice(&self, key: ContextKey, value: &str) -> Result<Chosen, GatewayError> {
        let mut slug_named = None;
        let mut chosen = match key {
            ContextKey::Tenant => {
                // A tenant login's token already chose which tenants it may name.
                let pinned = matches!(
                    self.ctx.identity,
                    Identity::Tenant(_) | Identity::Tenants(_)
                );
                if !pinned {
                    let auth = self
                        .state
                        .cache
                        .service_auth(&self.state.directory, &self.state.watch, &self.service)
                        .await?;
                    if auth.require_tokens {
                        return Err(denied(
                            "this service requires signed tokens: use SET LOCAL bulkhead.token = '<token>'",
                        ));
                    }
                }
                let tenant = match value.parse::<TenantRef>() {
                    Ok(TenantRef::Id(id)) => id,
                    Ok(TenantRef::Slug(slug)) => {
                        let id = self
                            .state
                            .cache
                            .tenant_of_slug(&self.state.directory, &self.state.watch, &slug, false)
                            .await?;
                        slug_named = Some(slug);
                        id
                    }
                    Err(_) => {
                        return Err(GatewayError::NotAuthorized(format!(
                            "`{value}` is neither a tenant id nor a slug"
                        )))
                    }
                };
                Chosen {
                    tenant,
                    expires_at: None,
                }
            }
            ContextKey::Token => {
                let auth = self
                    .state
                    .cache
                    .service_auth(&self.state.directory, &self.state.watch, &self.service)
                    .await?;
                let t = tenant_from_token(&auth, value)?;
                if t.tenants.len() > 1 {
                    return Err(denied(
                        "a token that names several tenants is a login password; a transaction's bulkhead.token must name one",
                    ));
                }
                let service = self
                    .service
                    .parse()
                    .map_err(|_| GatewayError::UnknownService(self.service.clone()))?;
                crate::jit::ensure(&self.state, &service, &t, t.tenant).await?;
                Chosen {
                    tenant: t.tenant,
                    expires_at: Some(t.expires_at),
                }
            }
        };
        // An unknown, suspended or unplaced tenant is refused here, not at the next statement.
        match (
            self.state.route(&self.service, &chosen.tenant).await,
            slug_named,
        ) {
            (Err(GatewayError::NotAuthorized(_)), Some(slug)) => {
                // A deleted tenant's slug may have been reused: look it up again once.
                chosen.tenant = self
                    .state
                    .cache
                    .tenant_of_slug(&self.state.directory, &self.state.watch, &slug, true)
                    .await?;
                self.state.route(&self.service, &chosen.tenant).await?;
            }
            (r, _) => {
                r?;
            }
        }
        Ok(chosen)
    }

    /// Applies the context statements an extended-protocol unit executes, in order.
    pub(super) async fn apply_contexts(
        &mut self,
        v: &super::virtuals::Virtuals,
    ) -> Result<(), GatewayError> {
        for c in &v.contexts {
            self.apply_context(c).await?;
        }
        Ok(())
    }

    /// Answers a unit whose context statement failed: nothing of it ran.
    pub(super) async fn answer_context_error(
        &mut self,
        e: GatewayError,
    ) -> Result<(), GatewayError> {
        let r = refusal_of(e);
        self.count_refusal(&r);
        self.answer_error(r.code, &r.message).await
    }

    /// The route of the transaction about to start, or the error to answer with. A pinned
    /// tenant that may no longer be served ends the session (the caller gets Err). With no
    /// tenant chosen, a unit that reads only the catalogs (`tenant_free`) goes to the
    /// service's catalog route.
    pub(super) async fn transaction_route(
        &mut self,
        tenant_free: bool,
    ) -> Result<Result<Arc<Route>, GatewayError>, GatewayError> {
        let Some(tenant) = self.ctx.tenant() else {
            if !tenant_free {
                return Ok(Err(no_tenant()));
            }
            return Ok(self.state.catalog_route(&self.service).await);
        };
        if let Some(exp) = self.ctx.chosen().and_then(|c| c.expires_at) {
            if exp + 30 < now() {
                return Ok(Err(GatewayError::BadCredentials(
                    "the token that chose this tenant has expired".into(),
                )));
            }
        }
        // The last transaction's route, while nothing in the directory moved since.
        let changes = self.state.watch.changes();
        if let Some((route, seen)) = &self.route_memo {
            if route.tenant == Some(tenant) && *seen == changes {
                return Ok(Ok(route.clone()));
            }
        }
        match self.state.route(&self.service, &tenant).await {
            Ok(r) => {
                self.route_memo = Some((r.clone(), changes));
                Ok(Ok(r))
            }
            Err(e @ GatewayError::NotAuthorized(_))
                if matches!(self.ctx.identity, Identity::Tenant(_)) =>
            {
                tracing::info!(%tenant, error = %e, "session ended by a directory change");
                // `fatal` tells the client and returns the error that ends the session.
                self.fatal(e).await.map(|()| Err(GatewayError::ClientGone))
            }
            Err(e) => Ok(Err(e)),
        }
    }
}

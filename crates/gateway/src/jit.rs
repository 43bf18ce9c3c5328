//! Just-in-time provisioning: when a service allows it, the first valid token for a tenant
//! the directory does not know yet (or that has no place in the service yet) provisions that
//! tenant (mode from the service's policy and the token's tier claim) before its transaction
//! runs, so signing up a customer needs no separate call.
//!
//! Invariant: a tenant is provisioned once however many first requests arrive together —
//! here through one flight per tenant id; across gateways through the directory's unique
//! keys (the loser waits for the winner's tenant to become active).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead_directory::{DirectoryError, NewTenant};
use bulkhead_model::{ServiceName, TenantId};
use bulkhead_provisioner::{create_tenant, CreateTenant, ProvisionError};

use crate::auth::TokenTenant;
use crate::frontend::GatewayState;
use crate::GatewayError;

/// One flight per tenant being provisioned.
#[derive(Default)]
pub struct Flights {
    flights: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>,
}

impl Flights {
    fn flight(&self, tenant: TenantId) -> Arc<tokio::sync::Mutex<()>> {
        let mut f = match self.flights.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        f.entry(tenant).or_default().clone()
    }

    fn land(&self, tenant: TenantId) {
        if let Ok(mut f) = self.flights.lock() {
            f.remove(&tenant);
        }
    }
}

/// True when `e` says the tenant is not in the directory at all.
pub(crate) fn is_unknown_tenant(e: &GatewayError) -> bool {
    matches!(e, GatewayError::NotAuthorized(m) if m.ends_with("is not known"))
}

/// True when `e` says the tenant is unknown or has no place in the service (yet): what a
/// provisioning under way looks like from outside.
fn is_unplaced(e: &GatewayError) -> bool {
    is_unknown_tenant(e)
        || matches!(e, GatewayError::NotAuthorized(m) if m.contains("no active place"))
}

/// Makes sure the tenant a token names exists and is placed in `service`, provisioning it
/// when the service allows just-in-time provisioning. Returns the route error otherwise.
pub(crate) async fn ensure(
    state: &GatewayState,
    service: &ServiceName,
    token: &TokenTenant,
    tenant: TenantId,
) -> Result<(), GatewayError> {
    match state.route(service.as_str(), &tenant).await {
        Ok(_) => return Ok(()),
        Err(e) if is_unplaced(&e) => {
            let auth = state
                .cache
                .service_auth(&state.directory, &state.watch, service.as_str())
                .await?;
            if !auth.jit_provisioning {
                return Err(e);
            }
        }
        Err(e) => return Err(e),
    }
    let flight = state.jit.flight(tenant);
    let _aboard = flight.lock().await;
    // Someone in this flight may have provisioned it meanwhile.
    if state.route(service.as_str(), &tenant).await.is_ok() {
        state.jit.land(tenant);
        return Ok(());
    }
    let result = provision(state, service, token, tenant).await;
    state.jit.land(tenant);
    result
}

async fn provision(
    state: &GatewayState,
    service: &ServiceName,
    token: &TokenTenant,
    tenant: TenantId,
) -> Result<(), GatewayError> {
    // A slug claim that is not a valid slug (one shaped like a tenant id above all) is
    // refused, not replaced: the issuer asked for that name.
    let slug = match token.slug.as_deref() {
        Some(claim) => claim.parse().map_err(|e: bulkhead_model::ModelError| {
            GatewayError::NotAuthorized(format!(
                "the token's tenant_slug claim cannot name a new tenant: {e}"
            ))
        })?,
        None => format!("t-{}", tenant.simple())
            .parse()
            .map_err(|_| GatewayError::Backend("cannot name the new tenant".into()))?,
    };
    let tier = match token.tier.as_deref() {
        Some(t) => Some(t.parse().map_err(|_| {
            GatewayError::NotAuthorized(format!("the token's tier `{t}` is not a valid tier"))
        })?),
        None => None,
    };
    let request = CreateTenant {
        tenant: NewTenant {
            slug,
            id: Some(tenant),
            tier,
            region: None,
        },
        service: Some(service.clone()),
        mode: None,
        cluster: None,
    };
    tracing::info!(%tenant, %service, "provisioning a tenant on its first token");
    match create_tenant(&state.directory, &request).await {
        Ok(created) => state.audit(bulkhead_audit::action::TENANT_CREATED, Some(tenant), || {
            let mut details = created.summary();
            details["just_in_time"] = true.into();
            details
        }),
        // Another gateway provisions it: wait for its tenant to become routable.
        Err(ProvisionError::Directory(DirectoryError::AlreadyExists { .. })) => {}
        Err(e) => {
            return Err(GatewayError::Backend(format!(
                "provisioning tenant {tenant} on its first token failed: {e}"
            )))
        }
    }
    for _ in 0..50 {
        match state.route(service.as_str(), &tenant).await {
            Ok(_) => return Ok(()),
            Err(e)
                if is_unknown_tenant(&e)
                    || matches!(&e, GatewayError::NotAuthorized(m) if m.contains("no active place")) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(GatewayError::Backend(format!(
        "tenant {tenant} was not ready in time after provisioning"
    )))
}

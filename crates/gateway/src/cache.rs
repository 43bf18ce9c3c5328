//! What the gateway remembers of the directory, so that choosing a tenant per transaction
//! costs no directory query: routes per (service, tenant), tenant ids per slug, and each
//! service's token settings. Every entry records the directory generations it was read at
//! (see [`crate::watch`]) and is read again once they moved, so a suspension, a move or a
//! new key setting takes effect at the next transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bulkhead_directory::{Directory, DirectoryError, ServiceAuth, TenantRef};
use bulkhead_model::{Slug, TenantId};

use crate::route::{resolve, Route};
use crate::watch::{DirectoryWatch, Seen};
use crate::GatewayError;

/// Entries kept per map at most; a full map is emptied (bounded, and rare).
const MAX_ENTRIES: usize = 100_000;

/// Routes by tenant then service (looked up without allocating), with the generations they
/// were read at.
type RouteMap = HashMap<TenantId, HashMap<String, (Arc<Route>, Seen)>>;

/// The caches.
#[derive(Default)]
pub struct DirectoryCache {
    routes: Mutex<RouteMap>,
    slugs: Mutex<HashMap<String, TenantId>>,
    auth: Mutex<HashMap<String, (Arc<ServiceAuth>, u64)>>,
}

fn insert<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, k: K, v: V) {
    if let Ok(mut m) = map.lock() {
        if m.len() >= MAX_ENTRIES {
            m.clear();
        }
        m.insert(k, v);
    }
}

impl DirectoryCache {
    /// The route of `tenant` in `service`, from the cache when the directory has not
    /// changed for it since.
    pub async fn route(
        &self,
        dir: &Directory,
        watch: &DirectoryWatch,
        service: &str,
        tenant: &TenantId,
        gateway_role: &str,
    ) -> Result<Arc<Route>, GatewayError> {
        let now = watch.seen(tenant);
        if let Ok(m) = self.routes.lock() {
            if let Some((r, seen)) = m.get(tenant).and_then(|s| s.get(service)) {
                if *seen == now {
                    return Ok(r.clone());
                }
            }
        }
        let name = service
            .parse()
            .map_err(|_| GatewayError::UnknownService(service.to_string()))?;
        let route = Arc::new(resolve(dir, &name, tenant, gateway_role).await?);
        if let Ok(mut m) = self.routes.lock() {
            if m.len() >= MAX_ENTRIES {
                m.clear();
            }
            m.entry(*tenant)
                .or_default()
                .insert(service.to_string(), (route.clone(), now));
        }
        Ok(route)
    }

    /// The tenant a slug names. Slugs never change, but a deleted tenant's slug may be
    /// reused: `fresh` skips the cache (after the cached id turned out unknown).
    pub async fn tenant_of_slug(
        &self,
        dir: &Directory,
        slug: &Slug,
        fresh: bool,
    ) -> Result<TenantId, GatewayError> {
        if !fresh {
            if let Some(id) = self
                .slugs
                .lock()
                .ok()
                .and_then(|m| m.get(slug.as_str()).copied())
            {
                return Ok(id);
            }
        }
        match dir.tenant(&TenantRef::Slug(slug.clone())).await {
            Ok(t) => {
                insert(&self.slugs, slug.to_string(), t.id);
                Ok(t.id)
            }
            Err(DirectoryError::NotFound { .. }) => Err(GatewayError::NotAuthorized(format!(
                "tenant {slug} is not known"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A service's token settings, read again after any change of services.
    pub async fn service_auth(
        &self,
        dir: &Directory,
        watch: &DirectoryWatch,
        service: &str,
    ) -> Result<Arc<ServiceAuth>, GatewayError> {
        let now = watch.global();
        if let Ok(m) = self.auth.lock() {
            if let Some((a, seen)) = m.get(service) {
                if *seen == now {
                    return Ok(a.clone());
                }
            }
        }
        let name = service
            .parse()
            .map_err(|_| GatewayError::UnknownService(service.to_string()))?;
        let auth = Arc::new(dir.service_auth(&name).await?);
        insert(&self.auth, service.to_string(), (auth.clone(), now));
        Ok(auth)
    }
}

//! What the gateway remembers of the directory, so that choosing a tenant per transaction
//! and logging in cost no directory query: routes per (service, tenant), tenant ids per
//! slug, each service's token settings, services and credentials as logins need them, and
//! the tenants of API keys (by the key's hash, never the key). Every entry records the directory generations it was read at
//! (see [`crate::watch`]) and is read again once they moved, so a suspension, a move or a
//! new key setting takes effect at the next transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bulkhead_directory::{CredentialLogin, Directory, DirectoryError, ServiceAuth, TenantRef};
use bulkhead_model::{ServiceName, Slug, TenantId};

use crate::route::{resolve, resolve_catalog, Route};
use crate::watch::{DirectoryWatch, Seen};
use crate::GatewayError;

/// Entries kept per map at most; a full map is emptied (bounded, and rare).
const MAX_ENTRIES: usize = 100_000;

/// Routes by tenant then service (looked up without allocating), with the generations they
/// were read at.
type RouteMap = HashMap<TenantId, HashMap<String, (Arc<Route>, Seen)>>;

/// A credential as logins need it (None: no such credential), at a global generation.
type Verifier = (Option<Arc<CredentialLogin>>, u64);

/// The caches.
#[derive(Default)]
pub struct DirectoryCache {
    routes: Mutex<RouteMap>,
    /// Service → its catalog route, at the directory's change count.
    catalog: Mutex<HashMap<String, (Arc<Route>, u64)>>,
    /// Slug → its tenant, with that tenant's generations then (a rename moves them).
    slugs: Mutex<HashMap<String, (TenantId, Seen)>>,
    auth: Mutex<HashMap<String, (Arc<ServiceAuth>, u64)>>,
    /// Service → the server version its service logins are told, at a global generation.
    services: Mutex<HashMap<String, (Arc<str>, u64)>>,
    /// (service, user) → the credential's SCRAM verifier, if there is one.
    credentials: Mutex<HashMap<(String, String), Verifier>>,
    /// SHA-256 of an API key → its tenant, with that tenant's generations then.
    keys: Mutex<HashMap<[u8; 32], (TenantId, Seen)>>,
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
    /// The catalog route of `service` (see [`crate::route`]), from the cache while nothing
    /// in the directory changed.
    pub async fn catalog_route(
        &self,
        dir: &Directory,
        watch: &DirectoryWatch,
        service: &str,
        gateway_role: &str,
    ) -> Result<Arc<Route>, GatewayError> {
        let now = watch.changes();
        if let Ok(m) = self.catalog.lock() {
            if let Some((r, seen)) = m.get(service) {
                if *seen == now {
                    return Ok(r.clone());
                }
            }
        }
        let name = service
            .parse()
            .map_err(|_| GatewayError::UnknownService(service.to_string()))?;
        let route = Arc::new(resolve_catalog(dir, &name, gateway_role).await?);
        insert(&self.catalog, service.to_string(), (route.clone(), now));
        Ok(route)
    }

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

    /// The tenant a slug names. A hit is trusted only while that tenant's generations have
    /// not moved: a rename (or deletion) moves them, so a slug given up by one tenant and
    /// taken by another never routes to the first. `fresh` skips the cache (after the cached
    /// id turned out unknown).
    pub async fn tenant_of_slug(
        &self,
        dir: &Directory,
        watch: &DirectoryWatch,
        slug: &Slug,
        fresh: bool,
    ) -> Result<TenantId, GatewayError> {
        if !fresh {
            if let Some((id, seen)) = self
                .slugs
                .lock()
                .ok()
                .and_then(|m| m.get(slug.as_str()).copied())
            {
                if watch.seen(&id) == seen {
                    return Ok(id);
                }
            }
        }
        // Kept only if nothing changed while it was read (as for API keys).
        let changes = watch.changes();
        match dir.tenant(&TenantRef::Slug(slug.clone())).await {
            Ok(t) => {
                let seen = watch.seen(&t.id);
                if watch.changes() == changes {
                    insert(&self.slugs, slug.to_string(), (t.id, seen));
                }
                Ok(t.id)
            }
            Err(DirectoryError::NotFound { .. }) => Err(GatewayError::NotAuthorized(format!(
                "tenant {slug} is not known"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The server version reported to a service's logins; `UnknownService` when there is no
    /// such service. Read again after any change of services or clusters.
    pub async fn service_version(
        &self,
        dir: &Directory,
        watch: &DirectoryWatch,
        service: &ServiceName,
    ) -> Result<Arc<str>, GatewayError> {
        let now = watch.global();
        if let Some(v) = self.services.lock().ok().and_then(|m| {
            m.get(service.as_str())
                .filter(|(_, seen)| *seen == now)
                .map(|(v, _)| v.clone())
        }) {
            return Ok(v);
        }
        match dir.service(service).await {
            Ok(_) => {}
            Err(DirectoryError::NotFound { .. }) => {
                return Err(GatewayError::UnknownService(service.to_string()))
            }
            Err(e) => return Err(e.into()),
        }
        let version: Arc<str> = dir
            .service_server_version(service)
            .await?
            .unwrap_or_else(|| "15".into())
            .into();
        insert(&self.services, service.to_string(), (version.clone(), now));
        Ok(version)
    }

    /// A service credential as logins need it, None when `user` is not one. Read again
    /// after any change of services or credentials.
    pub async fn credential(
        &self,
        dir: &Directory,
        watch: &DirectoryWatch,
        service: &ServiceName,
        user: &str,
    ) -> Result<Option<Arc<CredentialLogin>>, GatewayError> {
        let now = watch.global();
        let key = (service.to_string(), user.to_string());
        if let Some(v) = self.credentials.lock().ok().and_then(|m| {
            m.get(&key)
                .filter(|(_, seen)| *seen == now)
                .map(|(v, _)| v.clone())
        }) {
            return Ok(v);
        }
        let verifier = dir.credential_verifier(service, user).await?.map(Arc::new);
        insert(&self.credentials, key, (verifier.clone(), now));
        Ok(verifier)
    }

    /// The tenant of an API key, None when it is unknown or revoked. A hit is trusted only
    /// while the tenant's generations have not moved (a revocation moves them); misses are
    /// not kept, so a new key works at once.
    pub async fn tenant_of_key(
        &self,
        dir: &Directory,
        watch: &DirectoryWatch,
        key: &str,
    ) -> Result<Option<TenantId>, GatewayError> {
        use sha2::{Digest, Sha256};
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if let Some((tenant, seen)) = self.keys.lock().ok().and_then(|m| m.get(&digest).copied()) {
            if watch.seen(&tenant) == seen {
                return Ok(Some(tenant));
            }
        }
        // Kept only if no change at all was heard while the key was looked up: a revocation
        // committed meanwhile is then seen by the next login.
        let changes = watch.changes();
        let Some(tenant) = dir.tenant_of_key(key).await? else {
            return Ok(None);
        };
        let seen = watch.seen(&tenant);
        if watch.changes() == changes {
            insert(&self.keys, digest, (tenant, seen));
        }
        Ok(Some(tenant))
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

//! What the gateway needs from the directory to let a client in: its own password on each
//! cluster, tenant API keys (stored as SHA-256 hashes; the secret is shown once), and a
//! service's token settings.

use std::str::FromStr;

use bulkhead_model::{ClusterName, Mode, PlacementState, ServiceName, TenantId, TenantState};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Directory, DirectoryError};

/// How a service's JWTs are checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAuth {
    /// HS256 shared secret; tokens are refused when absent.
    #[serde(default, skip_serializing)]
    pub hs256_secret: Option<String>,
    /// PEM public key for RS256 tokens.
    #[serde(default)]
    pub rs256_public_key: Option<String>,
    /// PEM public key for ES256 tokens.
    #[serde(default)]
    pub es256_public_key: Option<String>,
    /// Required `iss`, if set.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    #[serde(default)]
    pub audience: Option<String>,
    /// The claim holding the tenant id (default `tenant_id`; `tenantId` is also accepted).
    #[serde(default)]
    pub tenant_claim: Option<String>,
    /// A JWKS document (`{"keys": [...]}`): RS256/ES256 tokens whose `kid` names one of its
    /// keys verify against that key.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// Service logins must name tenants with signed tokens (`SET LOCAL bulkhead.token`),
    /// never with bare ids (`bulkhead.tenant`).
    #[serde(default)]
    pub require_tokens: bool,
    /// Just-in-time provisioning: the first valid token for a tenant the directory does not
    /// know yet creates it (mode from the service's policy and the token's tier claim).
    #[serde(default)]
    pub jit_provisioning: bool,
    /// The claim holding the tier for just-in-time provisioning (default `tier`).
    #[serde(default)]
    pub tier_claim: Option<String>,
}

/// Everything the gateway needs to route a tenant of a service, read in one query.
#[derive(Debug, Clone)]
pub struct RouteFacts {
    /// The tenant's state.
    pub tenant_state: TenantState,
    /// The tenant's tier.
    pub tier: String,
    /// The tenant's slug has the shape of a tenant id (an older directory's): not routed.
    pub slug_id_shaped: bool,
    /// The placement in the service, if any.
    pub placement: Option<RoutePlacement>,
}

/// The placement part of [`RouteFacts`].
#[derive(Debug, Clone)]
pub struct RoutePlacement {
    /// Its state.
    pub state: PlacementState,
    /// Its mode.
    pub mode: Mode,
    /// Its database.
    pub database: String,
    /// Its schema (schema mode).
    pub schema: Option<String>,
    /// Its runtime role.
    pub role: String,
    /// Its epoch.
    pub epoch: i64,
    /// Its cluster's name.
    pub cluster: String,
    /// The cluster's admin DSN (for host and port).
    pub admin_dsn: String,
    /// The gateway's password there.
    pub gateway_password: Option<String>,
    /// The cluster's server version.
    pub server_version: String,
    /// A move's cutover holds the tenant's new transactions.
    pub held: bool,
}

/// A newly issued API key: the only time its secret is visible.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedKey {
    /// The key's id.
    pub id: String,
    /// The tenant it belongs to.
    pub tenant_id: TenantId,
    /// The whole key, to be used as the password.
    pub key: String,
}

const KEY_PREFIX: &str = "bhk_";

/// The gateway's second login, for the databases of database tenants, beside its login
/// `gateway_role` (`bh_gw_…` → `bh_gwd_…`): a member of database tenants' roles only, as
/// `gateway_role` is of schema tenants' roles only (shared tenants run as their group).
/// PostgreSQL 15 checks `SET ROLE` against the session user's whole membership, which a
/// backend builds once (and after every role change in the cluster) in time that grows with
/// the square of its size: one login for every tenant cost a new backend 35 ms at 3,000
/// tenants (16 at 2,000, 5.6 at 1,000), about a second at 15,000 if the square holds. Split,
/// a tenant database's backend builds a list of the database tenants alone.
pub fn database_login_of(gateway_role: &str) -> String {
    gateway_role.replacen("bh_gw_", "bh_gwd_", 1)
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Directory {
    /// The gateway's login role on every cluster of this installation: `bh_gw_` and the
    /// first 12 hex digits of the installation id.
    pub async fn gateway_role(&self) -> Result<String, DirectoryError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT id FROM directory.installation", &[])
            .await?;
        let id: uuid::Uuid = row.get(0);
        Ok(format!("bh_gw_{}", &id.simple().to_string()[..12]))
    }

    /// The role a service login's tenant-free statements run as (catalog queries before any
    /// tenant is chosen): `bh_cat_` and the same 12 hex digits as [`Self::gateway_role`]. It
    /// holds no privilege on any tenant's data and is bound to no tenant.
    pub async fn catalog_role(&self) -> Result<String, DirectoryError> {
        let gateway = self.gateway_role().await?;
        Ok(gateway.replacen("bh_gw_", "bh_cat_", 1))
    }

    /// Where a service login's tenant-free statements run: one of the service's pool
    /// databases (the first cluster by name), as a placement of the catalog role. None when
    /// the service has no pool database.
    pub async fn catalog_route_facts(
        &self,
        service: &ServiceName,
    ) -> Result<Option<RoutePlacement>, DirectoryError> {
        let role = self.catalog_role().await?;
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT d.database_name, c.name AS cluster, c.admin_dsn, c.gateway_password, c.server_version
                   FROM directory.service_databases d
                   JOIN directory.clusters c ON c.name = d.cluster
                  WHERE d.service = $1 AND d.kind = 'pool'
                  ORDER BY d.cluster LIMIT 1",
                &[&service.as_str()],
            )
            .await?;
        Ok(row.map(|r| RoutePlacement {
            state: PlacementState::Active,
            mode: Mode::Shared,
            database: r.get("database_name"),
            schema: None,
            role,
            epoch: 0,
            cluster: r.get("cluster"),
            admin_dsn: r.get("admin_dsn"),
            gateway_password: r.get("gateway_password"),
            server_version: r.get("server_version"),
            held: false,
        }))
    }

    /// Records the gateway's password on a cluster.
    pub async fn set_gateway_password(
        &self,
        cluster: &ClusterName,
        password: &str,
    ) -> Result<(), DirectoryError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE directory.clusters SET gateway_password = $2, updated_at = now() WHERE name = $1",
                &[&cluster.as_str(), &password],
            )
            .await?;
        Ok(())
    }

    /// The gateway's password on a cluster, if it was prepared.
    pub async fn gateway_password(
        &self,
        cluster: &ClusterName,
    ) -> Result<Option<String>, DirectoryError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT gateway_password FROM directory.clusters WHERE name = $1",
                &[&cluster.as_str()],
            )
            .await?;
        Ok(row.and_then(|r| r.get(0)))
    }

    /// Issues an API key for a tenant. `secret` must be random (at least 32 characters).
    pub async fn issue_key(
        &self,
        tenant: &TenantId,
        secret: &str,
    ) -> Result<IssuedKey, DirectoryError> {
        if secret.len() < 32 {
            return Err(DirectoryError::InvalidInput(
                "API key secrets have at least 32 characters".into(),
            ));
        }
        let id = uuid::Uuid::new_v4();
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO directory.tenant_keys (id, tenant_id, secret_hash) VALUES ($1, $2, $3)",
                &[&id, &tenant.as_uuid(), &hash(secret)],
            )
            .await?;
        Ok(IssuedKey {
            id: id.simple().to_string(),
            tenant_id: *tenant,
            key: format!("{KEY_PREFIX}{}.{secret}", id.simple()),
        })
    }

    /// Revokes an API key by id.
    pub async fn revoke_key(&self, id: &str) -> Result<TenantId, DirectoryError> {
        let id = uuid::Uuid::from_str(id)
            .map_err(|_| DirectoryError::InvalidInput(format!("`{id}` is not a key id")))?;
        let client = self.client().await?;
        let row = client
            .query_opt(
                "UPDATE directory.tenant_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING tenant_id",
                &[&id],
            )
            .await?;
        match row {
            Some(r) => Ok(TenantId::from(r.get::<_, uuid::Uuid>(0))),
            None => Err(DirectoryError::not_found("key", id)),
        }
    }

    /// The tenant an API key belongs to, when the key is valid and not revoked.
    pub async fn tenant_of_key(&self, key: &str) -> Result<Option<TenantId>, DirectoryError> {
        let Some((id, secret)) = key.strip_prefix(KEY_PREFIX).and_then(|k| k.split_once('.'))
        else {
            return Ok(None);
        };
        let Ok(id) = uuid::Uuid::from_str(id) else {
            return Ok(None);
        };
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT tenant_id, secret_hash FROM directory.tenant_keys WHERE id = $1 AND revoked_at IS NULL",
                &[&id],
            )
            .await?;
        Ok(row.and_then(|r| {
            let stored: String = r.get(1);
            let presented = hash(secret);
            let same = stored.len() == presented.len()
                && stored
                    .bytes()
                    .zip(presented.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0;
            same.then(|| TenantId::from(r.get::<_, uuid::Uuid>(0)))
        }))
    }

    /// The tenant's state and its placement in `service` with its cluster, in one query;
    /// None when the tenant does not exist.
    pub async fn route_facts(
        &self,
        service: &ServiceName,
        tenant: &TenantId,
    ) -> Result<Option<RouteFacts>, DirectoryError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT t.state AS tenant_state, t.tier, t.slug, p.state, p.mode, p.database_name, p.schema_name, p.role_name, p.epoch, p.held_at IS NOT NULL AS held,
                        c.name AS cluster, c.admin_dsn, c.gateway_password, c.server_version
                   FROM directory.tenants t
                   LEFT JOIN directory.placements p ON p.tenant_id = t.id AND p.service = $2
                   LEFT JOIN directory.clusters c ON c.name = p.cluster
                  WHERE t.id = $1",
                &[&tenant.as_uuid(), &service.as_str()],
            )
            .await?;
        let Some(r) = row else { return Ok(None) };
        let corrupt =
            |e: bulkhead_model::ModelError| DirectoryError::Corrupt(format!("route: {e}"));
        let tenant_state = TenantState::from_str(r.get("tenant_state")).map_err(corrupt)?;
        let placement = match (
            r.get::<_, Option<&str>>("state"),
            r.get::<_, Option<String>>("cluster"),
        ) {
            (Some(state), Some(cluster)) => Some(RoutePlacement {
                state: PlacementState::from_str(state).map_err(corrupt)?,
                mode: Mode::from_str(r.get("mode")).map_err(corrupt)?,
                database: r.get("database_name"),
                schema: r.get("schema_name"),
                role: r.get("role_name"),
                epoch: r.get("epoch"),
                cluster,
                admin_dsn: r.get("admin_dsn"),
                gateway_password: r.get("gateway_password"),
                server_version: r.get("server_version"),
                held: r.get("held"),
            }),
            _ => None,
        };
        Ok(Some(RouteFacts {
            tenant_state,
            tier: r.get("tier"),
            slug_id_shaped: TenantId::is_id_shaped(r.get("slug")),
            placement,
        }))
    }

    /// The lowest server version among the clusters holding a service's databases, what the
    /// gateway reports to a service login before any tenant is chosen.
    pub async fn service_server_version(
        &self,
        service: &ServiceName,
    ) -> Result<Option<String>, DirectoryError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT min(c.server_version) FROM directory.service_databases d
                   JOIN directory.clusters c ON c.name = d.cluster WHERE d.service = $1",
                &[&service.as_str()],
            )
            .await?;
        Ok(row.get(0))
    }

    /// A service's token settings.
    pub async fn service_auth(&self, service: &ServiceName) -> Result<ServiceAuth, DirectoryError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT auth FROM directory.services WHERE name = $1",
                &[&service.as_str()],
            )
            .await?
            .ok_or_else(|| DirectoryError::not_found("service", service))?;
        serde_json::from_value(row.get(0))
            .map_err(|e| DirectoryError::Corrupt(format!("services.auth: {e}")))
    }

    /// Sets a service's token settings.
    pub async fn set_service_auth(
        &self,
        service: &ServiceName,
        auth: &ServiceAuth,
    ) -> Result<(), DirectoryError> {
        let mut value =
            serde_json::to_value(auth).map_err(|e| DirectoryError::InvalidInput(e.to_string()))?;
        if let (Some(secret), Some(obj)) = (&auth.hs256_secret, value.as_object_mut()) {
            obj.insert(
                "hs256_secret".into(),
                serde_json::Value::String(secret.clone()),
            );
        }
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE directory.services SET auth = $2, updated_at = now() WHERE name = $1",
                &[&service.as_str(), &value],
            )
            .await?;
        if n == 0 {
            return Err(DirectoryError::not_found("service", service));
        }
        Ok(())
    }
}

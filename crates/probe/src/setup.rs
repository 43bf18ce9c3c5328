//! The probe's throwaway service and tenants: two in each mode (the attacker `a` and its
//! victim `b`), a suspended one, API keys and tokens for each, a service credential, and the
//! known rows each writes through the gateway.

use std::net::SocketAddr;

use bulkhead_directory::{Directory, MigrationFile, NewService, NewTenant, ServiceAuth, TenantRef};
use bulkhead_model::{ClusterName, Mode, ServiceName, TenantId, TenantState};
use bulkhead_provisioner::{
    create_service, create_tenant, delete_tenant, remove_service, CreateTenant,
};
use rand::distr::{Alphanumeric, SampleString};

use crate::client::Gateway;
use crate::ProbeError;

/// One throwaway tenant.
pub(crate) struct Side {
    pub id: TenantId,
    pub key: String,
    pub token: String,
    pub role: String,
    pub schema: Option<String>,
    pub database: String,
    /// The secrets of the rows it wrote (ids 1, 2, ...).
    pub secrets: Vec<String>,
}

/// An attacker and its victim, both in `mode`.
pub(crate) struct Pair {
    pub mode: Mode,
    pub a: Side,
    pub b: Side,
}

/// Everything the vectors need.
pub(crate) struct Setup {
    pub gateway: Gateway,
    pub pairs: Vec<Pair>,
    /// A suspended tenant's key and token.
    pub suspended: Side,
    /// The service credential (user, password).
    pub credential: (String, String),
    pub service: ServiceName,
    tenants: Vec<TenantId>,
    /// The directory (vectors that need an operator's action, such as a move).
    pub dir: Directory,
}

fn random(n: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), n)
}

fn token(secret: &str, tenant: &TenantId) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() + 900)
        .unwrap_or_default();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"tenant_id": tenant.to_string(), "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_default()
}

impl Setup {
    /// Creates the throwaway service (on `cluster`, or the default one) and its tenants, and
    /// writes their known rows through the gateway. What it created is removed if it fails.
    pub(crate) async fn create(
        dir: &Directory,
        gateway: SocketAddr,
        cluster: Option<ClusterName>,
    ) -> Result<Setup, ProbeError> {
        let tag = random(8).to_ascii_lowercase();
        let service: ServiceName =
            format!("probe_{tag}")
                .parse()
                .map_err(|e| ProbeError::Gateway {
                    addr: gateway,
                    reason: format!("{e}"),
                })?;
        create_service(
            dir,
            &NewService {
                name: service.clone(),
                default_mode: Mode::Shared,
                tier_modes: Default::default(),
                cluster,
                reference_tables: Vec::new(),
                migrations: vec![MigrationFile {
                    version: 1,
                    name: "probe".into(),
                    sql: include_str!("../migrations/V1__probe.sql").into(),
                }],
            },
        )
        .await?;
        let mut setup = Setup {
            gateway: Gateway::new(gateway, service.to_string()),
            pairs: Vec::new(),
            suspended: Side::empty(),
            credential: (format!("probe_{tag}_svc"), random(32)),
            service: service.clone(),
            tenants: Vec::new(),
            dir: dir.clone(),
        };
        match setup.fill(dir, &tag).await {
            Ok(()) => Ok(setup),
            Err(e) => {
                let _ = setup.remove(dir).await;
                Err(e)
            }
        }
    }

    async fn fill(&mut self, dir: &Directory, tag: &str) -> Result<(), ProbeError> {
        let jwt = random(40);
        dir.set_service_auth(
            &self.service,
            &ServiceAuth {
                hs256_secret: Some(jwt.clone()),
                ..ServiceAuth::default()
            },
        )
        .await?;
        let verifier = postgres_verifier(&self.credential.1);
        dir.create_credential(&self.service, &self.credential.0, &verifier, false)
            .await?;
        for mode in [Mode::Shared, Mode::Schema, Mode::Database] {
            let a = self.tenant(dir, tag, mode, "a", &jwt).await?;
            let b = self.tenant(dir, tag, mode, "b", &jwt).await?;
            self.pairs.push(Pair { mode, a, b });
        }
        self.suspended = self.tenant(dir, tag, Mode::Shared, "gone", &jwt).await?;
        // Known rows: the attacker has id 1; the victim has ids 1 and 2.
        for pair in &mut self.pairs {
            for (side, ids) in [(&mut pair.a, 1..=1), (&mut pair.b, 1..=2)] {
                let client =
                    self.gateway
                        .login(&side.key)
                        .await
                        .map_err(|e| ProbeError::Gateway {
                            addr: self.gateway.addr,
                            reason: crate::client::describe(&e),
                        })?;
                for id in ids {
                    let secret = format!("probe-secret-{}-{id}-{}", side.id.simple(), random(6));
                    client
                        .execute(
                            "INSERT INTO probe_rows (id, secret) VALUES ($1, $2)",
                            &[&id, &secret],
                        )
                        .await
                        .map_err(|e| ProbeError::Gateway {
                            addr: self.gateway.addr,
                            reason: crate::client::describe(&e),
                        })?;
                    side.secrets.push(secret);
                }
            }
        }
        dir.set_tenant_state(&TenantRef::Id(self.suspended.id), TenantState::Suspended)
            .await?;
        Ok(())
    }

    async fn tenant(
        &mut self,
        dir: &Directory,
        tag: &str,
        mode: Mode,
        who: &str,
        jwt: &str,
    ) -> Result<Side, ProbeError> {
        let slug = format!("probe-{tag}-{}-{who}", mode.as_str());
        let created = create_tenant(
            dir,
            &CreateTenant {
                tenant: NewTenant {
                    slug: slug
                        .parse()
                        .map_err(bulkhead_directory::DirectoryError::from)?,
                    id: None,
                    tier: None,
                    region: None,
                },
                service: Some(self.service.clone()),
                mode: Some(mode),
                cluster: None,
            },
        )
        .await?;
        let id = created.tenant.id;
        self.tenants.push(id);
        let placement = created.placement.ok_or_else(|| ProbeError::Gateway {
            addr: self.gateway.addr,
            reason: format!("tenant {slug} was not placed"),
        })?;
        let key = dir.issue_key(&id, &random(40)).await?.key;
        Ok(Side {
            id,
            key,
            token: token(jwt, &id),
            role: placement.role,
            schema: placement.schema,
            database: placement.database,
            secrets: Vec::new(),
        })
    }

    /// Removes the throwaway tenants and service (every step tried; the first error told).
    pub(crate) async fn remove(&self, dir: &Directory) -> Result<(), ProbeError> {
        let mut first: Option<ProbeError> = None;
        for id in &self.tenants {
            if let Err(e) = delete_tenant(dir, &TenantRef::Id(*id)).await {
                tracing::warn!(tenant = %id, error = %e, "removing a probe tenant failed");
                first.get_or_insert(e.into());
            }
        }
        if let Err(e) = remove_service(dir, &self.service).await {
            tracing::warn!(service = %self.service, error = %e, "removing the probe service failed");
            first.get_or_insert(e.into());
        }
        first.map_or(Ok(()), Err)
    }
}

impl Side {
    fn empty() -> Side {
        Side {
            id: TenantId::random(),
            key: String::new(),
            token: String::new(),
            role: String::new(),
            schema: None,
            database: String::new(),
            secrets: Vec::new(),
        }
    }
}

/// A SCRAM-SHA-256 verifier, as PostgreSQL and the gateway store them.
fn postgres_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

//! Tenants: identities that never change (a UUID, a slug, a tier, an optional region) and a
//! state, `active` or `suspended`, that the gateway obeys.

use std::fmt;
use std::str::FromStr;

use bulkhead_model::{ModelError, Region, Slug, TenantId, TenantState, Tier};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use crate::error::is_unique_violation;
use crate::{Directory, DirectoryError};

/// A tenant record.
#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    /// Permanent id.
    pub id: TenantId,
    /// Unique handle.
    pub slug: Slug,
    /// Commercial tier, which can select an isolation mode.
    pub tier: Tier,
    /// Region pin, if any.
    pub region: Option<Region>,
    /// Served or suspended.
    pub state: TenantState,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What is needed to create a tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// Its slug.
    pub slug: Slug,
    /// A chosen id (for tenants that already have one elsewhere); random otherwise.
    #[serde(default)]
    pub id: Option<TenantId>,
    /// Its tier; `free` unless given.
    #[serde(default)]
    pub tier: Option<Tier>,
    /// Its region pin.
    #[serde(default)]
    pub region: Option<Region>,
}

/// A tenant named by id or by slug, as users type it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantRef {
    /// By UUID.
    Id(TenantId),
    /// By slug.
    Slug(Slug),
}

impl FromStr for TenantRef {
    type Err = ModelError;
    /// Unambiguous by construction: text shaped like a UUID (any spelling) names a tenant by
    /// id only, and must then be a well-formed id; anything else is a slug. No slug can have
    /// that shape, so no slug is ever taken for another tenant's id.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if TenantId::is_id_shaped(s) {
            return s.parse::<TenantId>().map(TenantRef::Id);
        }
        s.parse::<Slug>().map(TenantRef::Slug)
    }
}

impl fmt::Display for TenantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TenantRef::Id(id) => id.fmt(f),
            TenantRef::Slug(s) => s.fmt(f),
        }
    }
}

/// The SQL twin of [`TenantId::is_id_shaped`] for the slug alphabet (lowercase letters,
/// digits, `-`): 32 hex digits once the hyphens are gone. Also the directory's CHECK.
const ID_SHAPED_SLUG: &str = "replace(slug, '-', '') ~ '^[0-9a-f]{32}$'";

pub(crate) const SELECT: &str =
    "SELECT id, slug, tier, region, state, created_at, updated_at FROM directory.tenants";

impl Directory {
    /// Creates a tenant record.
    pub async fn create_tenant(&self, new: &NewTenant) -> Result<Tenant, DirectoryError> {
        let id = new.id.unwrap_or_else(TenantId::random);
        let tier = new.tier.clone().unwrap_or_else(Tier::free);
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO directory.tenants (id, slug, tier, region) VALUES ($1, $2, $3, $4)",
                &[
                    &id.as_uuid(),
                    &new.slug.as_str(),
                    &tier.as_str(),
                    &new.region.as_ref().map(|r| r.as_str()),
                ],
            )
            .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                let on_id = e.as_db_error().and_then(|d| d.constraint()) == Some("tenants_pkey");
                Err(DirectoryError::AlreadyExists {
                    kind: "tenant",
                    name: if on_id {
                        id.to_string()
                    } else {
                        new.slug.to_string()
                    },
                })
            }
            Err(e) => Err(e.into()),
            Ok(_) => self.tenant(&TenantRef::Id(id)).await,
        }
    }

    /// All tenants, by slug.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("{SELECT} ORDER BY slug"), &[])
            .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    /// One tenant by id or slug, or `NotFound`.
    pub async fn tenant(&self, which: &TenantRef) -> Result<Tenant, DirectoryError> {
        let client = self.client().await?;
        let row = match which {
            TenantRef::Id(id) => {
                client
                    .query_opt(&format!("{SELECT} WHERE id = $1"), &[&id.as_uuid()])
                    .await?
            }
            TenantRef::Slug(s) => {
                client
                    .query_opt(&format!("{SELECT} WHERE slug = $1"), &[&s.as_str()])
                    .await?
            }
        };
        row.as_ref()
            .map(tenant_from_row)
            .transpose()?
            .ok_or_else(|| DirectoryError::not_found("tenant", which))
    }

    /// Sets a tenant's state (suspend or resume); idempotent.
    pub async fn set_tenant_state(
        &self,
        which: &TenantRef,
        state: TenantState,
    ) -> Result<Tenant, DirectoryError> {
        let tenant = self.tenant(which).await?;
        if tenant.state != state {
            let client = self.client().await?;
            client
                .execute(
                    "UPDATE directory.tenants SET state = $2, updated_at = now() WHERE id = $1",
                    &[&tenant.id.as_uuid(), &state.as_str()],
                )
                .await?;
        }
        self.tenant(&TenantRef::Id(tenant.id)).await
    }
}

impl Directory {
    /// Gives a tenant a new slug (its id, and so its data and tokens, stay as they are).
    /// The old slug is free for another tenant from then on; gateways hear of the change.
    pub async fn rename_tenant(
        &self,
        which: &TenantRef,
        slug: &Slug,
    ) -> Result<Tenant, DirectoryError> {
        let tenant = self.tenant(which).await?;
        if tenant.slug == *slug {
            return Ok(tenant);
        }
        let client = self.client().await?;
        match client
            .execute(
                "UPDATE directory.tenants SET slug = $2, updated_at = now() WHERE id = $1",
                &[&tenant.id.as_uuid(), &slug.as_str()],
            )
            .await
        {
            Err(e) if is_unique_violation(&e) => {
                return Err(DirectoryError::AlreadyExists {
                    kind: "tenant",
                    name: slug.to_string(),
                })
            }
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        self.tenant(&TenantRef::Id(tenant.id)).await
    }

    /// Tenants whose slug has the shape of a tenant id (written before such slugs were
    /// refused). They are not routed until renamed.
    pub async fn id_shaped_slugs(&self) -> Result<Vec<Tenant>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("{SELECT} WHERE {ID_SHAPED_SLUG} ORDER BY slug"),
                &[],
            )
            .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    /// Deletes a tenant record that has no placements left.
    pub async fn delete_tenant(&self, id: &TenantId) -> Result<(), DirectoryError> {
        let client = self.client().await?;
        match client
            .execute(
                "DELETE FROM directory.tenants WHERE id = $1",
                &[&id.as_uuid()],
            )
            .await
        {
            Err(e) if crate::error::is_fk_violation(&e) => Err(DirectoryError::InUse {
                kind: "tenant",
                name: id.to_string(),
                detail: "it still has placements; delete them first".into(),
            }),
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }
}

pub(crate) fn tenant_from_row(row: &Row) -> Result<Tenant, DirectoryError> {
    let corrupt = |e: ModelError| DirectoryError::Corrupt(format!("tenants: {e}"));
    let region: Option<&str> = row.get("region");
    Ok(Tenant {
        id: TenantId::from(row.get::<_, uuid::Uuid>("id")),
        slug: Slug::stored(row.get("slug")).map_err(corrupt)?,
        tier: Tier::from_str(row.get("tier")).map_err(corrupt)?,
        region: region.map(Region::from_str).transpose().map_err(corrupt)?,
        state: TenantState::from_str(row.get("state")).map_err(corrupt)?,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

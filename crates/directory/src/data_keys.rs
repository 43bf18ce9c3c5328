//! Per-tenant data keys (stored wrapped by the master key, never in the clear) and the
//! deletion certificates of erased tenants.

use bulkhead_model::TenantId;
use chrono::{DateTime, Utc};

use crate::{Directory, DirectoryError};

/// A tenant's data key as stored.
#[derive(Debug, Clone)]
pub enum StoredDataKey {
    /// Wrapped by the master key.
    Wrapped(Vec<u8>),
    /// Destroyed at this time (the tenant was erased).
    Destroyed(DateTime<Utc>),
}

/// A stored deletion certificate.
#[derive(Debug, Clone)]
pub struct StoredCertificate {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its slug when erased.
    pub slug: String,
    /// The exact text that was signed.
    pub certificate: String,
    /// Hex HMAC-SHA256.
    pub signature: String,
}

impl Directory {
    /// The tenant's data key, if it has one.
    pub async fn data_key(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<StoredDataKey>, DirectoryError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT wrapped, destroyed_at FROM directory.data_keys WHERE tenant_id = $1",
                &[&tenant.as_uuid()],
            )
            .await?;
        Ok(row.map(|r| match r.get::<_, Option<Vec<u8>>>(0) {
            Some(w) => StoredDataKey::Wrapped(w),
            None => StoredDataKey::Destroyed(
                r.get::<_, Option<DateTime<Utc>>>(1)
                    .unwrap_or_else(Utc::now),
            ),
        }))
    }

    /// Stores `wrapped` as the tenant's data key unless it has one (or had one); returns
    /// what is stored now, so concurrent first backups agree on one key.
    pub async fn ensure_data_key(
        &self,
        tenant: &TenantId,
        wrapped: &[u8],
    ) -> Result<StoredDataKey, DirectoryError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO directory.data_keys (tenant_id, wrapped) VALUES ($1, $2) ON CONFLICT (tenant_id) DO NOTHING",
                &[&tenant.as_uuid(), &wrapped],
            )
            .await?;
        self.data_key(tenant)
            .await?
            .ok_or_else(|| DirectoryError::not_found("data key", tenant))
    }

    /// Destroys the tenant's data key (an erasure). A tenant without one gets a destroyed
    /// marker, so no key is ever made for it again.
    pub async fn destroy_data_key(&self, tenant: &TenantId) -> Result<(), DirectoryError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO directory.data_keys (tenant_id, wrapped, destroyed_at) VALUES ($1, NULL, now())
                 ON CONFLICT (tenant_id) DO UPDATE SET wrapped = NULL, destroyed_at = coalesce(directory.data_keys.destroyed_at, now())",
                &[&tenant.as_uuid()],
            )
            .await?;
        Ok(())
    }

    /// Records a deletion certificate (one per tenant).
    pub async fn record_erasure(&self, c: &StoredCertificate) -> Result<(), DirectoryError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO directory.erasures (tenant_id, slug, certificate, signature) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id) DO UPDATE SET certificate = EXCLUDED.certificate, signature = EXCLUDED.signature, created_at = now()",
                &[&c.tenant_id.as_uuid(), &c.slug, &c.certificate, &c.signature],
            )
            .await?;
        Ok(())
    }

    /// The certificate of an erased tenant, by id or by the slug it had.
    pub async fn erasure(&self, tenant: &str) -> Result<Option<StoredCertificate>, DirectoryError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT tenant_id, slug, certificate, signature FROM directory.erasures
                  WHERE tenant_id::text = $1 OR slug = $1 ORDER BY created_at DESC LIMIT 1",
                &[&tenant],
            )
            .await?;
        Ok(row.map(|r| StoredCertificate {
            tenant_id: TenantId::from(r.get::<_, uuid::Uuid>(0)),
            slug: r.get(1),
            certificate: r.get(2),
            signature: r.get(3),
        }))
    }
}

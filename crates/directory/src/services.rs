//! Services: an application's database as clients name it, with its isolation policy (a
//! default mode plus per-tier overrides) and its home cluster. Isolation is a property of the
//! service registration, never of the tenant's identity.

use std::collections::BTreeMap;
use std::str::FromStr;

use bulkhead_model::{ClusterName, Mode, ServiceName, Tier};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use crate::error::is_unique_violation;
use crate::{Directory, DirectoryError};

/// A registered service.
#[derive(Debug, Clone, Serialize)]
pub struct Service {
    /// Its name, which clients use as the database name.
    pub name: ServiceName,
    /// The mode of tenants whose tier has no override.
    pub default_mode: Mode,
    /// Per-tier overrides (`business = schema`).
    pub tier_modes: BTreeMap<Tier, Mode>,
    /// Where its pool database and new tenants go unless told otherwise.
    pub cluster: ClusterName,
    /// Tables without `tenant_id` that every tenant may read and only migrations write.
    pub reference_tables: Vec<String>,
    /// How many tenants are placed in it.
    pub placements: i64,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

impl Service {
    /// The isolation mode for a tenant of `tier`.
    pub fn mode_for(&self, tier: &Tier) -> Mode {
        self.tier_modes
            .get(tier)
            .copied()
            .unwrap_or(self.default_mode)
    }
}

/// What is needed to register a service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewService {
    /// Its name.
    pub name: ServiceName,
    /// Default mode; `shared` unless given.
    #[serde(default = "default_mode")]
    pub default_mode: Mode,
    /// Tier overrides.
    #[serde(default)]
    pub tier_modes: BTreeMap<Tier, Mode>,
    /// Home cluster; when absent, the only registered cluster.
    #[serde(default)]
    pub cluster: Option<ClusterName>,
    /// Reference tables (no `tenant_id`; readable by all tenants, written by migrations).
    #[serde(default)]
    pub reference_tables: Vec<String>,
    /// Its migration files.
    #[serde(default)]
    pub migrations: Vec<crate::MigrationFile>,
}

/// Checks a reference table name: an unquoted lowercase SQL identifier.
fn check_table_name(name: &str) -> Result<(), DirectoryError> {
    if crate::store::is_plain_identifier(name) {
        Ok(())
    } else {
        Err(DirectoryError::InvalidInput(format!(
            "invalid reference table `{name}`: give the table's unquoted lowercase name, e.g. countries"
        )))
    }
}

fn default_mode() -> Mode {
    Mode::Shared
}

const SELECT: &str =
    "SELECT s.name, s.default_mode, s.tier_modes, s.cluster, s.created_at, s.reference_tables,
        (SELECT count(*) FROM directory.placements p WHERE p.service = s.name) AS placements
   FROM directory.services s";

impl Directory {
    /// Registers a service with its migrations (all or nothing).
    pub async fn create_service(&self, new: &NewService) -> Result<Service, DirectoryError> {
        for t in &new.reference_tables {
            check_table_name(t)?;
        }
        let cluster = match &new.cluster {
            Some(c) => self.cluster(c).await?.name,
            None => self.only_cluster().await?,
        };
        let tier_modes = serde_json::to_value(&new.tier_modes)
            .map_err(|e| DirectoryError::InvalidInput(format!("tier modes: {e}")))?;
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO directory.services (name, default_mode, tier_modes, cluster, reference_tables)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&new.name.as_str(), &new.default_mode.as_str(), &tier_modes, &cluster.as_str(), &new.reference_tables],
            )
            .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(DirectoryError::AlreadyExists {
                    kind: "service",
                    name: new.name.to_string(),
                })
            }
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        if let Err(e) = self.register_migrations(&new.name, &new.migrations).await {
            let _ = client
                .execute(
                    "DELETE FROM directory.services WHERE name = $1",
                    &[&new.name.as_str()],
                )
                .await;
            return Err(e);
        }
        self.service(&new.name).await
    }

    async fn only_cluster(&self) -> Result<ClusterName, DirectoryError> {
        let clusters = self.list_clusters().await?;
        match clusters.as_slice() {
            [one] => Ok(one.name.clone()),
            [] => Err(DirectoryError::InvalidInput(
                "no cluster is registered; add one with `bulkhead cluster add` first".into(),
            )),
            _ => Err(DirectoryError::InvalidInput(format!(
                "several clusters are registered ({}); say which one with --cluster",
                clusters
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// All services, by name.
    pub async fn list_services(&self) -> Result<Vec<Service>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("{SELECT} ORDER BY s.name"), &[])
            .await?;
        rows.iter().map(service_from_row).collect()
    }

    /// One service, or `NotFound`.
    pub async fn service(&self, name: &ServiceName) -> Result<Service, DirectoryError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("{SELECT} WHERE s.name = $1"), &[&name.as_str()])
            .await?;
        row.as_ref()
            .map(service_from_row)
            .transpose()?
            .ok_or_else(|| DirectoryError::not_found("service", name))
    }

    /// The SECURITY DEFINER functions (`schema.name`) `verify` accepts in `service`.
    pub async fn allowed_definers(
        &self,
        name: &ServiceName,
    ) -> Result<Vec<String>, DirectoryError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT allowed_definers FROM directory.services WHERE name = $1",
                &[&name.as_str()],
            )
            .await?
            .ok_or_else(|| DirectoryError::not_found("service", name))?;
        Ok(row.get(0))
    }

    /// Allow-lists (or, with `allow` false, removes) a SECURITY DEFINER function for `verify`.
    pub async fn allow_definer(
        &self,
        name: &ServiceName,
        function: &str,
        allow: bool,
    ) -> Result<Vec<String>, DirectoryError> {
        let Some((schema, func)) = function.split_once('.') else {
            return Err(DirectoryError::InvalidInput(format!(
                "`{function}` must be schema.name"
            )));
        };
        if schema.is_empty() || func.is_empty() || func.contains('.') {
            return Err(DirectoryError::InvalidInput(format!(
                "`{function}` must be schema.name"
            )));
        }
        let client = self.client().await?;
        let sql = if allow {
            "UPDATE directory.services SET allowed_definers = array_append(array_remove(allowed_definers, $2), $2), updated_at = now()
              WHERE name = $1 RETURNING allowed_definers"
        } else {
            "UPDATE directory.services SET allowed_definers = array_remove(allowed_definers, $2), updated_at = now()
              WHERE name = $1 RETURNING allowed_definers"
        };
        let row = client
            .query_opt(sql, &[&name.as_str(), &function])
            .await?
            .ok_or_else(|| DirectoryError::not_found("service", name))?;
        Ok(row.get(0))
    }

    /// Removes a service that has no tenants placed in it.
    pub async fn remove_service(&self, name: &ServiceName) -> Result<(), DirectoryError> {
        let service = self.service(name).await?;
        if service.placements > 0 {
            return Err(DirectoryError::InUse {
                kind: "service",
                name: name.to_string(),
                detail: format!(
                    "it has {} tenant placement(s); delete those tenants first",
                    service.placements
                ),
            });
        }
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM directory.services WHERE name = $1",
                &[&name.as_str()],
            )
            .await?;
        Ok(())
    }
}

fn service_from_row(row: &Row) -> Result<Service, DirectoryError> {
    let corrupt = |e: String| DirectoryError::Corrupt(format!("services: {e}"));
    let tier_modes: serde_json::Value = row.get("tier_modes");
    Ok(Service {
        name: ServiceName::from_str(row.get("name")).map_err(|e| corrupt(e.to_string()))?,
        default_mode: Mode::from_str(row.get("default_mode"))
            .map_err(|e| corrupt(e.to_string()))?,
        tier_modes: serde_json::from_value(tier_modes).map_err(|e| corrupt(e.to_string()))?,
        cluster: ClusterName::from_str(row.get("cluster")).map_err(|e| corrupt(e.to_string()))?,
        reference_tables: row.get("reference_tables"),
        placements: row.get("placements"),
        created_at: row.get("created_at"),
    })
}

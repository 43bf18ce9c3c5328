//! Clusters: the PostgreSQL servers Bulkhead may place tenant data on. Adding one checks that
//! it answers, is PostgreSQL 15 or newer, has `wal_level=logical` (moves use logical
//! replication) and that its admin role may create databases and roles.

use std::str::FromStr;
use std::time::Duration;

use bulkhead_model::{ClusterName, Region};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use tokio_postgres::{NoTls, Row};

use crate::error::{is_fk_violation, is_unique_violation};
use crate::{Directory, DirectoryError};

/// A registered PostgreSQL server.
#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    /// Its name (`local` for the embedded server).
    pub name: ClusterName,
    /// Where it is, for region pinning.
    pub region: Region,
    /// How Bulkhead connects as its administrator. Serialized with the password masked.
    #[serde(serialize_with = "serialize_redacted")]
    pub admin_dsn: String,
    /// How many placements it may hold; none means no limit.
    pub capacity: Option<i32>,
    /// `server_version` when it was last checked.
    pub server_version: String,
    /// How many placements it holds now.
    pub placements: i64,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// What is needed to register a cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCluster {
    /// Its name.
    pub name: ClusterName,
    /// Its region.
    pub region: Region,
    /// Administrator connection string (URL or key=value form).
    pub admin_dsn: String,
    /// Optional placement limit.
    #[serde(default)]
    pub capacity: Option<i32>,
}

/// What a probe of a server found.
#[derive(Debug, Clone)]
pub struct ClusterFacts {
    /// `server_version`.
    pub server_version: String,
    /// `server_version_num`.
    pub server_version_num: i32,
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_VERSION_NUM: i32 = 150_000;

const SELECT: &str =
    "SELECT c.name, c.region, c.admin_dsn, c.capacity, c.server_version, c.created_at,
        (SELECT count(*) FROM directory.placements p WHERE p.cluster = c.name) AS placements
   FROM directory.clusters c";

impl Directory {
    /// Registers a new cluster after checking that it answers and is suitable.
    pub async fn add_cluster(&self, new: &NewCluster) -> Result<Cluster, DirectoryError> {
        validate_capacity(new.capacity)?;
        if self.find_cluster(&new.name).await?.is_some() {
            return Err(DirectoryError::AlreadyExists {
                kind: "cluster",
                name: new.name.to_string(),
            });
        }
        let facts = probe(new.name.as_str(), &new.admin_dsn).await?;
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO directory.clusters (name, region, admin_dsn, capacity, server_version)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &new.name.as_str(),
                    &new.region.as_str(),
                    &new.admin_dsn,
                    &new.capacity,
                    &facts.server_version,
                ],
            )
            .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => Err(DirectoryError::AlreadyExists {
                kind: "cluster",
                name: new.name.to_string(),
            }),
            Err(e) => Err(e.into()),
            Ok(_) => self.cluster(&new.name).await,
        }
    }

    /// Registers a cluster or updates its DSN, region and capacity (used for the embedded
    /// `local` server and for clusters listed in the configuration file).
    pub async fn upsert_cluster(&self, new: &NewCluster) -> Result<Cluster, DirectoryError> {
        validate_capacity(new.capacity)?;
        let facts = probe(new.name.as_str(), &new.admin_dsn).await?;
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO directory.clusters (name, region, admin_dsn, capacity, server_version)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET region = EXCLUDED.region, admin_dsn = EXCLUDED.admin_dsn,
                     capacity = EXCLUDED.capacity, server_version = EXCLUDED.server_version, updated_at = now()",
                &[&new.name.as_str(), &new.region.as_str(), &new.admin_dsn, &new.capacity, &facts.server_version],
            )
            .await?;
        self.cluster(&new.name).await
    }

    /// All clusters, by name.
    pub async fn list_clusters(&self) -> Result<Vec<Cluster>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("{SELECT} ORDER BY c.name"), &[])
            .await?;
        rows.iter().map(cluster_from_row).collect()
    }

    /// One cluster, or `NotFound`.
    pub async fn cluster(&self, name: &ClusterName) -> Result<Cluster, DirectoryError> {
        self.find_cluster(name)
            .await?
            .ok_or_else(|| DirectoryError::not_found("cluster", name))
    }

    async fn find_cluster(&self, name: &ClusterName) -> Result<Option<Cluster>, DirectoryError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("{SELECT} WHERE c.name = $1"), &[&name.as_str()])
            .await?;
        row.as_ref().map(cluster_from_row).transpose()
    }

    /// Removes a cluster that holds no placements and is no service's home.
    pub async fn remove_cluster(&self, name: &ClusterName) -> Result<(), DirectoryError> {
        let cluster = self.cluster(name).await?;
        let client = self.client().await?;
        let services: Vec<String> = client
            .query(
                "SELECT name FROM directory.services WHERE cluster = $1 ORDER BY name",
                &[&name.as_str()],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let in_use = |detail: String| DirectoryError::InUse {
            kind: "cluster",
            name: name.to_string(),
            detail,
        };
        if cluster.placements > 0 {
            return Err(in_use(format!(
                "it holds {} placement(s); move or delete those tenants first",
                cluster.placements
            )));
        }
        if !services.is_empty() {
            return Err(in_use(format!(
                "it is the home cluster of service(s) {}; remove them or give them another cluster first",
                services.join(", ")
            )));
        }
        match client
            .execute(
                "DELETE FROM directory.clusters WHERE name = $1",
                &[&name.as_str()],
            )
            .await
        {
            Err(e) if is_fk_violation(&e) => {
                Err(in_use("a placement was added to it meanwhile".into()))
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }
}

fn validate_capacity(capacity: Option<i32>) -> Result<(), DirectoryError> {
    match capacity {
        Some(c) if c <= 0 => Err(DirectoryError::InvalidInput(format!(
            "invalid capacity {c}: give a positive number of placements, or none for no limit"
        ))),
        _ => Ok(()),
    }
}

fn cluster_from_row(row: &Row) -> Result<Cluster, DirectoryError> {
    let corrupt = |e: bulkhead_model::ModelError| DirectoryError::Corrupt(format!("clusters: {e}"));
    Ok(Cluster {
        name: ClusterName::from_str(row.get("name")).map_err(corrupt)?,
        region: Region::from_str(row.get("region")).map_err(corrupt)?,
        admin_dsn: row.get("admin_dsn"),
        capacity: row.get("capacity"),
        server_version: row.get("server_version"),
        placements: row.get("placements"),
        created_at: row.get("created_at"),
    })
}

/// Connects to `dsn` and checks that the server can host Bulkhead tenants.
pub async fn probe(cluster: &str, dsn: &str) -> Result<ClusterFacts, DirectoryError> {
    let mut config =
        tokio_postgres::Config::from_str(dsn).map_err(|e| DirectoryError::InvalidDsn {
            cluster: cluster.to_string(),
            reason: e.to_string(),
        })?;
    config.connect_timeout(PROBE_TIMEOUT);
    let unreachable = |reason: String| DirectoryError::Unreachable {
        cluster: cluster.to_string(),
        reason,
    };
    let (client, conn) = tokio::time::timeout(PROBE_TIMEOUT, config.connect(NoTls))
        .await
        .map_err(|_| unreachable(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())))?
        .map_err(|e| unreachable(error_chain(&e)))?;
    let task = tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int,
                    current_setting('wal_level'), r.rolsuper, r.rolcreaterole AND r.rolcreatedb
               FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| unreachable(error_chain(&e)))?;
    drop(client);
    task.abort();
    let facts = ClusterFacts {
        server_version: row.get(0),
        server_version_num: row.get(1),
    };
    let wal_level: String = row.get(2);
    let (superuser, can_create): (bool, bool) = (row.get(3), row.get(4));
    let unsuitable = |reason: String| DirectoryError::Unsuitable {
        cluster: cluster.to_string(),
        reason,
    };
    if facts.server_version_num < MIN_VERSION_NUM {
        return Err(unsuitable(format!(
            "PostgreSQL {} is too old; Bulkhead needs 15 or newer",
            facts.server_version
        )));
    }
    if wal_level != "logical" {
        return Err(unsuitable(format!(
            "wal_level is `{wal_level}`, and online moves need `logical`: run `ALTER SYSTEM SET wal_level = logical` and restart the server"
        )));
    }
    if !superuser && !can_create {
        return Err(unsuitable(
            "the DSN's role can neither create databases nor roles; use a superuser or a role WITH CREATEDB CREATEROLE".into(),
        ));
    }
    Ok(facts)
}

/// `e` and its causes, `: `-joined (tokio-postgres keeps the OS error in the source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(cause) = cur {
        let next = cause.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        cur = cause.source();
    }
    text
}

fn serialize_redacted<S: Serializer>(dsn: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_dsn(dsn))
}

/// The DSN with its password replaced by `***`, in URL or key=value form.
pub fn redact_dsn(dsn: &str) -> String {
    if let Some(rest) = dsn
        .strip_prefix("postgres://")
        .or_else(|| dsn.strip_prefix("postgresql://"))
    {
        let scheme = &dsn[..dsn.len() - rest.len()];
        if let Some(at) = rest.find('@') {
            let userinfo = &rest[..at];
            if let Some(colon) = userinfo.find(':') {
                return format!("{scheme}{}:***{}", &userinfo[..colon], &rest[at..]);
            }
        }
        return dsn.to_string();
    }
    dsn.split_whitespace()
        .map(|part| {
            if part.to_ascii_lowercase().starts_with("password=") {
                "password=***".to_string()
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::redact_dsn;

    #[test]
    fn passwords_are_masked_in_both_dsn_forms() {
        assert_eq!(
            redact_dsn("postgres://admin:s3cret@db:5432/postgres"),
            "postgres://admin:***@db:5432/postgres"
        );
        assert_eq!(
            redact_dsn("postgres://admin@db/postgres"),
            "postgres://admin@db/postgres"
        );
        assert_eq!(
            redact_dsn("host=db user=admin password=s3cret dbname=postgres"),
            "host=db user=admin password=*** dbname=postgres"
        );
    }
}

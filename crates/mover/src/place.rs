//! One side of a move: a tenant's place on a cluster, the tenant's tables there, and the
//! fence that keeps the tenant's role out of a side that is not (or no longer) live.

use bulkhead_directory::Cluster;
use bulkhead_model::{Mode, TenantId};
use bulkhead_provisioner::naming::ident;
use bulkhead_provisioner::{admin_connect, AdminConn, TenantPlace};

use crate::MoveError;

/// A tenant's place on a cluster.
#[derive(Debug, Clone)]
pub struct Side {
    /// The cluster.
    pub cluster: Cluster,
    /// The place's names.
    pub place: TenantPlace,
}

/// One of the tenant's tables as a side has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Its name (the same on both sides).
    pub name: String,
    /// Its stored columns in order (generated columns are left out: they are computed).
    pub columns: Vec<String>,
    /// The columns of the key rows are named by (primary key or replica identity index).
    pub key: Vec<String>,
}

impl Side {
    /// The schema holding the tenant's tables.
    pub fn schema(&self) -> &str {
        self.place.schema.as_deref().unwrap_or("public")
    }

    /// True when the tables hold other tenants' rows too (shared mode).
    pub fn is_shared(&self) -> bool {
        self.place.mode == Mode::Shared
    }

    /// `schema.table`, quoted.
    pub fn qualified(&self, table: &str) -> String {
        format!("{}.{}", ident(self.schema()), ident(table))
    }

    /// The condition selecting the tenant's rows (` WHERE ...`, empty when all are its).
    pub fn tenant_filter(&self, tenant: &TenantId) -> String {
        if self.is_shared() {
            format!(" WHERE tenant_id = '{tenant}'")
        } else {
            String::new()
        }
    }

    /// Rows of this (schema or database) place whose `tenant_id` is not the tenant's, per
    /// table that has the column. A tenant may write any value there in its own place;
    /// carried into shared tables such rows would land under another tenant's id, so moves
    /// to shared mode and backups refuse them.
    pub async fn foreign_rows(&self, tenant: &TenantId) -> Result<Vec<(String, i64)>, MoveError> {
        if self.is_shared() {
            return Ok(Vec::new());
        }
        let client = self.connect().await?;
        let tables = client
            .query(
                "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
                  WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1",
                &[&self.schema()],
            )
            .await
            .map_err(MoveError::sql("listing tables with tenant_id"))?;
        let mut found = Vec::new();
        for t in &tables {
            let name: String = t.get(0);
            let n: i64 = client
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {} WHERE tenant_id IS DISTINCT FROM '{tenant}'",
                        self.qualified(&name)
                    ),
                    &[],
                )
                .await
                .map_err(MoveError::sql(format!("checking tenant ids in {name}")))?
                .get(0);
            if n > 0 {
                found.push((name, n));
            }
        }
        client.release();
        Ok(found)
    }

    /// An administrator connection to the side's database.
    pub async fn connect(&self) -> Result<AdminConn, MoveError> {
        Ok(admin_connect(&self.cluster, &self.place.database).await?)
    }

    /// The tenant's tables on this side: in shared mode the pool's tables with a
    /// `tenant_id` column, otherwise every table of the place's schema.
    pub async fn tables(&self) -> Result<Vec<RawTable>, MoveError> {
        let client = self.connect().await?;
        let rows = client
            .query(
                "SELECT c.relname::text, c.relkind::text, c.relreplident::text,
                        array(SELECT a.attname::text FROM pg_attribute a
                               WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
                               ORDER BY a.attnum) AS columns,
                        array(SELECT a.attname::text FROM pg_index i
                                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                               WHERE i.indrelid = c.oid AND i.indisprimary
                               ORDER BY array_position(i.indkey::int2[], a.attnum)) AS primary_key,
                        array(SELECT a.attname::text FROM pg_index i
                                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                               WHERE i.indrelid = c.oid AND i.indisreplident
                               ORDER BY array_position(i.indkey::int2[], a.attnum)) AS identity_index
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
                    AND ($2 = false OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                                               AND a.attname = 'tenant_id' AND NOT a.attisdropped))
                  ORDER BY c.relname",
                &[&self.schema(), &self.is_shared()],
            )
            .await
            .map_err(MoveError::sql(format!(
                "listing the tenant's tables in {}",
                self.place.database
            )))?;
        client.release();
        Ok(rows
            .iter()
            .map(|r| RawTable {
                name: r.get(0),
                kind: r.get(1),
                identity: r.get(2),
                columns: r.get(3),
                primary_key: r.get(4),
                identity_index: r.get(5),
            })
            .collect())
    }

    /// The newest service migration applied at this place.
    pub async fn applied_version(&self) -> Result<i64, MoveError> {
        let key = match self.place.mode {
            Mode::Shared => "shared",
            Mode::Schema => self.schema(),
            Mode::Database => "database",
        };
        let client = self.connect().await?;
        let version: i64 = client
            .query_one(
                "SELECT coalesce(max(version), 0)::bigint FROM bulkhead.applied_migrations WHERE target = $1",
                &[&key],
            )
            .await
            .map_err(MoveError::sql(format!(
                "reading the migration version of {}",
                self.describe()
            )))?
            .get(0);
        client.release();
        Ok(version)
    }

    /// Keeps the tenant's runtime role out of this side (its transactions there fail), or
    /// lets it back in: the role's group (shared, database) or its USAGE on the schema.
    pub async fn fence(&self, fenced: bool) -> Result<(), MoveError> {
        let role = ident(&self.place.role);
        let (database, sql) = match self.place.mode {
            Mode::Shared | Mode::Database => {
                let group = ident(&self.place.group);
                (
                    "postgres".to_string(),
                    if fenced {
                        format!("REVOKE {group} FROM {role}")
                    } else {
                        format!("GRANT {group} TO {role}")
                    },
                )
            }
            Mode::Schema => {
                let schema = ident(self.schema());
                (
                    self.place.database.clone(),
                    if fenced {
                        format!("REVOKE USAGE ON SCHEMA {schema} FROM {role}")
                    } else {
                        format!("GRANT USAGE ON SCHEMA {schema} TO {role}")
                    },
                )
            }
        };
        let client = admin_connect(&self.cluster, &database).await?;
        client
            .batch_execute(&sql)
            .await
            .map_err(MoveError::sql(format!(
                "{} the tenant's {} place on cluster {}",
                if fenced { "fencing" } else { "opening" },
                self.place.mode,
                self.cluster.name
            )))?;
        client.release();
        Ok(())
    }

    /// A short description for messages: `schema t_... in bh_svc on cluster main`.
    pub fn describe(&self) -> String {
        match self.place.mode {
            Mode::Shared => format!(
                "shared tables of {} on cluster {}",
                self.place.database, self.cluster.name
            ),
            Mode::Schema => format!(
                "schema {} of {} on cluster {}",
                self.schema(),
                self.place.database,
                self.cluster.name
            ),
            Mode::Database => format!(
                "database {} on cluster {}",
                self.place.database, self.cluster.name
            ),
        }
    }
}

/// A table as the catalog describes it, before the pre-checks accept it.
#[derive(Debug, Clone)]
pub struct RawTable {
    /// Its name.
    pub name: String,
    /// `r` or `p`.
    pub kind: String,
    /// `relreplident`: d(efault), i(ndex), f(ull), n(othing).
    pub identity: String,
    /// Stored columns.
    pub columns: Vec<String>,
    /// Primary key columns.
    pub primary_key: Vec<String>,
    /// Replica identity index columns.
    pub identity_index: Vec<String>,
}

impl RawTable {
    /// The table with the key replication names its rows by, or why a move cannot copy it.
    pub fn accept(&self, shared: bool) -> Result<Table, String> {
        if self.kind == "p" {
            return Err(format!(
                "table {} is partitioned; moves copy plain tables only",
                self.name
            ));
        }
        let key = match self.identity.as_str() {
            "i" if !self.identity_index.is_empty() => self.identity_index.clone(),
            "d" | "f" if !self.primary_key.is_empty() => self.primary_key.clone(),
            _ => {
                return Err(format!(
                    "table {} has no primary key or replica identity index, so changes to its rows cannot be replayed; add a primary key",
                    self.name
                ))
            }
        };
        if self.identity == "f" {
            return Err(format!(
                "table {} has REPLICA IDENTITY FULL; set it back to DEFAULT (its primary key) for the move",
                self.name
            ));
        }
        if shared && !key.iter().any(|c| c == "tenant_id") {
            return Err(format!(
                "shared table {} has a key without tenant_id; the move's row filter needs tenant_id in the replica identity (else other tenants' updates would fail); lead its primary key with tenant_id",
                self.name
            ));
        }
        Ok(Table {
            name: self.name.clone(),
            columns: self.columns.clone(),
            key,
        })
    }
}

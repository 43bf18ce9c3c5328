//! The directory's own schema, versioned: each file in `migrations/` is applied once, in
//! order, inside one transaction holding an advisory lock, so concurrent `bulkhead up`s
//! agree. An applied file whose checksum changed is refused.

use sha2::{Digest, Sha256};

use crate::{Directory, DirectoryError};

struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "directory",
        sql: include_str!("../migrations/V1__directory.sql"),
    },
    Migration {
        version: 2,
        name: "provisioning",
        sql: include_str!("../migrations/V2__provisioning.sql"),
    },
    Migration {
        version: 3,
        name: "gateway",
        sql: include_str!("../migrations/V3__gateway.sql"),
    },
    Migration {
        version: 4,
        name: "service_credentials",
        sql: include_str!("../migrations/V4__service_credentials.sql"),
    },
    Migration {
        version: 5,
        name: "guard_and_limits",
        sql: include_str!("../migrations/V5__guard_and_limits.sql"),
    },
    Migration {
        version: 6,
        name: "moves",
        sql: include_str!("../migrations/V6__moves.sql"),
    },
    Migration {
        version: 7,
        name: "backups",
        sql: include_str!("../migrations/V7__backups.sql"),
    },
    Migration {
        version: 8,
        name: "audit_and_metering",
        sql: include_str!("../migrations/V8__audit_and_metering.sql"),
    },
    Migration {
        version: 9,
        name: "opaque_names",
        sql: include_str!("../migrations/V9__opaque_names.sql"),
    },
    Migration {
        version: 10,
        name: "pitr",
        sql: include_str!("../migrations/V10__pitr.sql"),
    },
    Migration {
        version: 11,
        name: "proof_runs",
        sql: include_str!("../migrations/V11__proof_runs.sql"),
    },
    Migration {
        version: 12,
        name: "gateway_batches",
        sql: include_str!("../migrations/V12__gateway_batches.sql"),
    },
];

/// The newest directory schema version this build knows.
pub const SCHEMA_VERSION: i32 = 12;

/// What [`Directory::migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this call.
    pub applied: Vec<i32>,
    /// The schema version now.
    pub version: i32,
}

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

impl Directory {
    /// Brings the control database's directory schema up to [`SCHEMA_VERSION`].
    pub async fn migrate(&self) -> Result<MigrationReport, DirectoryError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(hashtext('bulkhead.directory.migrate'));
             CREATE SCHEMA IF NOT EXISTS directory;
             CREATE TABLE IF NOT EXISTS directory.schema_version (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
        )
        .await?;
        let rows = tx
            .query(
                "SELECT version, checksum FROM directory.schema_version ORDER BY version",
                &[],
            )
            .await?;
        let applied: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        if let Some((found, _)) = applied.iter().find(|(v, _)| *v > SCHEMA_VERSION) {
            return Err(DirectoryError::SchemaTooNew {
                found: *found,
                known: SCHEMA_VERSION,
            });
        }
        let mut report = MigrationReport {
            applied: Vec::new(),
            version: 0,
        };
        for m in MIGRATIONS {
            let expected = checksum(m.sql);
            if let Some((_, found)) = applied.iter().find(|(v, _)| *v == m.version) {
                if *found != expected {
                    return Err(DirectoryError::SchemaChecksum {
                        version: m.version,
                        found: found.clone(),
                        expected,
                    });
                }
            } else {
                tx.batch_execute(m.sql).await?;
                tx.execute(
                    "INSERT INTO directory.schema_version (version, name, checksum) VALUES ($1, $2, $3)",
                    &[&m.version, &m.name, &expected],
                )
                .await?;
                report.applied.push(m.version);
            }
            report.version = m.version;
        }
        tx.commit().await?;
        Ok(report)
    }

    /// The directory schema version the control database is at (0: none yet), for
    /// processes that use the directory without migrating it (a gateway of its own).
    pub async fn schema_version(&self) -> Result<i32, DirectoryError> {
        let client = self.client().await?;
        let exists: bool = client
            .query_one(
                "SELECT to_regclass('directory.schema_version') IS NOT NULL",
                &[],
            )
            .await?
            .get(0);
        if !exists {
            return Ok(0);
        }
        Ok(client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM directory.schema_version",
                &[],
            )
            .await?
            .get(0))
    }
}

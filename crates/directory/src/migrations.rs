//! A service's migration files as registered in the directory: versioned, named,
//! checksummed. Registered files never change: a different text under a known version is
//! refused loudly, and new versions must come after the newest one.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use bulkhead_model::ServiceName;

use crate::{Directory, DirectoryError};

/// One migration file as sent by a client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MigrationFile {
    /// `V<version>__<name>.sql`'s version.
    pub version: i64,
    /// Its name part.
    pub name: String,
    /// Its SQL.
    pub sql: String,
}

impl MigrationFile {
    /// SHA-256 of the SQL text, hex.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

/// A registered migration.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StoredMigration {
    /// Version.
    pub version: i64,
    /// Name.
    pub name: String,
    /// SHA-256 of the SQL, hex.
    pub checksum: String,
    /// The SQL.
    #[serde(skip)]
    pub sql: String,
}

/// What registering a folder of migrations did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RegisterReport {
    /// Versions newly registered.
    pub added: Vec<i64>,
    /// Versions already registered with the same text.
    pub unchanged: Vec<i64>,
}

impl Directory {
    /// The registered migrations of a service, in version order.
    pub async fn migrations(
        &self,
        service: &ServiceName,
    ) -> Result<Vec<StoredMigration>, DirectoryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT version, name, checksum, sql FROM directory.service_migrations WHERE service = $1 ORDER BY version",
                &[&service.as_str()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredMigration {
                version: r.get(0),
                name: r.get(1),
                checksum: r.get(2),
                sql: r.get(3),
            })
            .collect())
    }

    /// Registers migration files for a service. Known versions must be unchanged; new ones
    /// must be newer than every registered one. All or nothing.
    pub async fn register_migrations(
        &self,
        service: &ServiceName,
        files: &[MigrationFile],
    ) -> Result<RegisterReport, DirectoryError> {
        check_files(files)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Serialize registrations of one service.
        tx.execute(
            "SELECT 1 FROM directory.services WHERE name = $1 FOR UPDATE",
            &[&service.as_str()],
        )
        .await?;
        let rows = tx
            .query(
                "SELECT version, name, checksum FROM directory.service_migrations WHERE service = $1",
                &[&service.as_str()],
            )
            .await?;
        let known: Vec<(i64, String, String)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let newest = known.iter().map(|k| k.0).max().unwrap_or(0);
        let mut report = RegisterReport::default();
        for file in files {
            match known.iter().find(|k| k.0 == file.version) {
                Some((_, name, checksum)) if *checksum == file.checksum() => {
                    report.unchanged.push(file.version);
                    let _ = name;
                }
                Some((version, name, _)) => {
                    return Err(DirectoryError::MigrationChanged {
                        service: service.to_string(),
                        version: *version,
                        name: name.clone(),
                    })
                }
                None if file.version <= newest => {
                    return Err(DirectoryError::InvalidInput(format!(
                        "migration V{}__{} is older than the newest registered migration V{newest} of service `{service}`; new migrations must come after it",
                        file.version, file.name
                    )))
                }
                None => {
                    tx.execute(
                        "INSERT INTO directory.service_migrations (service, version, name, checksum, sql) VALUES ($1, $2, $3, $4, $5)",
                        &[&service.as_str(), &file.version, &file.name, &file.checksum(), &file.sql],
                    )
                    .await?;
                    report.added.push(file.version);
                }
            }
        }
        tx.commit().await?;
        Ok(report)
    }
}

fn check_files(files: &[MigrationFile]) -> Result<(), DirectoryError> {
    let mut seen = std::collections::HashSet::new();
    for f in files {
        if f.version <= 0 {
            return Err(DirectoryError::InvalidInput(format!(
                "migration `{}` has version {}; versions start at 1",
                f.name, f.version
            )));
        }
        if !seen.insert(f.version) {
            return Err(DirectoryError::InvalidInput(format!(
                "two migrations have version {}",
                f.version
            )));
        }
        if f.sql.trim().is_empty() {
            return Err(DirectoryError::InvalidInput(format!(
                "migration V{}__{} is empty",
                f.version, f.name
            )));
        }
    }
    Ok(())
}

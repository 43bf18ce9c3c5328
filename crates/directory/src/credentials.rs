//! Service credentials: the SCRAM-SHA-256 logins application servers use to reach the
//! gateway, naming the tenant per transaction. Only the verifier is stored; the password is
//! shown once, when the credential is created.

use bulkhead_model::ServiceName;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::is_unique_violation;
use crate::{Directory, DirectoryError};

/// A credential as listed (never its verifier).
#[derive(Debug, Clone, Serialize)]
pub struct ServiceCredential {
    /// The service it logs in to.
    pub service: ServiceName,
    /// The login's user name.
    pub username: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// May send DDL through the gateway (the migration capability).
    pub may_ddl: bool,
}

/// What the gateway needs of a live credential at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialLogin {
    /// Its SCRAM-SHA-256 verifier.
    pub verifier: String,
    /// May send DDL through the gateway.
    pub may_ddl: bool,
}

/// Checks a credential's user name: lowercase letters, digits and `_`, starting with a
/// letter, at most 63 characters (a PostgreSQL identifier a driver never needs to quote).
pub fn check_username(name: &str) -> Result<(), DirectoryError> {
    if crate::store::is_plain_identifier(name) && !name.starts_with('_') {
        Ok(())
    } else {
        Err(DirectoryError::InvalidInput(format!(
            "`{name}` is not a valid credential user name (lowercase letters, digits and _, starting with a letter, at most 63)"
        )))
    }
}

impl Directory {
    /// Stores a new credential for `service` with its SCRAM verifier; `may_ddl` gives it the
    /// migration capability.
    pub async fn create_credential(
        &self,
        service: &ServiceName,
        username: &str,
        verifier: &str,
        may_ddl: bool,
    ) -> Result<ServiceCredential, DirectoryError> {
        check_username(username)?;
        if !verifier.starts_with("SCRAM-SHA-256$") {
            return Err(DirectoryError::InvalidInput(
                "a credential is stored as a SCRAM-SHA-256 verifier".into(),
            ));
        }
        // A missing service is reported as such, not as a foreign-key error.
        self.service(service).await?;
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO directory.service_credentials (service, username, verifier, may_ddl)
                 VALUES ($1, $2, $3, $4) RETURNING created_at",
                &[&service.as_str(), &username, &verifier, &may_ddl],
            )
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    DirectoryError::AlreadyExists {
                        kind: "credential",
                        name: format!("{service}/{username}"),
                    }
                } else {
                    e.into()
                }
            })?;
        Ok(ServiceCredential {
            service: service.clone(),
            username: username.to_string(),
            created_at: row.get(0),
            revoked_at: None,
            may_ddl,
        })
    }

    /// Revokes a credential; open sessions that logged in with it are ended by the gateway.
    pub async fn revoke_credential(
        &self,
        service: &ServiceName,
        username: &str,
    ) -> Result<(), DirectoryError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE directory.service_credentials SET revoked_at = now()
                  WHERE service = $1 AND username = $2 AND revoked_at IS NULL",
                &[&service.as_str(), &username],
            )
            .await?;
        if n == 0 {
            return Err(DirectoryError::not_found(
                "credential",
                format!("{service}/{username}"),
            ));
        }
        Ok(())
    }

    /// The credentials of a service, revoked ones included.
    pub async fn list_credentials(
        &self,
        service: &ServiceName,
    ) -> Result<Vec<ServiceCredential>, DirectoryError> {
        self.service(service).await?;
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT username, created_at, revoked_at, may_ddl FROM directory.service_credentials
                  WHERE service = $1 ORDER BY username",
                &[&service.as_str()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ServiceCredential {
                service: service.clone(),
                username: r.get(0),
                created_at: r.get(1),
                revoked_at: r.get(2),
                may_ddl: r.get(3),
            })
            .collect())
    }

    /// A live credential as a login needs it, or None.
    pub async fn credential_verifier(
        &self,
        service: &ServiceName,
        username: &str,
    ) -> Result<Option<CredentialLogin>, DirectoryError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT verifier, may_ddl FROM directory.service_credentials
                  WHERE service = $1 AND username = $2 AND revoked_at IS NULL",
                &[&service.as_str(), &username],
            )
            .await?;
        Ok(row.map(|r| CredentialLogin {
            verifier: r.get(0),
            may_ddl: r.get(1),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::check_username;

    #[test]
    fn user_names_are_plain_identifiers_starting_with_a_letter() {
        for ok in ["billing_svc", "a", "app2"] {
            assert!(check_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "_app",
            "2app",
            "App",
            "app-svc",
            "app svc",
            &"a".repeat(64),
        ] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }
}

//! Preparing a cluster for the gateway: a login role `bulkhead_gateway` that is no superuser,
//! has no BYPASSRLS and inherits nothing (NOINHERIT), so on its own it can read no tenant
//! data; it is a member of every tenant runtime role, which it switches to per transaction
//! with `SET LOCAL ROLE`. Its password lives in the directory and reaches PostgreSQL only as
//! a SCRAM verifier.

use bulkhead_directory::{Cluster, Directory, NewCluster};
use rand::distr::{Alphanumeric, SampleString};

use crate::connect::admin_connect;
use crate::ProvisionError;

/// The gateway's login role on every cluster.
pub const GATEWAY_ROLE: &str = "bulkhead_gateway";

/// SQL that creates the gateway role as a NOLOGIN placeholder when it is missing, so grants
/// to it work before the cluster is prepared.
pub(crate) const ENSURE_GATEWAY_ROLE: &str = "DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bulkhead_gateway') THEN
        CREATE ROLE bulkhead_gateway NOLOGIN NOINHERIT;
    END IF;
END $$;";

/// Creates or refreshes the gateway role on `cluster` and records its password.
pub async fn prepare_cluster(dir: &Directory, cluster: &Cluster) -> Result<(), ProvisionError> {
    let password = match dir.gateway_password(&cluster.name).await? {
        Some(p) => p,
        None => Alphanumeric.sample_string(&mut rand::rng(), 32),
    };
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    let admin = admin_connect(cluster, "postgres").await?;
    // The verifier is our own base64 and `$:=` text: no quote can occur in it.
    let sql = format!(
        "{ENSURE_GATEWAY_ROLE}
         ALTER ROLE bulkhead_gateway WITH LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '{verifier}';
         DO $$ DECLARE r text; BEGIN
             FOR r IN SELECT rolname FROM pg_roles WHERE rolname LIKE 'bh\\_t\\_%' LOOP
                 EXECUTE format('GRANT %I TO bulkhead_gateway', r);
             END LOOP;
             FOR r IN SELECT datname FROM pg_database WHERE datname LIKE 'bh\\_%' OR datname LIKE 't\\_%' LOOP
                 EXECUTE format('GRANT CONNECT ON DATABASE %I TO bulkhead_gateway', r);
             END LOOP;
         END $$;"
    );
    admin
        .batch_execute(&sql)
        .await
        .map_err(ProvisionError::sql(format!(
            "preparing the gateway role on cluster {}",
            cluster.name
        )))?;
    admin.release();
    dir.set_gateway_password(&cluster.name, &password).await?;
    Ok(())
}

/// Registers a cluster (checking it) and prepares it for the gateway.
pub async fn add_cluster(dir: &Directory, new: &NewCluster) -> Result<Cluster, ProvisionError> {
    let cluster = dir.add_cluster(new).await?;
    prepare_cluster(dir, &cluster).await?;
    Ok(cluster)
}

/// Registers or updates a cluster and prepares it for the gateway.
pub async fn upsert_cluster(dir: &Directory, new: &NewCluster) -> Result<Cluster, ProvisionError> {
    let cluster = dir.upsert_cluster(new).await?;
    prepare_cluster(dir, &cluster).await?;
    Ok(cluster)
}

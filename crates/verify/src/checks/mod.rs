//! The checks, grouped by where their facts live: a pool database (`shared.rs`: shared tables,
//! their policies, indexes and sequences; `schemas.rs`: tenant schemas), any database tenants
//! can reach (`reach.rs`: views, definer functions, CREATE rights), and the cluster
//! (`cluster.rs`: roles and database ACLs).

mod cluster;
mod names;
mod reach;
mod schemas;
mod shared;

use tokio_postgres::Client;

use crate::{Report, Scope};

pub(crate) use cluster::cluster;
pub(crate) use names::cluster_names;

/// A pool database: shared tables and tenant schemas, and what tenants can reach there.
pub(crate) async fn pool_database(
    client: &Client,
    scope: &Scope<'_>,
    report: &mut Report,
) -> Result<(), tokio_postgres::Error> {
    in_catalog_path(client, async {
        shared::check(client, scope, report).await?;
        schemas::check(client, scope, report).await?;
        names::database_names(client, scope, report).await?;
        reach::check(client, scope, report).await
    })
    .await
}

/// A tenant database (or the template tenant databases are copied from).
pub(crate) async fn tenant_database(
    client: &Client,
    scope: &Scope<'_>,
    report: &mut Report,
) -> Result<(), tokio_postgres::Error> {
    in_catalog_path(client, async {
        names::database_names(client, scope, report).await?;
        reach::check(client, scope, report).await
    })
    .await
}

/// Runs `checks` in a read-only transaction whose search_path is only `pg_catalog`, so every
/// name the catalog prints back (policy expressions, relations) comes schema-qualified.
async fn in_catalog_path<T>(
    client: &Client,
    checks: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, tokio_postgres::Error> {
    client
        .batch_execute("BEGIN READ ONLY; SET LOCAL search_path = pg_catalog")
        .await?;
    let result = checks.await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    client.batch_execute(end).await?;
    result
}

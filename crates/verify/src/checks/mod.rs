//! The checks, grouped by where their facts live: a pool database (`shared.rs`: shared tables,
//! their policies, indexes and sequences; `schemas.rs`: tenant schemas), any database tenants
//! can reach (`reach.rs`: views, definer functions, CREATE rights), and the cluster
//! (`cluster.rs`: roles and database ACLs).

mod cluster;
mod reach;
mod schemas;
mod shared;

use tokio_postgres::Client;

use crate::{Report, Scope};

pub(crate) use cluster::cluster;

/// A pool database: shared tables and tenant schemas, and what tenants can reach there.
pub(crate) async fn pool_database(
    client: &Client,
    scope: &Scope<'_>,
    report: &mut Report,
) -> Result<(), tokio_postgres::Error> {
    in_catalog_path(client, async {
        shared::check(client, scope, report).await?;
        schemas::check(client, scope, report).await?;
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
    in_catalog_path(client, reach::check(client, scope, report)).await
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

/// The tenant id's hex digits in a Bulkhead name (`t_<hex>`, `bh_t_<hex>_<s>`, `bh_o_<hex>_<s>`).
pub(crate) fn tenant_hex(name: &str) -> Option<&str> {
    let rest = name
        .strip_prefix("bh_t_")
        .or_else(|| name.strip_prefix("bh_o_"))
        .or_else(|| name.strip_prefix("t_"))?;
    let hex = rest.get(..32)?;
    hex.bytes().all(|b| b.is_ascii_hexdigit()).then_some(hex)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tenant_names_yield_their_tenant() {
        let hex = "3f2b8c1e0d4a4e1b9c576a0f1e2d3c4b";
        for name in [
            format!("t_{hex}"),
            format!("bh_t_{hex}_1b32c28c"),
            format!("bh_o_{hex}_1b32c28c"),
        ] {
            assert_eq!(super::tenant_hex(&name), Some(hex), "{name}");
        }
        for name in ["bh_gw_x", "bh_billing_rt", "t_short", "public"] {
            assert_eq!(super::tenant_hex(name), None, "{name}");
        }
    }
}

//! Attacks through names: a slug chosen to equal the victim's id (a SaaS that routes a
//! customer by its slug would route it into the victim's data), and the victim's id read off
//! the catalogs every role can read (role, schema and database names, sessions'
//! `application_name`, replication slots, publications, column statistics).

use bulkhead_directory::{NewTenant, TenantRef};
use bulkhead_model::Slug;
use bulkhead_provisioner::{create_tenant, delete_tenant, CreateTenant};

use super::Verdict;
use crate::client::{describe, texts};
use crate::report::Outcome;
use crate::setup::{Pair, Setup};

/// The victim's id in each spelling a slug's alphabet can hold.
fn spellings(pair: &Pair) -> Vec<String> {
    let id = pair.b.id.to_string();
    let hex = pair.b.id.simple();
    vec![
        id.clone(),
        hex.clone(),
        format!("{}-{}", &hex[..16], &hex[16..]),
    ]
}

/// Every way a tenant is given a slug, each with the victim's id as the slug: as text (the
/// CLI, the API, a token's `tenant_slug` claim, `--as-new`), and past that validation
/// straight at the directory (creating, renaming), whose own check must refuse too.
pub(super) async fn slug_is_victims_id(setup: &Setup, pair: &Pair) -> Verdict {
    let mut refused = Vec::new();
    for text in spellings(pair) {
        if let Ok(slug) = text.parse::<Slug>() {
            return (
                Outcome::Leak,
                format!("`{text}` was accepted as a slug ({slug})"),
            );
        }
        refused.push(format!("slug `{text}` refused"));
        let Ok(stored) = Slug::stored(&text) else {
            continue;
        };
        let request = CreateTenant {
            tenant: NewTenant {
                slug: stored.clone(),
                id: None,
                tier: None,
                region: None,
            },
            service: Some(setup.service.clone()),
            mode: Some(pair.mode),
            cluster: None,
        };
        match create_tenant(&setup.dir, &request).await {
            Ok(created) => {
                let _ = delete_tenant(&setup.dir, &TenantRef::Id(created.tenant.id)).await;
                return (
                    Outcome::Leak,
                    format!("a tenant with slug `{text}` (the other's id) was created"),
                );
            }
            Err(e) => refused.push(format!("create refused ({e})")),
        }
        match setup
            .dir
            .rename_tenant(&TenantRef::Id(pair.a.id), &stored)
            .await
        {
            Ok(t) if t.slug == stored => {
                return (
                    Outcome::Leak,
                    format!("the attacker was renamed to `{text}`, the other's id"),
                )
            }
            Ok(_) => {
                return (
                    Outcome::Inconclusive,
                    "the rename answered another slug".into(),
                )
            }
            Err(e) => refused.push(format!("rename refused ({e})")),
        }
    }
    // What the attacker's would-be slug names at the gateway: the victim by id, never the
    // attacker (a service login is trusted with every tenant of its service).
    let s = service_login!(setup);
    let named = texts(
        &s,
        &format!(
            "BEGIN; SET LOCAL bulkhead.tenant = '{}'; SELECT secret FROM probe_rows ORDER BY id",
            pair.b.id.simple()
        ),
    )
    .await;
    let _ = s.batch_execute("ROLLBACK").await;
    match named {
        Ok(rows) if rows.iter().any(|r| pair.a.secrets.contains(r)) => (
            Outcome::Leak,
            "the victim's id in another spelling named the attacker".into(),
        ),
        _ => (Outcome::Blocked, refused.join("; ")),
    }
}

/// What the catalogs show the attacker while the victim holds a session in a transaction.
const CATALOG_NAMES: &str = "
SELECT rolname::text FROM pg_catalog.pg_roles
UNION ALL SELECT nspname::text FROM pg_catalog.pg_namespace
UNION ALL SELECT datname::text FROM pg_catalog.pg_database
UNION ALL SELECT coalesce(application_name, '') FROM pg_catalog.pg_stat_activity
UNION ALL SELECT slot_name::text FROM pg_catalog.pg_replication_slots
UNION ALL SELECT pubname::text FROM pg_catalog.pg_publication";

/// Column statistics of the tables the attacker can read (most common values, bounds).
const STATISTICS: &str = "
SELECT coalesce(most_common_vals::text, '') || ' ' || coalesce(histogram_bounds::text, '')
  FROM pg_catalog.pg_stats WHERE attname = 'tenant_id'";

pub(super) async fn catalog_enumeration(setup: &Setup, pair: &Pair) -> Verdict {
    let b = login!(setup, &pair.b.key, "the victim");
    // The victim's backend now holds its context, inside a transaction.
    if let Err(e) = b
        .batch_execute("BEGIN; SELECT count(*) FROM probe_rows")
        .await
    {
        return (
            Outcome::Inconclusive,
            format!("the victim could not begin: {}", describe(&e)),
        );
    }
    let a = match setup.gateway.login(&pair.a.key).await {
        Ok(c) => c,
        Err(e) => {
            let _ = b.batch_execute("ROLLBACK").await;
            return (
                Outcome::Inconclusive,
                format!("could not log in: {}", describe(&e)),
            );
        }
    };
    let mut seen = Vec::new();
    let mut refused = Vec::new();
    for sql in [CATALOG_NAMES, STATISTICS] {
        match texts(&a, sql).await {
            Ok(v) => seen.extend(v),
            Err(e) => refused.push(describe(&e)),
        }
    }
    let _ = b.batch_execute("ROLLBACK").await;
    let (hex, id) = (pair.b.id.simple(), pair.b.id.to_string());
    let leaked: Vec<&String> = seen
        .iter()
        .filter(|v| {
            let v = v.to_ascii_lowercase();
            v.contains(&hex) || v.contains(&id)
        })
        .collect();
    if !leaked.is_empty() {
        return (
            Outcome::Leak,
            format!("the catalogs name the other tenant: {leaked:?}"),
        );
    }
    if seen.is_empty() {
        return (
            Outcome::Inconclusive,
            format!("the catalogs could not be read: {}", refused.join("; ")),
        );
    }
    (
        Outcome::Blocked,
        format!(
            "{} names read from pg_roles, pg_namespace, pg_database, pg_stat_activity, pg_replication_slots, pg_publication, pg_stats: none carries the other's id",
            seen.len()
        ),
    )
}

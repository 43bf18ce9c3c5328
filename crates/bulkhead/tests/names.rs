//! Tenant names through a real `bulkhead up`: slugs that look like tenant ids are refused
//! everywhere, and an installation from before opaque names (roles, schemas and databases
//! named after tenant ids, a slug equal to another tenant's id) is upgraded by the next `up`:
//! objects renamed online with the data intact, the id-shaped slug not routed until renamed.

mod support;

use std::path::Path;

use bulkhead_model::{ServiceName, TenantId};
use bulkhead_provisioner::naming::Naming;
use support::{gateway_client, ok, workspace, Up};
use tokio_postgres::{Client, NoTls};

async fn superuser(up: &Up, database: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(&up.postgres_dsn(database), NoTls)
        .await
        .expect("superuser connection");
    tokio::spawn(conn);
    client
}

fn tenant_json(up: &Up, slug: &str) -> serde_json::Value {
    let out = ok(up.cli(&["--json", "tenant", "show", slug]));
    serde_json::from_str(&out.stdout).expect("json")
}

fn id_of(up: &Up, slug: &str) -> TenantId {
    tenant_json(up, slug)["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid")
}

/// Every role, schema (of the pool database) and database name on the cluster.
async fn catalog_names(up: &Up) -> Vec<String> {
    let mut names = Vec::new();
    let admin = superuser(up, "postgres").await;
    for sql in [
        "SELECT rolname::text FROM pg_roles",
        "SELECT datname::text FROM pg_database",
    ] {
        for r in admin.query(sql, &[]).await.expect("catalog") {
            names.push(r.get(0));
        }
    }
    let pool = superuser(up, "bh_shop").await;
    for r in pool
        .query("SELECT nspname::text FROM pg_namespace", &[])
        .await
        .expect("namespaces")
    {
        names.push(r.get(0));
    }
    names
}

fn naming_ids(names: &[String], ids: &[TenantId]) -> Vec<String> {
    names
        .iter()
        .filter(|n| ids.iter().any(|id| n.contains(&id.simple())))
        .cloned()
        .collect()
}

#[test]
fn slugs_shaped_like_tenant_ids_are_refused_by_the_cli_and_the_api() {
    let ws = workspace();
    let up = Up::start(&ws.path().join(".bulkhead"), &[]);
    up.billing_service("shop", &[]);
    ok(up.cli(&["tenant", "create", "acme", "--service", "shop"]));
    let acme = id_of(&up, "acme");
    let hex = acme.simple();
    for slug in [
        acme.to_string(),
        hex.clone(),
        format!("{}-{}", &hex[..8], &hex[8..]),
    ] {
        let out = up.cli(&["tenant", "create", &slug, "--service", "shop"]);
        assert_ne!(out.code, 0, "create {slug} was accepted");
        assert!(
            out.stderr.contains("may not look like a tenant id"),
            "{}",
            out.stderr
        );
        let out = up.cli(&["tenant", "rename", "acme", &slug]);
        assert_ne!(out.code, 0, "rename to {slug} was accepted");
        let out = up.cli(&["tenant", "clone", "acme", &slug]);
        assert_ne!(out.code, 0, "clone as {slug} was accepted");
        assert!(
            out.stderr.contains("may not look like a tenant id"),
            "{}",
            out.stderr
        );
    }
    let archive = ws.path().join("acme.bhb");
    ok(up.cli(&[
        "tenant",
        "backup",
        "acme",
        "--output",
        archive.to_str().expect("utf8"),
    ]));
    let out = up.cli(&[
        "tenant",
        "restore",
        "acme",
        archive.to_str().expect("utf8"),
        "--as-new",
        &hex,
    ]);
    assert_ne!(out.code, 0, "restore --as-new an id was accepted");
    assert!(
        out.stderr.contains("may not look like a tenant id"),
        "{}",
        out.stderr
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let r = up
            .post_json("/v1/tenants", &format!(r#"{{"slug": "{acme}"}}"#))
            .await;
        assert_eq!(r.status().as_u16(), 400, "{:?}", r.text().await);
        let r = up
            .post_json(
                "/v1/tenants/acme/rename",
                &format!(r#"{{"slug": "{hex}"}}"#),
            )
            .await;
        assert_eq!(r.status().as_u16(), 400, "{:?}", r.text().await);
        let r = reqwest::Client::new()
            .post(format!(
                "{}/v1/tenants/acme/restore?as_new={{{acme}}}",
                up.api_url
            ))
            .bearer_auth(up.api_token())
            .body(std::fs::read(&archive).expect("archive"))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 400, "{:?}", r.text().await);
        // A plain rename works, and the old slug no longer names the tenant.
        let r = up
            .post_json("/v1/tenants/acme/rename", r#"{"slug": "acme-corp"}"#)
            .await;
        assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    });
    assert_eq!(id_of(&up, "acme-corp"), acme);
    assert_ne!(up.cli(&["tenant", "show", "acme"]).code, 0);
    // The id, in any spelling, names the tenant by id: never read as a slug.
    assert_eq!(id_of(&up, &acme.to_string().to_uppercase()), acme);
    let out = up.cli(&["tenant", "show", &hex]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stderr.contains("malformed tenant id"), "{}", out.stderr);
}

/// Turns the running installation's objects back into what an installation from before
/// opaque names had: legacy names, no role bindings, the old `current_tenant()`, the
/// directory marked legacy; and gives tenant `evil` a slug equal to `victim`'s id, as an
/// older directory allowed.
async fn make_legacy(up: &Up, victim: &TenantId) {
    let control = superuser(up, "bulkhead").await;
    let key: Vec<u8> = control
        .query_one("SELECT naming_key FROM directory.installation", &[])
        .await
        .expect("key")
        .get(0);
    let keyed = Naming::Keyed(key.try_into().expect("32 bytes"));
    let service: ServiceName = "shop".parse().expect("service");
    let admin = superuser(up, "postgres").await;
    let legacy_fn = include_str!("fixtures/legacy_current_tenant.sql");
    let rows = control
        .query(
            "SELECT tenant_id, mode FROM directory.placements WHERE service = 'shop'",
            &[],
        )
        .await
        .expect("placements");
    let pool = superuser(up, "bh_shop").await;
    for r in rows {
        let id = TenantId::from(r.get::<_, uuid::Uuid>(0));
        let mode: &str = r.get(1);
        let (role, old_role) = (
            keyed.runtime_role(&id, &service),
            Naming::Legacy.runtime_role(&id, &service),
        );
        admin
            .batch_execute(&format!("ALTER ROLE \"{role}\" RENAME TO \"{old_role}\""))
            .await
            .expect("role");
        let (mut database, mut schema) = ("bh_shop".to_string(), None::<String>);
        match mode {
            "schema" => {
                let (s, old) = (
                    keyed.tenant_schema(&id, &service),
                    Naming::Legacy.tenant_schema(&id, &service),
                );
                let (o, old_o) = (
                    keyed.owner_role(&id, &service),
                    Naming::Legacy.owner_role(&id, &service),
                );
                admin
                    .batch_execute(&format!("ALTER ROLE \"{o}\" RENAME TO \"{old_o}\""))
                    .await
                    .expect("owner");
                pool.batch_execute(&format!(
                    "ALTER SCHEMA \"{s}\" RENAME TO \"{old}\"; UPDATE bulkhead.applied_migrations SET target = '{old}' WHERE target = '{s}'"
                ))
                .await
                .expect("schema");
                schema = Some(old);
            }
            "database" => {
                let (d, old) = (
                    keyed.tenant_database(&id, &service),
                    Naming::Legacy.tenant_database(&id, &service),
                );
                admin
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                        &[&d],
                    )
                    .await
                    .expect("terminate");
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                admin
                    .batch_execute(&format!("ALTER DATABASE \"{d}\" RENAME TO \"{old}\""))
                    .await
                    .expect("database");
                let db = superuser(up, &old).await;
                db.batch_execute(&format!(
                    "DROP VIEW bulkhead.my_tenant; DROP TABLE bulkhead.tenant_roles; {legacy_fn}"
                ))
                .await
                .expect("legacy helpers in the tenant database");
                database = old;
            }
            _ => {}
        }
        control
            .execute(
                "UPDATE directory.placements SET role_name = $2, database_name = $3, schema_name = $4, epoch = epoch + 1 WHERE service = 'shop' AND tenant_id = $1",
                &[&id.as_uuid(), &old_role, &database, &schema],
            )
            .await
            .expect("placement");
    }
    pool.batch_execute(&format!(
        "DROP VIEW bulkhead.my_tenant; DROP TABLE bulkhead.tenant_roles; {legacy_fn}"
    ))
    .await
    .expect("legacy helpers in the pool");
    control
        .batch_execute(&format!(
            "UPDATE directory.installation SET naming = 'legacy';
             ALTER TABLE directory.tenants DROP CONSTRAINT tenants_slug_not_id_shaped;
             UPDATE directory.tenants SET slug = '{victim}' WHERE slug = 'evil';
             ALTER TABLE directory.tenants ADD CONSTRAINT tenants_slug_not_id_shaped
                 CHECK (replace(slug, '-', '') !~ '^[0-9a-f]{{32}}$') NOT VALID;"
        ))
        .await
        .expect("legacy directory");
}

async fn rows_of(up: &Up, key: &str) -> Result<Vec<String>, tokio_postgres::Error> {
    let c = gateway_client(&up.gateway, "shop", "app", key).await?;
    let rows = c
        .query("SELECT name FROM customers ORDER BY id", &[])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_installation_is_renamed_online_and_its_id_shaped_slug_quarantined() {
    let ws = workspace();
    let data = ws.path().join(".bulkhead");
    let up = Up::start(&data, &[]);
    up.billing_service("shop", &[]);
    let mut keys = Vec::new();
    for (slug, mode) in [
        ("acme", "shared"),
        ("globex", "schema"),
        ("initech", "database"),
        ("evil", "shared"),
    ] {
        let key = up.tenant_with_key(slug, "shop", mode);
        let c = gateway_client(&up.gateway, "shop", "app", &key)
            .await
            .expect("login");
        c.execute(
            "INSERT INTO customers (id, name) VALUES (1, $1)",
            &[&format!("{slug}-row")],
        )
        .await
        .expect("insert");
        keys.push((slug, key));
    }
    let ids: Vec<TenantId> = keys.iter().map(|(s, _)| id_of(&up, s)).collect();
    assert!(
        naming_ids(&catalog_names(&up).await, &ids).is_empty(),
        "a new installation names no tenant in the catalogs"
    );

    make_legacy(&up, &ids[0]).await;
    // What an older installation showed every tenant: its neighbours' ids.
    let acme = gateway_client(&up.gateway, "shop", "app", &keys[0].1)
        .await
        .expect("acme");
    let roles: Vec<String> = acme
        .query("SELECT rolname::text FROM pg_roles", &[])
        .await
        .expect("pg_roles")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !naming_ids(&roles, &ids[1..]).is_empty(),
        "the legacy names were not recreated: {roles:?}"
    );
    drop(acme);
    up.stop();

    // The next `up` renames everything and quarantines the id-shaped slug.
    let up = Up::start(&data, &[]);
    let names = catalog_names(&up).await;
    assert!(
        naming_ids(&names, &ids).is_empty(),
        "names still carry tenant ids: {:?}",
        naming_ids(&names, &ids)
    );
    for (i, (slug, key)) in keys.iter().enumerate().take(3) {
        assert_eq!(
            rows_of(&up, key).await.expect("a renamed tenant is served"),
            vec![format!("{slug}-row")],
            "tenant {slug} ({})",
            ids[i]
        );
    }
    let refused = rows_of(&up, &keys[3].1).await.expect_err("quarantined");
    assert!(
        format!("{refused:?}").contains("tenant rename"),
        "{refused:?}"
    );
    // The victim's id names the victim, never the tenant whose slug it was.
    assert_eq!(id_of(&up, &ids[0].to_string()), ids[0]);
    ok(up.cli(&["tenant", "rename", &ids[3].to_string(), "evil-corp"]));
    assert_eq!(
        rows_of(&up, &keys[3].1).await.expect("served once renamed"),
        vec!["evil-row".to_string()]
    );
    // A tenant reads no neighbour's id off the catalogs, and the names pass verify.
    let acme = gateway_client(&up.gateway, "shop", "app", &keys[0].1)
        .await
        .expect("acme");
    let seen: Vec<String> = acme
        .query(
            "SELECT rolname::text FROM pg_roles UNION ALL SELECT nspname::text FROM pg_namespace UNION ALL SELECT datname::text FROM pg_database",
            &[],
        )
        .await
        .expect("catalogs")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(naming_ids(&seen, &ids).is_empty(), "{seen:?}");
    let out = up.cli(&["verify", "shop"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    // Migrations still reach the renamed schema and database.
    let migrations = ws.path().join("migrations");
    std::fs::create_dir_all(&migrations).expect("dir");
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../provisioner/tests/fixtures/billing");
    for f in std::fs::read_dir(&fixtures).expect("fixtures") {
        let f = f.expect("entry").path();
        std::fs::copy(&f, migrations.join(f.file_name().expect("name"))).expect("copy");
    }
    std::fs::write(
        migrations.join("V3__customer_notes.sql"),
        "ALTER TABLE customers ADD COLUMN note text;",
    )
    .expect("write");
    ok(up.cli(&[
        "migrate",
        "shop",
        "--migrations",
        migrations.to_str().expect("utf8"),
    ]));
    for (_, key) in &keys {
        let c = gateway_client(&up.gateway, "shop", "app", key)
            .await
            .expect("login");
        c.query("SELECT note FROM customers", &[])
            .await
            .expect("the new column reached every place");
    }
    // A second `up` finds nothing to do and changes nothing.
    up.stop();
    let up = Up::start(&data, &[]);
    assert_eq!(
        rows_of(&up, &keys[1].1).await.expect("served"),
        vec!["globex-row".to_string()]
    );
}

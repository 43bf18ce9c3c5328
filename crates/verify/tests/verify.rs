//! `verify` on a real installation: a clean one passes every check; each way of breaking
//! isolation in the catalog is then found by its check, named, and undone.

#[path = "../../provisioner/tests/support/fixture.rs"]
mod fixture;

use bulkhead_directory::Directory;
use bulkhead_model::{Mode, ServiceName};
use bulkhead_pgkit::shared_cluster;
use bulkhead_verify::{verify, Check, Level, Report};
use tokio_postgres::{Client, NoTls};

async fn admin(database: &str) -> Client {
    let (client, conn) =
        tokio_postgres::connect(&shared_cluster().expect("pg").dsn(database), NoTls)
            .await
            .expect("admin");
    tokio::spawn(conn);
    client
}

fn failures(r: &Report, check: Check) -> Vec<String> {
    r.findings
        .iter()
        .filter(|f| f.check == check && f.level == Level::Fail)
        .map(|f| f.object.clone())
        .collect()
}

/// Runs `break_it` in `database`, checks that `check` fails naming `object`, then `undo`es it.
async fn caught(
    dir: &Directory,
    service: &ServiceName,
    database: &str,
    break_it: &str,
    undo: &str,
    check: Check,
    object: &str,
) {
    let db = admin(database).await;
    db.batch_execute(break_it).await.expect(break_it);
    let r = verify(dir, Some(service)).await.expect("verify");
    let found = failures(&r, check);
    assert!(
        found.iter().any(|o| o.contains(object)),
        "{break_it}: {check:?} should name {object}, found {found:?}\n{}",
        r.to_table()
    );
    db.batch_execute(undo).await.expect(undo);
}

#[tokio::test]
async fn a_clean_installation_passes_and_each_breakage_is_found() {
    let pg = shared_cluster().expect("pg");
    let dir = fixture::billing("verify_control", "vfy").await;
    let service: ServiceName = "vfy".parse().expect("s");
    let mut places = Vec::new();
    for (slug, mode) in [
        ("v-a", Mode::Shared),
        ("v-b", Mode::Shared),
        ("v-c", Mode::Schema),
        ("v-d", Mode::Schema),
        ("v-e", Mode::Database),
    ] {
        let created = fixture::place(&dir, "vfy", slug, mode, None, None).await;
        places.push(created.placement.expect("placed"));
    }
    let clean = verify(&dir, Some(&service)).await.expect("verify");
    assert_eq!(
        clean.failures(),
        0,
        "a clean installation fails nothing:\n{}",
        clean.to_table()
    );
    for check in [
        Check::ForcedRls,
        Check::BulkheadPolicy,
        Check::TenantColumn,
        Check::RoleAttributes,
        Check::RoleMembership,
        Check::SchemaUsage,
        Check::PublicCreate,
        Check::DatabaseConnect,
        Check::UsageOutbox,
    ] {
        assert!(
            clean.checked.get(&check).copied().unwrap_or(0) > 0,
            "{check:?} looked at something:\n{}",
            clean.to_table()
        );
    }
    let pool = places[0].database.clone();
    let (ra, rb) = (places[0].role.clone(), places[1].role.clone());
    let (sc, sd) = (
        places[2].schema.clone().expect("schema"),
        places[3].schema.clone().expect("schema"),
    );
    let rd = places[3].role.clone();
    let tdb = places[4].database.clone();
    let group = format!("bh_{service}_rt");
    caught(
        &dir,
        &service,
        &pool,
        "ALTER TABLE customers NO FORCE ROW LEVEL SECURITY",
        "ALTER TABLE customers FORCE ROW LEVEL SECURITY",
        Check::ForcedRls,
        "customers",
    )
    .await;
    caught(
        &dir,
        &service,
        &pool,
        "CREATE POLICY open_door ON customers USING (true)",
        "DROP POLICY open_door ON customers",
        Check::NoWideningPolicy,
        "open_door",
    )
    .await;
    caught(&dir, &service, &pool, "ALTER POLICY bulkhead_tenant ON orders USING (true)", "ALTER POLICY bulkhead_tenant ON orders USING (tenant_id = (SELECT bulkhead.current_tenant()))", Check::BulkheadPolicy, "orders").await;
    caught(
        &dir,
        &service,
        &pool,
        "CREATE TABLE public.notes (id int)",
        "DROP TABLE public.notes",
        Check::TenantColumn,
        "notes",
    )
    .await;
    caught(
        &dir,
        &service,
        &pool,
        &format!("ALTER TABLE customers OWNER TO {ra}"),
        &format!("ALTER TABLE customers OWNER TO {}", pg.server().superuser()),
        Check::RoleOwnership,
        "customers",
    )
    .await;
    caught(
        &dir,
        &service,
        "postgres",
        &format!("ALTER ROLE {ra} BYPASSRLS"),
        &format!("ALTER ROLE {ra} NOBYPASSRLS"),
        Check::RoleAttributes,
        &ra,
    )
    .await;
    caught(
        &dir,
        &service,
        "postgres",
        &format!("GRANT {ra} TO {rb}"),
        &format!("REVOKE {ra} FROM {rb}"),
        Check::RoleMembership,
        &rb,
    )
    .await;
    caught(
        &dir,
        &service,
        &pool,
        &format!("GRANT USAGE ON SCHEMA {sc} TO {rd}"),
        &format!("REVOKE USAGE ON SCHEMA {sc} FROM {rd}"),
        Check::SchemaUsage,
        &sc,
    )
    .await;
    caught(
        &dir,
        &service,
        &pool,
        &format!("GRANT USAGE ON SCHEMA {sd} TO PUBLIC"),
        &format!("REVOKE USAGE ON SCHEMA {sd} FROM PUBLIC"),
        Check::SchemaUsage,
        &sd,
    )
    .await;
    caught(
        &dir,
        &service,
        &pool,
        &format!("GRANT CREATE ON SCHEMA public TO {ra}"),
        &format!("REVOKE CREATE ON SCHEMA public FROM {ra}"),
        Check::PublicCreate,
        &ra,
    )
    .await;
    caught(
        &dir,
        &service,
        "postgres",
        &format!("GRANT CONNECT ON DATABASE {tdb} TO PUBLIC"),
        &format!("REVOKE CONNECT ON DATABASE {tdb} FROM PUBLIC"),
        Check::DatabaseConnect,
        &tdb,
    )
    .await;
    caught(&dir, &service, &pool, &format!("CREATE VIEW public.all_customers AS SELECT * FROM customers; GRANT SELECT ON public.all_customers TO {group}"), "DROP VIEW public.all_customers", Check::InvokerViews, "all_customers").await;
    caught(
        &dir,
        &service,
        &tdb,
        "CREATE FUNCTION public.peek() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'select 1'",
        "DROP FUNCTION public.peek()",
        Check::DefinerFunctions,
        "peek",
    )
    .await;
    // The key that signs shared tenants' contexts: the shared runtime group (every shared
    // tenant's role) must not read it, nor anyone but the gateway's login, which only reads.
    caught(
        &dir,
        &service,
        &pool,
        &format!("GRANT SELECT ON bulkhead.context_key TO {group}"),
        &format!("REVOKE SELECT ON bulkhead.context_key FROM {group}"),
        Check::ContextKey,
        &group,
    )
    .await;
    caught(
        &dir,
        &service,
        "postgres",
        &format!("GRANT pg_read_all_data TO {group}"),
        &format!("REVOKE pg_read_all_data FROM {group}"),
        Check::ContextKey,
        &group,
    )
    .await;
    let gateway = dir.gateway_role().await.expect("gateway role");
    caught(
        &dir,
        &service,
        &pool,
        &format!("GRANT UPDATE ON bulkhead.context_key TO {gateway}"),
        &format!("REVOKE UPDATE ON bulkhead.context_key FROM {gateway}"),
        Check::ContextKey,
        &gateway,
    )
    .await;
    caught(
        &dir,
        &service,
        &pool,
        "GRANT SELECT ON bulkhead.usage_outbox TO PUBLIC",
        "REVOKE SELECT ON bulkhead.usage_outbox FROM PUBLIC",
        Check::UsageOutbox,
        "usage_outbox",
    )
    .await;
    caught(
        &dir,
        &service,
        &tdb,
        "ALTER TABLE bulkhead.usage_outbox DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE bulkhead.usage_outbox ENABLE ROW LEVEL SECURITY",
        Check::UsageOutbox,
        "usage_outbox",
    )
    .await;
    caught(
        &dir,
        &service,
        &pool,
        "CREATE POLICY anyone ON bulkhead.usage_outbox FOR INSERT WITH CHECK (true)",
        "DROP POLICY anyone ON bulkhead.usage_outbox",
        Check::UsageOutbox,
        "usage_outbox",
    )
    .await;
    // An allow-listed definer that pins search_path passes.
    let db = admin(&pool).await;
    db.batch_execute("CREATE FUNCTION public.audited() RETURNS int LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS 'select 1'").await.expect("definer");
    let r = verify(&dir, Some(&service)).await.expect("verify");
    assert_eq!(
        failures(&r, Check::DefinerFunctions).len(),
        1,
        "not allow-listed yet"
    );
    dir.allow_definer(&service, "public.audited", true)
        .await
        .expect("allow");
    let r = verify(&dir, Some(&service)).await.expect("verify");
    assert!(
        failures(&r, Check::DefinerFunctions).is_empty(),
        "{}",
        r.to_table()
    );
    db.batch_execute("DROP FUNCTION public.audited()")
        .await
        .expect("drop");
    // Warnings do not fail the report.
    db.batch_execute("CREATE INDEX customers_by_name ON customers (name)")
        .await
        .expect("index");
    let r = verify(&dir, Some(&service)).await.expect("verify");
    assert_eq!(r.failures(), 0, "{}", r.to_table());
    assert!(
        r.findings
            .iter()
            .any(|f| f.level == Level::Warn && f.object.contains("customers_by_name")),
        "{}",
        r.to_table()
    );
}

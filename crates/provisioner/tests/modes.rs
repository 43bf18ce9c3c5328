//! Each isolation mode provisions a working place whose runtime role cannot see or write any
//! other tenant's data, and teardown removes it.

mod support;

use bulkhead_model::Mode;
use support::*;

#[tokio::test]
async fn shared_tenants_see_only_their_rows_and_cannot_write_as_another() {
    let dir = directory("modes_shared").await;
    service(&dir, "shop_shared", Mode::Shared, vec![]).await;
    let (a, pa) = tenant(&dir, "alpha", "shop_shared", Mode::Shared).await;
    let (b, pb) = tenant(&dir, "beta", "shop_shared", Mode::Shared).await;
    assert_eq!(pa.state.as_str(), "active");
    assert_eq!(pa.schema_version, 2);
    as_tenant(&pa, "INSERT INTO customers (id, name, country) VALUES (1, 'a1', 'fr'), (2, 'a2', 'de') RETURNING id").await.expect("insert a");
    as_tenant(
        &pb,
        "INSERT INTO customers (id, name) VALUES (1, 'b1') RETURNING id",
    )
    .await
    .expect("insert b");
    assert_eq!(count(&pa, "SELECT count(*) FROM customers").await, 2);
    assert_eq!(count(&pb, "SELECT count(*) FROM customers").await, 1);
    // The tenant_id default comes from the context.
    let rows = as_tenant(&pa, "SELECT DISTINCT tenant_id FROM customers")
        .await
        .expect("read");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, uuid::Uuid>(0), a.id.as_uuid());

    // Writing a row for another tenant is refused by the policy's WITH CHECK.
    let err = as_tenant(
        &pa,
        &format!(
            "INSERT INTO customers (tenant_id, id, name) VALUES ('{}', 9, 'x') RETURNING id",
            b.id
        ),
    )
    .await
    .expect_err("insert as b");
    assert_eq!(sqlstate(&err), "42501", "{err}");
    // Updating or deleting another tenant's rows touches nothing.
    let updated = as_tenant(
        &pa,
        "UPDATE customers SET name = 'pwned' WHERE id = 1 RETURNING id",
    )
    .await
    .map_err(|e| format!("{e:?}"))
    .expect("update");
    assert_eq!(updated.len(), 1);
    assert_eq!(
        count(&pb, "SELECT count(*) FROM customers WHERE name = 'pwned'").await,
        0
    );
    // Spoofing the setting without the role is refused; no setting at all is refused.
    let err = as_role_with_tenant(&pa, &b.id.to_string(), "SELECT count(*) FROM customers")
        .await
        .expect_err("spoof");
    assert!(message(&err).contains("does not match"), "{err:?}");
    let err = as_role_with_tenant(&pa, "", "SELECT count(*) FROM customers")
        .await
        .expect_err("no tenant");
    assert!(message(&err).contains("no tenant context"), "{err:?}");
    // TRUNCATE is not granted (RLS would not apply to it).
    let err = as_tenant(&pa, "TRUNCATE customers")
        .await
        .expect_err("truncate");
    assert_eq!(sqlstate(&err), "42501");
    // Reference data is readable, not writable.
    assert_eq!(count(&pa, "SELECT count(*) FROM countries").await, 4);
    let err = as_tenant(
        &pa,
        "INSERT INTO countries VALUES ('xx', 'X') RETURNING code",
    )
    .await
    .expect_err("ref write");
    assert_eq!(sqlstate(&err), "42501");
    // Tenants cannot create anything.
    let err = as_tenant(&pa, "CREATE TABLE public.mine (id int)")
        .await
        .expect_err("create");
    assert_eq!(sqlstate(&err), "42501");
}

#[tokio::test]
async fn schema_tenants_cannot_use_each_others_schemas() {
    let dir = directory("modes_schema").await;
    service(&dir, "shop_schema", Mode::Schema, vec![]).await;
    let (_, pc) = tenant(&dir, "gamma", "shop_schema", Mode::Schema).await;
    let (_, pd) = tenant(&dir, "delta", "shop_schema", Mode::Schema).await;
    let sc = pc.schema.clone().expect("schema");
    let sd = pd.schema.clone().expect("schema");
    assert_ne!(sc, sd);
    as_tenant(
        &pd,
        "INSERT INTO customers (id, name) VALUES (1, 'd1') RETURNING id",
    )
    .await
    .expect("insert d");
    as_tenant(
        &pc,
        "INSERT INTO customers (id, name, country) VALUES (1, 'c1', 'pt') RETURNING id",
    )
    .await
    .expect("insert c");
    assert_eq!(count(&pc, "SELECT count(*) FROM customers").await, 1);
    let err = as_tenant(&pc, &format!("SELECT count(*) FROM \"{sd}\".customers"))
        .await
        .expect_err("neighbour");
    assert_eq!(sqlstate(&err), "42501", "{err}");
    let err = as_tenant(
        &pc,
        &format!("INSERT INTO \"{sd}\".customers (id, name) VALUES (5, 'x') RETURNING id"),
    )
    .await
    .expect_err("neighbour write");
    assert_eq!(sqlstate(&err), "42501", "{err}");
    // Shared tables of the pool are out of reach for schema tenants.
    let err = as_tenant(&pc, "SELECT count(*) FROM public.customers")
        .await
        .expect_err("public");
    assert_eq!(sqlstate(&err), "42501", "{err}");
    // The schema is owned by the tenant's owner role, not by its runtime role, which
    // cannot create objects even in its own schema.
    let pool = connect(&pc.database).await;
    let owner: String = pool
        .query_one(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1",
            &[&sc],
        )
        .await
        .expect("owner")
        .get(0);
    assert!(owner.starts_with("bh_o_"), "{owner}");
    let err = as_tenant(&pc, "CREATE TABLE mine (id int)")
        .await
        .expect_err("create");
    assert_eq!(sqlstate(&err), "42501");
    assert_eq!(
        count(&pc, "SELECT count(*) FROM countries").await,
        4,
        "reference data through search_path"
    );
}

#[tokio::test]
async fn database_tenants_cannot_connect_to_each_others_databases() {
    let dir = directory("modes_database").await;
    service(&dir, "shop_db", Mode::Shared, vec![]).await;
    let (_, pe) = tenant(&dir, "epsilon", "shop_db", Mode::Database).await;
    let (_, pf) = tenant(&dir, "zeta", "shop_db", Mode::Database).await;
    assert_ne!(pe.database, pf.database);
    as_tenant(
        &pe,
        "INSERT INTO customers (id, name) VALUES (1, 'e1') RETURNING id",
    )
    .await
    .expect("insert");
    assert_eq!(
        count(&pe, "SELECT count(*) FROM countries").await,
        4,
        "reference data copied in"
    );
    assert_eq!(count(&pf, "SELECT count(*) FROM customers").await, 0);

    // A login that holds E's role can reach E's database and not F's.
    let admin = connect("postgres").await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE probe_e LOGIN PASSWORD 'probe-password'; GRANT \"{}\" TO probe_e;",
            pe.role
        ))
        .await
        .expect("probe role");
    let dsn = |db: &str| {
        format!(
            "postgres://probe_e:probe-password@127.0.0.1:{}/{db}",
            pg().port()
        )
    };
    // The startup handshake (where CONNECT is checked) completes inside connect().
    let _own = tokio_postgres::connect(&dsn(&pe.database), tokio_postgres::NoTls)
        .await
        .expect("own database");
    let err = tokio_postgres::connect(&dsn(&pf.database), tokio_postgres::NoTls)
        .await
        .err()
        .expect("neighbour database refused");
    assert_eq!(sqlstate(&err), "42501", "{err}");
    let err = tokio_postgres::connect(&dsn("bh_shop_db"), tokio_postgres::NoTls)
        .await
        .err()
        .expect("pool database refused");
    assert_eq!(sqlstate(&err), "42501", "{err}");
    admin
        .batch_execute("DROP ROLE probe_e")
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn deleting_a_tenant_removes_its_data_and_roles_in_every_mode() {
    let dir = directory("modes_delete").await;
    service(&dir, "shop_del", Mode::Shared, vec![]).await;
    let (_, keep) = tenant(&dir, "keeper", "shop_del", Mode::Shared).await;
    as_tenant(
        &keep,
        "INSERT INTO customers (id, name) VALUES (1, 'k') RETURNING id",
    )
    .await
    .expect("insert");
    let admin = connect("postgres").await;
    for (slug, mode) in [
        ("s1", Mode::Shared),
        ("s2", Mode::Schema),
        ("s3", Mode::Database),
    ] {
        let (t, p) = tenant(&dir, slug, "shop_del", mode).await;
        as_tenant(
            &p,
            "INSERT INTO customers (id, name) VALUES (1, 'x') RETURNING id",
        )
        .await
        .expect("insert");
        let deleted = bulkhead_provisioner::delete_tenant(&dir, &slug.parse().expect("ref"))
            .await
            .expect("delete");
        assert_eq!(deleted.removed.len(), 1);
        let roles: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1",
                // The runtime role and the schema owner share the tenant's handle.
                &[&format!(
                    "%{}%",
                    p.role.strip_prefix("bh_t_").expect("a runtime role")
                )],
            )
            .await
            .expect("roles")
            .get(0);
        assert_eq!(roles, 0, "{mode}: roles left behind");
        let dbs: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1",
                &[&p.database],
            )
            .await
            .expect("dbs")
            .get(0);
        assert_eq!(dbs, i64::from(mode != Mode::Database), "{mode}");
        assert!(dir.tenant(&slug.parse().expect("ref")).await.is_err());
        let pool = connect("bh_shop_del").await;
        let rows: i64 = pool
            .query_one(
                "SELECT count(*) FROM public.customers WHERE tenant_id = $1",
                &[&t.id.as_uuid()],
            )
            .await
            .expect("rows")
            .get(0);
        assert_eq!(rows, 0, "{mode}: rows left behind");
    }
    assert_eq!(
        count(&keep, "SELECT count(*) FROM customers").await,
        1,
        "the other tenant is untouched"
    );
}

#[tokio::test]
async fn tenants_created_concurrently_in_every_mode_all_succeed() {
    let dir = directory("modes_concurrent").await;
    service(&dir, "shop_conc", Mode::Shared, vec![]).await;
    let requests: Vec<_> = (0..24)
        .map(|i| {
            let mode = [
                Mode::Schema,
                Mode::Schema,
                Mode::Schema,
                Mode::Shared,
                Mode::Schema,
                Mode::Database,
            ][i % 6];
            request(&format!("conc-{i}"), "shop_conc", mode)
        })
        .collect();
    // Six at a time, like a few API clients signing up customers at once.
    use futures_util::StreamExt;
    let results: Vec<_> = futures_util::stream::iter(
        requests
            .iter()
            .map(|r| bulkhead_provisioner::create_tenant(&dir, r)),
    )
    .buffer_unordered(6)
    .collect()
    .await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The roles of `login` in the cluster, by membership.
async fn memberships(login: &str) -> Vec<String> {
    let c = connect("postgres").await;
    c.query(
        "SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
          JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1",
        &[&login],
    )
    .await
    .expect("memberships")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test]
async fn each_gateway_login_holds_only_the_roles_it_switches_to() {
    // PostgreSQL 15 builds a session user's whole membership list on its first SET ROLE, in
    // time growing with the square of its length: the pool login holds schema tenants'
    // roles, the database login database tenants', and neither a shared tenant's (those run
    // as their group). `prepare_cluster` brings an older installation's grants to that.
    let dir = directory("modes_logins").await;
    service(&dir, "shop_logins", Mode::Shared, vec![]).await;
    let (_, shared) = tenant(&dir, "sh", "shop_logins", Mode::Shared).await;
    let (_, schema) = tenant(&dir, "sc", "shop_logins", Mode::Schema).await;
    let (_, database) = tenant(&dir, "db", "shop_logins", Mode::Database).await;
    let gw = dir.gateway_role().await.expect("gateway role");
    let gwd = bulkhead_directory::database_login_of(&gw);
    assert!(gwd.starts_with("bh_gwd_") && gwd != gw, "{gwd}");
    let check = |pool: Vec<String>, db: Vec<String>| {
        assert!(pool.contains(&schema.role), "{pool:?}");
        assert!(!pool.contains(&shared.role), "{pool:?}");
        assert!(!pool.contains(&database.role), "{pool:?}");
        assert_eq!(db, vec![database.role.clone()]);
    };
    check(memberships(&gw).await, memberships(&gwd).await);
    // An installation from before the split: every tenant's role granted to the pool login.
    let admin = connect("postgres").await;
    admin
        .batch_execute(&format!(
            "GRANT \"{}\" TO \"{gw}\"; GRANT \"{}\" TO \"{gw}\"; GRANT CONNECT ON DATABASE \"{}\" TO \"{gw}\"",
            shared.role, database.role, database.database
        ))
        .await
        .expect("old grants");
    let cluster = dir.cluster(&shared.cluster).await.expect("cluster");
    bulkhead_provisioner::prepare_cluster(&dir, &cluster)
        .await
        .expect("prepare");
    check(memberships(&gw).await, memberships(&gwd).await);
    let connect_rights = admin
        .query_one(
            "SELECT has_database_privilege($1, $3, 'CONNECT'), has_database_privilege($2, $3, 'CONNECT')",
            &[&gw, &gwd, &database.database],
        )
        .await
        .expect("connect rights");
    assert!(
        !connect_rights.get::<_, bool>(0),
        "the pool login keeps CONNECT on a tenant database"
    );
    assert!(connect_rights.get::<_, bool>(1));
}

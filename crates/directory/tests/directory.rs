//! The directory against a real PostgreSQL: create, list, show, remove, and every validation
//! error the CLI and API surface.

use bulkhead_directory::{
    Directory, DirectoryError, ErrorKind, NewCluster, NewService, NewTenant, TenantRef,
};
use bulkhead_model::{Mode, TenantId, TenantState, Tier};
use bulkhead_pgkit::{shared_cluster, ThrowawayCluster};

async fn fresh_directory(label: &str) -> (Directory, String) {
    let cluster = shared_cluster().expect("cluster");
    let db = cluster.create_database(label).await.expect("db");
    let dir = Directory::connect(&db.dsn).await.expect("connect");
    dir.migrate().await.expect("migrate");
    (dir, cluster.dsn("postgres"))
}

fn new_cluster(name: &str, dsn: &str) -> NewCluster {
    NewCluster {
        name: name.parse().expect("name"),
        region: "local".parse().expect("region"),
        admin_dsn: dsn.to_string(),
        capacity: None,
    }
}

fn new_service(name: &str, cluster: Option<&str>) -> NewService {
    NewService {
        name: name.parse().expect("name"),
        default_mode: Mode::Shared,
        tier_modes: Default::default(),
        cluster: cluster.map(|c| c.parse().expect("cluster")),
        reference_tables: Vec::new(),
        migrations: Vec::new(),
    }
}

fn new_tenant(slug: &str) -> NewTenant {
    NewTenant {
        slug: slug.parse().expect("slug"),
        id: None,
        tier: None,
        region: None,
    }
}

#[tokio::test]
async fn migrating_twice_applies_nothing_the_second_time() {
    let (dir, _) = fresh_directory("migrate_twice").await;
    let again = dir.migrate().await.expect("second migrate");
    assert!(again.applied.is_empty());
    assert_eq!(again.version, bulkhead_directory::SCHEMA_VERSION);
}

#[tokio::test]
async fn clusters_are_added_listed_shown_and_removed() {
    let (dir, dsn) = fresh_directory("clusters").await;
    let added = dir
        .add_cluster(&new_cluster("main", &dsn))
        .await
        .expect("add");
    assert!(added.server_version.starts_with("15") || added.server_version.starts_with('1'));
    let json = serde_json::to_string(&added).expect("json");
    let password = shared_cluster().expect("cluster").password().to_string();
    assert!(
        !json.contains(&password),
        "the admin password leaked into JSON: {json}"
    );
    assert!(json.contains("***"));

    let list = dir.list_clusters().await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(
        dir.cluster(&"main".parse().expect("n"))
            .await
            .expect("show")
            .name
            .as_str(),
        "main"
    );

    let dup = dir
        .add_cluster(&new_cluster("main", &dsn))
        .await
        .expect_err("duplicate");
    assert!(
        matches!(
            dup,
            DirectoryError::AlreadyExists {
                kind: "cluster",
                ..
            }
        ),
        "{dup}"
    );
    assert_eq!(dup.kind(), ErrorKind::Conflict);

    dir.remove_cluster(&"main".parse().expect("n"))
        .await
        .expect("remove");
    let gone = dir
        .cluster(&"main".parse().expect("n"))
        .await
        .expect_err("gone");
    assert_eq!(gone.kind(), ErrorKind::NotFound);
    let again = dir
        .remove_cluster(&"main".parse().expect("n"))
        .await
        .expect_err("gone");
    assert_eq!(again.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_cluster_whose_dsn_does_not_answer_is_refused() {
    let (dir, _) = fresh_directory("unreachable").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    // Nothing listens on `port` once the listener above is dropped.
    let err = dir
        .add_cluster(&new_cluster(
            "ghost",
            &format!("postgres://x:y@127.0.0.1:{port}/postgres"),
        ))
        .await
        .expect_err("unreachable");
    assert!(matches!(err, DirectoryError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("does not answer"), "{err}");
    assert!(dir.list_clusters().await.expect("list").is_empty());
}

#[tokio::test]
async fn a_malformed_dsn_is_refused() {
    let (dir, _) = fresh_directory("bad_dsn").await;
    let err = dir
        .add_cluster(&new_cluster("bad", "postgres://a:b@host:notaport/x"))
        .await
        .expect_err("bad dsn");
    assert!(matches!(err, DirectoryError::InvalidDsn { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Invalid);
}

#[tokio::test]
async fn a_cluster_without_logical_wal_is_refused_with_the_fix() {
    let (dir, _) = fresh_directory("wal_replica").await;
    let replica =
        ThrowawayCluster::start_with_settings(&[("wal_level", "replica")]).expect("second cluster");
    let err = dir
        .add_cluster(&new_cluster("old", &replica.dsn("postgres")))
        .await
        .expect_err("wal_level replica");
    assert!(matches!(err, DirectoryError::Unsuitable { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("ALTER SYSTEM SET wal_level = logical"),
        "{err}"
    );
}

#[tokio::test]
async fn a_cluster_holding_placements_or_services_cannot_be_removed() {
    let (dir, dsn) = fresh_directory("cluster_in_use").await;
    dir.add_cluster(&new_cluster("main", &dsn))
        .await
        .expect("add");
    dir.create_service(&new_service("billing", None))
        .await
        .expect("service");
    let err = dir
        .remove_cluster(&"main".parse().expect("n"))
        .await
        .expect_err("home of billing");
    assert!(matches!(err, DirectoryError::InUse { .. }), "{err}");
    assert!(err.to_string().contains("billing"), "{err}");

    let tenant = dir
        .create_tenant(&new_tenant("acme"))
        .await
        .expect("tenant");
    let client = tokio_postgres::connect(dir.dsn(), tokio_postgres::NoTls)
        .await
        .expect("raw");
    tokio::spawn(client.1);
    client
        .0
        .execute(
            "INSERT INTO directory.placements (service, tenant_id, mode, cluster, database_name, role_name, state)
             VALUES ('billing', $1, 'shared', 'main', 'billing_pool', 'r', 'active')",
            &[&tenant.id.as_uuid()],
        )
        .await
        .expect("placement");
    let err = dir
        .remove_cluster(&"main".parse().expect("n"))
        .await
        .expect_err("holds a placement");
    assert!(err.to_string().contains("1 placement"), "{err}");
    let err = dir
        .remove_service(&"billing".parse().expect("n"))
        .await
        .expect_err("has a tenant");
    assert!(
        matches!(
            err,
            DirectoryError::InUse {
                kind: "service",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        dir.placements_of(&tenant.id)
            .await
            .expect("placements")
            .len(),
        1
    );
}

#[tokio::test]
async fn services_resolve_modes_per_tier_and_validate_their_cluster() {
    let (dir, dsn) = fresh_directory("services").await;
    let err = dir
        .create_service(&new_service("billing", None))
        .await
        .expect_err("no cluster yet");
    assert!(err.to_string().contains("cluster add"), "{err}");
    dir.add_cluster(&new_cluster("main", &dsn))
        .await
        .expect("add");
    let err = dir
        .create_service(&new_service("billing", Some("nope")))
        .await
        .expect_err("unknown cluster");
    assert_eq!(err.kind(), ErrorKind::NotFound);

    let mut svc = new_service("billing", None);
    svc.tier_modes
        .insert("business".parse().expect("t"), Mode::Schema);
    svc.tier_modes
        .insert("enterprise".parse().expect("t"), Mode::Database);
    let created = dir.create_service(&svc).await.expect("create");
    assert_eq!(created.cluster.as_str(), "main");
    assert_eq!(created.mode_for(&Tier::free()), Mode::Shared);
    assert_eq!(
        created.mode_for(&"enterprise".parse().expect("t")),
        Mode::Database
    );
    let shown = dir
        .service(&"billing".parse().expect("n"))
        .await
        .expect("show");
    assert_eq!(shown.tier_modes.len(), 2);

    let dup = dir.create_service(&svc).await.expect_err("duplicate");
    assert_eq!(dup.kind(), ErrorKind::Conflict);
    assert_eq!(dir.list_services().await.expect("list").len(), 1);
    dir.remove_service(&"billing".parse().expect("n"))
        .await
        .expect("remove");
    assert!(dir.list_services().await.expect("list").is_empty());
}

#[tokio::test]
async fn tenants_are_found_by_id_or_slug_and_suspended_and_resumed() {
    let (dir, _) = fresh_directory("tenants").await;
    let id: TenantId = "3f2b8c1e-0d4a-4e1b-9c57-6a0f1e2d3c4b".parse().expect("id");
    let mut new = new_tenant("acme");
    new.id = Some(id);
    new.tier = Some("business".parse().expect("tier"));
    new.region = Some("eu".parse().expect("region"));
    let acme = dir.create_tenant(&new).await.expect("create");
    assert_eq!(acme.id, id);
    assert_eq!(acme.state, TenantState::Active);
    let by_slug = dir
        .tenant(&"acme".parse().expect("ref"))
        .await
        .expect("by slug");
    let by_id = dir.tenant(&TenantRef::Id(id)).await.expect("by id");
    assert_eq!(by_slug.id, by_id.id);

    let dup_slug = dir
        .create_tenant(&new_tenant("acme"))
        .await
        .expect_err("dup slug");
    assert!(
        dup_slug.to_string().contains("`acme` already exists"),
        "{dup_slug}"
    );
    let mut dup_id = new_tenant("other");
    dup_id.id = Some(id);
    let dup_id = dir.create_tenant(&dup_id).await.expect_err("dup id");
    assert!(dup_id.to_string().contains(&id.to_string()), "{dup_id}");

    let suspended = dir
        .set_tenant_state(&"acme".parse().expect("r"), TenantState::Suspended)
        .await
        .expect("suspend");
    assert_eq!(suspended.state, TenantState::Suspended);
    let again = dir
        .set_tenant_state(&"acme".parse().expect("r"), TenantState::Suspended)
        .await
        .expect("idempotent");
    assert_eq!(again.state, TenantState::Suspended);
    let resumed = dir
        .set_tenant_state(&"acme".parse().expect("r"), TenantState::Active)
        .await
        .expect("resume");
    assert_eq!(resumed.state, TenantState::Active);

    let missing = dir
        .tenant(&"nobody".parse().expect("r"))
        .await
        .expect_err("missing");
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert!("Not A Slug".parse::<TenantRef>().is_err());
    assert_eq!(dir.list_tenants().await.expect("list").len(), 1);
}

#[tokio::test]
async fn proof_runs_keep_the_latest_of_each_kind_and_service_only() {
    let (dir, _) = fresh_directory("proof_runs").await;
    for i in 0..25 {
        let summary = format!("run {i}");
        dir.record_proof_run(
            None,
            "verify",
            i % 2 == 0,
            &summary,
            &serde_json::json!({ "i": i }),
        )
        .await
        .expect("record");
    }
    dir.record_proof_run(None, "probe", true, "one probe", &serde_json::json!({}))
        .await
        .expect("record");
    let latest = dir.latest_proof_runs().await.expect("latest");
    assert_eq!(latest.len(), 2, "{latest:?}");
    let verify = latest.iter().find(|r| r.kind == "verify").expect("verify");
    assert_eq!(verify.summary, "run 24");
    let (c, conn) = tokio_postgres::connect(dir.dsn(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let kept: i64 = c
        .query_one(
            "SELECT count(*) FROM directory.proof_runs WHERE kind = 'verify'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(kept, 20);
}

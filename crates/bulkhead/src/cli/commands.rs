//! The directory verbs: each builds one API request and prints its answer.

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::args::{ClusterCmd, Command, CredentialCmd, KeyCmd, ServiceCmd, TenantCmd};
use super::client::{exit, ApiClient, Failure};
use super::output::{print_list, print_object, Column};
use bulkhead_provisioner::migrate::read_migrations_dir;

fn cell_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

const CLUSTER_COLUMNS: &[Column] = &[
    ("NAME", "name"),
    ("REGION", "region"),
    ("VERSION", "server_version"),
    ("PLACEMENTS", "placements"),
    ("CAPACITY", "capacity"),
    ("DSN", "admin_dsn"),
];
const CREDENTIAL_COLUMNS: &[Column] = &[
    ("USER", "username"),
    ("CREATED", "created_at"),
    ("REVOKED", "revoked_at"),
];
const SERVICE_COLUMNS: &[Column] = &[
    ("NAME", "name"),
    ("MODE", "default_mode"),
    ("TIERS", "tier_modes"),
    ("CLUSTER", "cluster"),
    ("TENANTS", "placements"),
];
const TENANT_COLUMNS: &[Column] = &[
    ("SLUG", "slug"),
    ("ID", "id"),
    ("TIER", "tier"),
    ("REGION", "region"),
    ("STATE", "state"),
];

pub(crate) async fn dispatch(
    api: &ApiClient,
    as_json: bool,
    command: &Command,
) -> Result<(), Failure> {
    match command {
        Command::Cluster(cmd) => cluster(api, as_json, cmd).await,
        Command::Service(cmd) => service(api, as_json, cmd).await,
        Command::Tenant(cmd) => tenant(api, as_json, cmd).await,
        Command::Migrate(args) => super::migrate::run(api, as_json, args).await,
        Command::Verify { service } => super::proof::verify(api, as_json, service.as_ref()).await,
        Command::Probe { service } => super::proof::probe(api, as_json, service.as_ref()).await,
        Command::Audit(cmd) => super::ledger::audit(api, as_json, cmd).await,
        Command::Usage(args) => super::ledger::usage(api, as_json, args).await,
        Command::Cost(args) => super::ledger::cost(api, as_json, args).await,
        Command::Pitr(cmd) => super::pitr::run(api, as_json, cmd).await,
        Command::Up(_) | Command::Gateway(_) | Command::Version | Command::Console => {
            Err(Failure::new(exit::INTERNAL, "not a directory command"))
        }
    }
}

fn show(as_json: bool, value: &Value) {
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        print_object(value);
    }
}

fn list(as_json: bool, value: &Value, columns: &[Column]) {
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        print_list(value, columns);
    }
}

fn done(as_json: bool, what: String) {
    if as_json {
        println!("{}", json!({ "ok": true, "message": what }));
    } else {
        println!("{what}");
    }
}

async fn cluster(api: &ApiClient, as_json: bool, cmd: &ClusterCmd) -> Result<(), Failure> {
    match cmd {
        ClusterCmd::Add {
            name,
            dsn,
            region,
            capacity,
        } => {
            let body =
                json!({ "name": name, "region": region, "admin_dsn": dsn, "capacity": capacity });
            show(
                as_json,
                &api.call(Method::POST, "/v1/clusters", Some(body)).await?,
            );
        }
        ClusterCmd::List => list(
            as_json,
            &api.call(Method::GET, "/v1/clusters", None).await?,
            CLUSTER_COLUMNS,
        ),
        ClusterCmd::Show { name } => show(
            as_json,
            &api.call(Method::GET, &format!("/v1/clusters/{name}"), None)
                .await?,
        ),
        ClusterCmd::Remove { name } => {
            api.call(Method::DELETE, &format!("/v1/clusters/{name}"), None)
                .await?;
            done(as_json, format!("cluster {name} removed"));
        }
    }
    Ok(())
}

async fn service(api: &ApiClient, as_json: bool, cmd: &ServiceCmd) -> Result<(), Failure> {
    match cmd {
        ServiceCmd::Create {
            name,
            mode,
            tiers,
            cluster,
            migrations,
            reference_tables,
        } => {
            let tier_modes: Map<String, Value> = tiers
                .iter()
                .map(|(tier, mode)| (tier.to_string(), json!(mode)))
                .collect();
            let files = match migrations {
                Some(dir) => read_migrations_dir(dir)
                    .map_err(|e| Failure::new(exit::INVALID, e.to_string()))?,
                None => Vec::new(),
            };
            let body = json!({
                "name": name, "default_mode": mode, "tier_modes": tier_modes, "cluster": cluster,
                "reference_tables": reference_tables, "migrations": files,
            });
            show(
                as_json,
                &api.call(Method::POST, "/v1/services", Some(body)).await?,
            );
        }
        ServiceCmd::Auth {
            name,
            jwt_secret,
            rs256_public_key,
            es256_public_key,
            issuer,
            audience,
            tenant_claim,
            jwks,
            require_tokens,
            jit,
            tier_claim,
        } => {
            let read = |p: &Option<std::path::PathBuf>| -> Result<Option<String>, Failure> {
                p.as_ref()
                    .map(|p| {
                        std::fs::read_to_string(p).map_err(|e| {
                            Failure::new(exit::INVALID, format!("cannot read {}: {e}", p.display()))
                        })
                    })
                    .transpose()
            };
            let body = json!({
                "hs256_secret": jwt_secret, "rs256_public_key": read(rs256_public_key)?,
                "es256_public_key": read(es256_public_key)?, "issuer": issuer, "audience": audience,
                "tenant_claim": tenant_claim, "require_tokens": require_tokens,
                "jit_provisioning": jit, "tier_claim": tier_claim,
            });
            let mut body = body;
            if let Some(text) = read(jwks)? {
                let doc: Value = serde_json::from_str(&text).map_err(|e| {
                    Failure::new(exit::INVALID, format!("the JWKS file is not JSON: {e}"))
                })?;
                body["jwks"] = doc;
            }
            api.call(
                Method::PUT,
                &format!("/v1/services/{name}/auth"),
                Some(body),
            )
            .await?;
            done(as_json, format!("token settings of service {name} updated"));
        }
        ServiceCmd::Credential(CredentialCmd::Create {
            service,
            user,
            allow_ddl,
        }) => {
            let body = Some(json!({ "username": user, "may_ddl": allow_ddl }));
            let c = api
                .call(
                    Method::POST,
                    &format!("/v1/services/{service}/credentials"),
                    body,
                )
                .await?;
            if as_json {
                show(true, &c);
            } else {
                let user = c["username"].as_str().unwrap_or_default();
                println!("user:     {user}");
                println!("password: {}", c["password"].as_str().unwrap_or_default());
                eprintln!("shown only now. Connect with user={user} dbname={service}, then choose the tenant per transaction: SET LOCAL bulkhead.tenant = '<id or slug>'");
            }
        }
        ServiceCmd::AllowDefiner {
            service,
            function,
            remove,
        } => {
            let method = if *remove { Method::DELETE } else { Method::PUT };
            let listed = api
                .call(
                    method,
                    &format!("/v1/services/{service}/definers/{function}"),
                    None,
                )
                .await?;
            if as_json {
                show(true, &listed);
            } else {
                println!("allow-listed SECURITY DEFINER functions of {service}: {listed}");
            }
        }
        ServiceCmd::Credential(CredentialCmd::List { service }) => list(
            as_json,
            &api.call(
                Method::GET,
                &format!("/v1/services/{service}/credentials"),
                None,
            )
            .await?,
            CREDENTIAL_COLUMNS,
        ),
        ServiceCmd::Credential(CredentialCmd::Revoke { service, user }) => {
            api.call(
                Method::DELETE,
                &format!("/v1/services/{service}/credentials/{user}"),
                None,
            )
            .await?;
            done(
                as_json,
                format!("credential {user} of service {service} revoked"),
            );
        }
        ServiceCmd::List => list(
            as_json,
            &api.call(Method::GET, "/v1/services", None).await?,
            SERVICE_COLUMNS,
        ),
        ServiceCmd::Show { name } => show(
            as_json,
            &api.call(Method::GET, &format!("/v1/services/{name}"), None)
                .await?,
        ),
        ServiceCmd::Remove { name } => {
            api.call(Method::DELETE, &format!("/v1/services/{name}"), None)
                .await?;
            done(as_json, format!("service {name} removed"));
        }
    }
    Ok(())
}

async fn tenant(api: &ApiClient, as_json: bool, cmd: &TenantCmd) -> Result<(), Failure> {
    match cmd {
        TenantCmd::Create {
            slug,
            service,
            mode,
            cluster,
            id,
            tier,
            region,
        } => {
            let body = json!({
                "slug": slug, "id": id, "tier": tier, "region": region,
                "service": service, "mode": mode, "cluster": cluster,
            });
            show(
                as_json,
                &api.call(Method::POST, "/v1/tenants", Some(body)).await?,
            );
        }
        TenantCmd::Key(KeyCmd::Create { tenant }) => {
            let key = api
                .call(Method::POST, &format!("/v1/tenants/{tenant}/keys"), None)
                .await?;
            if as_json {
                show(true, &key);
            } else {
                println!("{}", key["key"].as_str().unwrap_or_default());
                eprintln!("key id {} for tenant {tenant}; shown only now: store it as the tenant's database password", key["id"].as_str().unwrap_or_default());
            }
        }
        TenantCmd::Move(args) => super::moves::run(api, as_json, args).await?,
        TenantCmd::Backup { .. }
        | TenantCmd::Restore { .. }
        | TenantCmd::Clone { .. }
        | TenantCmd::Erase { .. }
        | TenantCmd::Certificate { .. } => super::backups::run(api, as_json, cmd).await?,
        TenantCmd::Backups { tenant } => {
            super::pitr::backups(api, as_json, tenant).await?;
        }
        TenantCmd::Key(KeyCmd::Revoke { id }) => {
            api.call(Method::DELETE, &format!("/v1/keys/{id}"), None)
                .await?;
            done(as_json, format!("key {id} revoked"));
        }
        TenantCmd::Delete { tenant, confirm } => {
            if !confirm {
                return Err(Failure::new(
                    exit::INVALID,
                    format!("deleting tenant {tenant} destroys its data in every service; repeat with --confirm"),
                ));
            }
            let removed = api
                .call(
                    Method::DELETE,
                    &format!("/v1/tenants/{tenant}?confirm=true"),
                    None,
                )
                .await?;
            if as_json {
                show(true, &removed);
            } else {
                println!("tenant {tenant} deleted");
                for r in removed["removed"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    let data = &r[2];
                    let what = if let Some(db) = data["database"].as_str() {
                        format!("database {db} dropped")
                    } else if let Some(schema) = data["schema"].as_str() {
                        format!("schema {schema} dropped")
                    } else {
                        let rows = data["rows"]
                            .as_array()
                            .map(Vec::as_slice)
                            .unwrap_or_default();
                        let total: u64 = rows.iter().filter_map(|t| t[1].as_u64()).sum();
                        format!("{total} rows deleted from {} shared tables", rows.len())
                    };
                    println!("  {} ({}): {what}", cell_of(&r[0]), cell_of(&r[1]));
                }
            }
        }
        TenantCmd::List => list(
            as_json,
            &api.call(Method::GET, "/v1/tenants", None).await?,
            TENANT_COLUMNS,
        ),
        TenantCmd::Show { tenant } => show(
            as_json,
            &api.call(Method::GET, &format!("/v1/tenants/{tenant}"), None)
                .await?,
        ),
        TenantCmd::Suspend { tenant } => {
            let t = api
                .call(Method::POST, &format!("/v1/tenants/{tenant}/suspend"), None)
                .await?;
            show(as_json, &t);
        }
        TenantCmd::Resume { tenant } => {
            let t = api
                .call(Method::POST, &format!("/v1/tenants/{tenant}/resume"), None)
                .await?;
            show(as_json, &t);
        }
        TenantCmd::Rename { tenant, slug } => {
            let t = api
                .call(
                    Method::POST,
                    &format!("/v1/tenants/{tenant}/rename"),
                    Some(serde_json::json!({ "slug": slug.to_string() })),
                )
                .await?;
            show(as_json, &t);
        }
    }
    Ok(())
}

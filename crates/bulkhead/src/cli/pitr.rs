//! `bulkhead tenant restore --at`, `bulkhead tenant backups` and `bulkhead pitr status |
//! backup | enable`. Beside the data folder the work runs in this process (a rewind shows
//! its phases and tables as they go); through `--url` the API does it.

use std::time::Instant;

use bulkhead_audit::action;
use bulkhead_directory::TenantRef;
use bulkhead_model::{ClusterName, Mode, Slug};
use bulkhead_pitr::{Phase, PitrError, RewindRequest};
use reqwest::Method;
use serde_json::{json, Value};

use super::args::PitrCmd;
use super::backups::{local, record, Lines};
use super::client::{code_of, exit, ApiClient, Failure};

fn fail(e: PitrError) -> Failure {
    Failure::new(code_of(e.kind()), e.to_string())
}

struct Phases(Lines);

impl bulkhead_pitr::Progress for Phases {
    fn phase(&self, phase: Phase, detail: &str) {
        eprintln!(
            "{} ({detail}; {:.1} s so far)",
            phase.label(),
            self.0 .0.elapsed().as_secs_f64()
        );
    }
    fn table(&self, event: &bulkhead_backup::Event) {
        bulkhead_backup::Progress::event(&self.0, event);
    }
}

/// What `tenant restore --at` was asked.
pub(crate) struct RewindArgs<'a> {
    pub tenant: &'a TenantRef,
    pub at: &'a str,
    pub dry_run: bool,
    pub as_new: Option<&'a Slug>,
    pub mode: Option<Mode>,
}

pub(crate) async fn rewind(
    api: &ApiClient,
    as_json: bool,
    args: RewindArgs<'_>,
) -> Result<Value, Failure> {
    let at = bulkhead_pitr::parse_instant(args.at).map_err(|m| Failure::new(exit::INVALID, m))?;
    let done = match local(api).await? {
        Some((dir, key)) => {
            let req = RewindRequest {
                tenant: args.tenant.clone(),
                service: None,
                at,
                as_new: args.as_new.cloned(),
                mode: args.mode,
                dry_run: args.dry_run,
            };
            let r = bulkhead_pitr::rewind(&dir, &key, &req, &Phases(Lines(Instant::now())))
                .await
                .map_err(fail)?;
            if !r.dry_run {
                let into = r
                    .restored
                    .as_ref()
                    .map(|x| x.tenant_id)
                    .unwrap_or(r.tenant_id);
                let what = if args.as_new.is_some() {
                    action::CLONED
                } else {
                    action::REWOUND
                };
                record(api, &dir, what, into, r.summary()).await;
            }
            serde_json::to_value(r).unwrap_or_default()
        }
        None => {
            let mut path = format!(
                "/v1/tenants/{}/restore?at={}&dry_run={}",
                args.tenant,
                at.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
                args.dry_run
            );
            if let Some(slug) = args.as_new {
                path.push_str(&format!("&as_new={slug}"));
            }
            if let Some(m) = args.mode {
                path.push_str(&format!("&mode={m}"));
            }
            api.call(Method::POST, &path, None).await?
        }
    };
    if as_json {
        print_json(&done);
    } else {
        let rows: u64 = done["tables"]
            .as_array()
            .map(|t| t.iter().filter_map(|x| x["rows"].as_u64()).sum())
            .unwrap_or_default();
        let verb = if done["dry_run"] == true {
            "would be restored"
        } else {
            "restored"
        };
        println!(
            "tenant {} as it was at {} ({} mode on cluster {}, from base backup {}): {rows} rows {verb}",
            done["slug"].as_str().unwrap_or_default(),
            done["at"].as_str().unwrap_or_default(),
            done["mode_at"].as_str().unwrap_or_default(),
            done["cluster_at"].as_str().unwrap_or_default(),
            done["base_backup"].as_str().unwrap_or_default(),
        );
        for t in done["tables"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            println!(
                "  {}: {} rows",
                t["table"].as_str().unwrap_or_default(),
                t["rows"]
            );
        }
        if let Some(id) = done["restored"]["tenant_id"].as_str() {
            if args.as_new.is_some() {
                println!("into new tenant {id}");
            }
        }
    }
    Ok(done)
}

pub(crate) async fn backups(
    api: &ApiClient,
    as_json: bool,
    tenant: &TenantRef,
) -> Result<Value, Failure> {
    let list = match local(api).await? {
        Some((dir, _)) => {
            let t = dir
                .tenant(tenant)
                .await
                .map_err(|e| Failure::new(code_of(e.kind()), e.to_string()))?;
            let list = dir
                .scheduled_backups_of(&t.id)
                .await
                .map_err(|e| Failure::new(code_of(e.kind()), e.to_string()))?;
            serde_json::to_value(list).unwrap_or_default()
        }
        None => {
            api.call(Method::GET, &format!("/v1/tenants/{tenant}/backups"), None)
                .await?
        }
    };
    if as_json {
        print_json(&list);
    } else {
        let rows = list.as_array().map(Vec::as_slice).unwrap_or_default();
        if rows.is_empty() {
            println!("tenant {tenant} has no scheduled backups (see [backups] in the README)");
        }
        for b in rows {
            println!(
                "{}  {} bytes, {} rows, kept until {}  {}",
                b["taken_at"].as_str().unwrap_or_default(),
                b["bytes"],
                b["rows"],
                b["expires_at"].as_str().unwrap_or_default(),
                b["path"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(list)
}

pub(crate) async fn run(api: &ApiClient, as_json: bool, cmd: &PitrCmd) -> Result<(), Failure> {
    let here = local(api).await?;
    let answer = match cmd {
        PitrCmd::Status { cluster } => {
            let list = match &here {
                Some((dir, _)) => {
                    let list = match cluster {
                        Some(c) => vec![bulkhead_pitr::status(dir, c).await.map_err(fail)?],
                        None => bulkhead_pitr::status_all(dir).await.map_err(fail)?,
                    };
                    serde_json::to_value(list).unwrap_or_default()
                }
                None => {
                    let path = match cluster {
                        Some(c) => format!("/v1/pitr?cluster={c}"),
                        None => "/v1/pitr".to_string(),
                    };
                    api.call(Method::GET, &path, None).await?
                }
            };
            if !as_json {
                print_status(&list);
            }
            list
        }
        PitrCmd::Backup { cluster, full } => {
            match &here {
                Some((dir, _)) => {
                    let pitr = pitr_of(dir, cluster).await?;
                    let repo =
                        bulkhead_pitr::repo::Repo::new(&pitr.stanza, pitr.config_path.into())
                            .map_err(fail)?;
                    let started = Instant::now();
                    repo.backup(*full).await.map_err(fail)?;
                    if !as_json {
                        println!(
                            "{} base backup of cluster {cluster} taken in {:.1} s",
                            if *full { "full" } else { "incremental" },
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
                None => {
                    api.call(
                        Method::POST,
                        &format!("/v1/pitr/{cluster}/backup?full={full}"),
                        None,
                    )
                    .await?;
                }
            }
            json!({ "cluster": cluster, "full": full })
        }
        PitrCmd::Enable {
            cluster,
            folder,
            pg_data,
            pg_port,
        } => {
            let Some((dir, _)) = &here else {
                return Err(Failure::new(
                    exit::INVALID,
                    "pitr enable writes files beside the server: run it on that machine, next to the data folder (not through --url)",
                ));
            };
            let layout = bulkhead_pitr::Layout::new(folder, cluster.as_str());
            layout.prepare(pg_data, *pg_port).map_err(fail)?;
            let pitr = bulkhead_pitr::enable(dir, cluster, &layout)
                .await
                .map_err(fail)?;
            if !as_json {
                println!(
                    "point-in-time recovery is on for cluster {cluster} (stanza {}, configuration {})",
                    pitr.stanza, pitr.config_path
                );
            }
            serde_json::to_value(pitr).unwrap_or_default()
        }
    };
    if as_json {
        print_json(&answer);
    }
    Ok(())
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

async fn pitr_of(
    dir: &bulkhead_directory::Directory,
    cluster: &ClusterName,
) -> Result<bulkhead_directory::ClusterPitr, Failure> {
    dir.cluster_pitr(cluster)
        .await
        .map_err(|e| Failure::new(code_of(e.kind()), e.to_string()))?
        .ok_or_else(|| fail(PitrError::NotEnabled(cluster.to_string())))
}

fn print_status(list: &Value) {
    let rows = list.as_array().map(Vec::as_slice).unwrap_or_default();
    if rows.is_empty() {
        println!("no cluster archives its WAL: `bulkhead up` does it for the embedded cluster (pgbackrest installed, [pitr] enabled), `bulkhead pitr enable` for a configured one");
    }
    for s in rows {
        let mib = |v: &Value| v.as_i64().unwrap_or_default() as f64 / (1024.0 * 1024.0);
        println!(
            "cluster {} (stanza {}): archiving {}, repository {}",
            s["cluster"].as_str().unwrap_or_default(),
            s["stanza"].as_str().unwrap_or_default(),
            if s["archiving"] == true {
                "on"
            } else {
                "FAILING or off"
            },
            s["repository_status"].as_str().unwrap_or_default()
        );
        println!(
            "  recoverable from {} to {}",
            s["recoverable_from"]
                .as_str()
                .unwrap_or("(no base backup yet)"),
            s["recoverable_to"].as_str().unwrap_or("-")
        );
        println!(
            "  last archived {} at {}; {:.1} MiB of WAL not archived yet",
            s["last_archived_wal"].as_str().unwrap_or("none"),
            s["last_archived_at"].as_str().unwrap_or("-"),
            mib(&s["archive_lag_bytes"])
        );
        if let Some(f) = s["last_failed_wal"].as_str() {
            println!(
                "  last failure: {f} at {}",
                s["last_failed_at"].as_str().unwrap_or("-")
            );
        }
        let backups = s["backups"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        println!(
            "  {} base backups, {:.1} MiB in the repository",
            backups.len(),
            mib(&s["repository_bytes"])
        );
        for b in backups {
            println!(
                "    {} {} ended {} ({:.1} MiB)",
                b["label"].as_str().unwrap_or_default(),
                b["kind"].as_str().unwrap_or_default(),
                b["stopped_at"].as_str().unwrap_or_default(),
                mib(&b["repo_bytes"])
            );
        }
    }
}

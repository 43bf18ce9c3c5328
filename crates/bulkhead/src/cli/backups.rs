//! `bulkhead tenant backup | restore | clone | erase | certificate`. Beside the data folder
//! the work runs in this process (with per-table progress, the master key from
//! `secrets/master.key` or `BULKHEAD_MASTER_KEY`); through `--url` the API does it.

use std::io::Write;
use std::time::Instant;

use bulkhead_audit::action;
use bulkhead_backup::{BackupError, Event, MasterKey, Progress};
use bulkhead_directory::Directory;
use reqwest::Method;
use serde_json::{json, Value};

use super::args::TenantCmd;
use super::client::{code_of, exit, ApiClient, Failure};

pub(super) struct Lines(pub(super) Instant);

impl Progress for Lines {
    fn event(&self, e: &Event) {
        let Event::Table {
            table,
            rows,
            seconds,
        } = e;
        eprintln!(
            "  {table}: {rows} rows in {seconds:.2} s ({:.0} rows/s; {:.1} s so far)",
            *rows as f64 / seconds.max(1e-6),
            self.0.elapsed().as_secs_f64()
        );
    }
}

pub(super) fn fail(e: BackupError) -> Failure {
    Failure::new(code_of(e.kind()), e.to_string())
}

pub(super) async fn local(api: &ApiClient) -> Result<Option<(Directory, MasterKey)>, Failure> {
    let (Some(dsn), Some(secrets)) = (&api.control_dsn, &api.secrets_dir) else {
        return Ok(None);
    };
    let dir = Directory::connect(dsn)
        .await
        .map_err(|e| Failure::new(exit::UNREACHABLE, e.to_string()))?;
    Ok(Some((
        dir,
        MasterKey::load(secrets).map_err(|e| fail(e.into()))?,
    )))
}

/// Records what this process did in the audit log.
pub(super) async fn record(
    api: &ApiClient,
    dir: &Directory,
    what: &str,
    tenant: bulkhead_model::TenantId,
    details: Value,
) {
    let event = bulkhead_audit::Event::new(what, &bulkhead_audit::cli_actor())
        .tenant(tenant)
        .details(details);
    super::ledger::record_local(api, dir, vec![event]).await;
}

pub(crate) async fn run(api: &ApiClient, as_json: bool, cmd: &TenantCmd) -> Result<(), Failure> {
    let here = local(api).await?;
    let progress = Lines(Instant::now());
    let answer: Value = match cmd {
        TenantCmd::Backup { tenant, output } => {
            let tmp = output.with_extension("bhk.partial");
            let bytes = match &here {
                Some((dir, key)) => {
                    let file = std::fs::File::create(&tmp).map_err(|e| {
                        Failure::new(exit::INVALID, format!("{}: {e}", tmp.display()))
                    })?;
                    let (manifest, file) = bulkhead_backup::backup(
                        dir,
                        key,
                        tenant,
                        None,
                        std::io::BufWriter::new(file),
                        &progress,
                    )
                    .await
                    .map_err(fail)?;
                    drop(file);
                    std::fs::rename(&tmp, output).map_err(|e| {
                        Failure::new(exit::INTERNAL, format!("{}: {e}", output.display()))
                    })?;
                    if let Ok(t) = manifest.header.tenant_id.parse() {
                        record(api, dir, action::BACKED_UP, t, manifest.summary()).await;
                    }
                    serde_json::to_value(&manifest).unwrap_or_default()
                }
                None => {
                    let bytes = api
                        .call_bytes(Method::GET, &format!("/v1/tenants/{tenant}/backup"), None)
                        .await?;
                    let mut f = std::fs::File::create(&tmp).map_err(|e| {
                        Failure::new(exit::INVALID, format!("{}: {e}", tmp.display()))
                    })?;
                    f.write_all(&bytes)
                        .and_then(|_| f.sync_all())
                        .and_then(|_| std::fs::rename(&tmp, output))
                        .map_err(|e| {
                            Failure::new(exit::INTERNAL, format!("{}: {e}", output.display()))
                        })?;
                    json!({ "bytes": bytes.len() })
                }
            };
            if !as_json {
                println!("tenant {tenant} backed up to {}", output.display());
                for t in bytes["tables"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    println!(
                        "  {}: {} rows, sha256 {}",
                        t["name"].as_str().unwrap_or_default(),
                        t["rows"],
                        t["sha256"].as_str().unwrap_or_default()
                    );
                }
            }
            bytes
        }
        TenantCmd::Restore {
            tenant,
            at: Some(at),
            dry_run,
            as_new,
            mode,
            ..
        } => {
            super::pitr::rewind(
                api,
                as_json,
                super::pitr::RewindArgs {
                    tenant,
                    at,
                    dry_run: *dry_run,
                    as_new: as_new.as_ref(),
                    mode: *mode,
                },
            )
            .await?;
            return Ok(());
        }
        TenantCmd::Restore {
            tenant,
            archive,
            as_new,
            mode,
            ..
        } => {
            let Some(archive) = archive else {
                return Err(Failure::new(
                    exit::INVALID,
                    "name the archive to restore, or --at an instant to rewind to",
                ));
            };
            let bytes = std::fs::read(archive)
                .map_err(|e| Failure::new(exit::INVALID, format!("{}: {e}", archive.display())))?;
            let restored = match &here {
                Some((dir, key)) => {
                    let (r, what) = match as_new {
                        Some(slug) => (
                            bulkhead_backup::restore_as_new(
                                dir, key, &bytes, slug, *mode, &progress,
                            )
                            .await,
                            action::CLONED,
                        ),
                        None => {
                            let t = dir
                                .tenant(tenant)
                                .await
                                .map_err(|e| Failure::new(code_of(e.kind()), e.to_string()))?;
                            (
                                bulkhead_backup::restore(
                                    dir,
                                    key,
                                    &t,
                                    &bytes[..],
                                    false,
                                    &progress,
                                )
                                .await,
                                action::RESTORED,
                            )
                        }
                    };
                    let r = r.map_err(fail)?;
                    record(api, dir, what, r.tenant_id, r.summary()).await;
                    serde_json::to_value(r).unwrap_or_default()
                }
                None => {
                    let mut path = format!("/v1/tenants/{tenant}/restore");
                    if let Some(slug) = as_new {
                        path.push_str(&format!("?as_new={slug}"));
                        if let Some(m) = mode {
                            path.push_str(&format!("&mode={m}"));
                        }
                    }
                    let out = api.call_bytes(Method::POST, &path, Some(bytes)).await?;
                    serde_json::from_slice(&out).unwrap_or_default()
                }
            };
            if !as_json {
                println!(
                    "restored into tenant {} ({} mode) from a backup of {} at version {}",
                    restored["tenant_id"].as_str().unwrap_or_default(),
                    restored["mode"].as_str().unwrap_or_default(),
                    restored["from_tenant"].as_str().unwrap_or_default(),
                    restored["version"]
                );
            }
            restored
        }
        TenantCmd::Clone { tenant, slug, mode } => {
            let r = match &here {
                Some((dir, key)) => {
                    let r = bulkhead_backup::clone_tenant(dir, key, tenant, slug, *mode, &progress)
                        .await
                        .map_err(fail)?;
                    record(api, dir, action::CLONED, r.tenant_id, r.summary()).await;
                    serde_json::to_value(r).unwrap_or_default()
                }
                None => {
                    api.call(
                        Method::POST,
                        &format!("/v1/tenants/{tenant}/clone"),
                        Some(json!({ "slug": slug, "mode": mode })),
                    )
                    .await?
                }
            };
            if !as_json {
                println!(
                    "tenant {tenant} cloned into {slug} ({})",
                    r["mode"].as_str().unwrap_or_default()
                );
            }
            r
        }
        TenantCmd::Erase { tenant, confirm } => {
            if !confirm {
                return Err(Failure::new(
                    exit::INVALID,
                    format!("erasing tenant {tenant} destroys its data and its key (its backups become unreadable); repeat with --confirm"),
                ));
            }
            let c = match &here {
                Some((dir, key)) => {
                    let c = bulkhead_backup::erase(dir, key, tenant)
                        .await
                        .map_err(fail)?;
                    record(
                        api,
                        dir,
                        action::ERASED,
                        c.tenant_id,
                        json!({ "slug": c.slug, "signature": c.signature }),
                    )
                    .await;
                    json!({ "certificate": c.certificate, "signature": c.signature, "valid": true })
                }
                None => {
                    api.call(
                        Method::POST,
                        &format!("/v1/tenants/{tenant}/erase?confirm=true"),
                        None,
                    )
                    .await?
                }
            };
            if !as_json {
                println!(
                    "{}\nsignature {}",
                    c["certificate"].as_str().unwrap_or_default(),
                    c["signature"].as_str().unwrap_or_default()
                );
            }
            c
        }
        TenantCmd::Certificate { tenant, verify } => {
            let c = match &here {
                Some((dir, key)) => {
                    let (c, valid) = bulkhead_backup::certificate(dir, key, tenant)
                        .await
                        .map_err(fail)?;
                    json!({ "certificate": c.certificate, "signature": c.signature, "valid": valid })
                }
                None => {
                    api.call(
                        Method::GET,
                        &format!("/v1/tenants/{tenant}/certificate"),
                        None,
                    )
                    .await?
                }
            };
            if !as_json {
                println!(
                    "{}\nsignature {}",
                    c["certificate"].as_str().unwrap_or_default(),
                    c["signature"].as_str().unwrap_or_default()
                );
                if *verify {
                    println!(
                        "signature {}",
                        if c["valid"] == true {
                            "valid"
                        } else {
                            "INVALID"
                        }
                    );
                }
            }
            if *verify && c["valid"] != true {
                if as_json {
                    println!("{}", serde_json::to_string_pretty(&c).unwrap_or_default());
                }
                return Err(Failure::new(exit::ISOLATION, "the certificate's signature does not hold: it was altered or signed under another master key"));
            }
            c
        }
        _ => return Ok(()),
    };
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        );
    }
    Ok(())
}

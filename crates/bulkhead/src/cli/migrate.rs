//! `bulkhead migrate`: registers new migration files, fans them out, and shows progress (a
//! bar with counts, rate and ETA) and a summary. Runs in this process when the control
//! database is reachable through the data folder, otherwise asks the API and waits.

use std::time::Duration;

use bulkhead_directory::Directory;
use bulkhead_provisioner::migrate::{
    migrate_service, read_migrations_dir, MigrateOptions, MigrateSummary, Outcome, Progress,
    TargetOutcome,
};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{json, Value};

use super::args::{MigrateArgs, MigrateCmd};
use super::client::{exit, ApiClient, Failure};
use super::output::{print_list, Column};

const STATUS_COLUMNS: &[Column] = &[
    ("TARGET", "target"),
    ("KIND", "kind"),
    ("CLUSTER", "cluster"),
    ("VERSION", "version"),
    ("LATEST", "latest"),
    ("STATE", "state"),
];

pub(crate) async fn run(api: &ApiClient, as_json: bool, args: &MigrateArgs) -> Result<(), Failure> {
    if let Some(MigrateCmd::Status { service }) = &args.status {
        let rows = api
            .call(
                Method::GET,
                &format!("/v1/services/{service}/migrations/status"),
                None,
            )
            .await?;
        if as_json {
            println!(
                "{}",
                serde_json::to_string_pretty(&rows).unwrap_or_default()
            );
        } else {
            print_list(&rows, STATUS_COLUMNS);
        }
        return Ok(());
    }
    let run = &args.run;
    let Some(service) = &run.service else {
        return Err(Failure::new(
            exit::INVALID,
            "name the service: bulkhead migrate SERVICE",
        ));
    };
    if let Some(dir) = &run.migrations {
        let files =
            read_migrations_dir(dir).map_err(|e| Failure::new(exit::INVALID, e.to_string()))?;
        let report = api
            .call(
                Method::POST,
                &format!("/v1/services/{service}/migrations"),
                Some(json!(files)),
            )
            .await?;
        if !as_json {
            let added = report["added"].as_array().map(Vec::len).unwrap_or(0);
            eprintln!("registered {added} new migration(s) from {}", dir.display());
        }
    }
    let summary = match &api.control_dsn {
        Some(dsn) => local(api, dsn, service, run).await?,
        None => {
            let body = json!({ "concurrency": run.concurrency, "dry_run": run.dry_run, "canary": run.canary });
            let value = api
                .call(
                    Method::POST,
                    &format!("/v1/services/{service}/migrate"),
                    Some(body),
                )
                .await?;
            serde_json::from_value::<Value>(value)
                .map_err(|e| Failure::new(exit::INTERNAL, e.to_string()))?
        }
    };
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        );
    } else {
        print_summary(&summary);
    }
    let failed = summary["targets"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter(|x| x["outcome"]["status"] == "failed")
                .count()
        })
        .unwrap_or(0);
    if failed > 0 || summary["canary_stopped"] == true {
        return Err(Failure::new(
            exit::PARTIAL,
            format!("{failed} target(s) failed; see above, fix, and run again"),
        ));
    }
    Ok(())
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn started(&self, total: usize) {
        self.0.set_length(total as u64);
    }
    fn finished(&self, outcome: &TargetOutcome) {
        if let Outcome::Failed(e) = &outcome.outcome {
            self.0.println(format!("failed: {}: {e}", outcome.label));
        }
        self.0.inc(1);
    }
}

async fn local(
    api: &ApiClient,
    dsn: &str,
    service: &bulkhead_model::ServiceName,
    run: &super::args::MigrateRun,
) -> Result<Value, Failure> {
    let dir = Directory::connect(dsn)
        .await
        .map_err(|e| Failure::new(exit::UNREACHABLE, e.to_string()))?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} targets  {per_sec}  ETA {eta}  {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let opts = MigrateOptions {
        concurrency: run.concurrency,
        dry_run: run.dry_run,
        canary: run.canary,
        ..Default::default()
    };
    let progress = Bar(bar);
    let summary: MigrateSummary = migrate_service(&dir, service, &opts, &progress)
        .await
        .map_err(|e| Failure::new(super::client::code_of(e.kind()), e.to_string()))?;
    progress.0.finish_and_clear();
    let events = bulkhead_audit::migration_events(
        &bulkhead_audit::cli_actor(),
        &summary.service,
        summary
            .targets
            .iter()
            .filter_map(|t| t.tenant.map(|id| (id, t.from, t.to, t.label.clone()))),
    );
    super::ledger::record_local(api, &dir, events).await;
    serde_json::to_value(&summary).map_err(|e| Failure::new(exit::INTERNAL, e.to_string()))
}

/// Prints counts, the service databases, and every target that did not simply migrate.
fn print_summary(summary: &Value) {
    let targets = summary["targets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let count = |status: &str| {
        targets
            .iter()
            .filter(|t| t["outcome"]["status"] == status)
            .count()
    };
    let changed = targets.iter().filter(|t| t["from"] != t["to"]).count();
    println!(
        "service {}: latest version {}, {} targets in {} ms (concurrency {})",
        summary["service"].as_str().unwrap_or_default(),
        summary["latest"],
        targets.len(),
        summary["millis"],
        summary["concurrency"],
    );
    println!(
        "  migrated {} ({} changed), failed {}, skipped {}, dry-run {}",
        count("migrated"),
        changed,
        count("failed"),
        count("skipped"),
        count("would_apply")
    );
    let nothing_to_do =
        |t: &Value| t["outcome"]["status"] == "would_apply" && t["outcome"]["detail"] == json!([]);
    let notable: Vec<&Value> = targets
        .iter()
        .filter(|t| {
            let plain = t["outcome"]["status"] == "migrated" || nothing_to_do(t);
            !plain || t["kind"] == "pool" || t["kind"] == "template"
        })
        .collect();
    if notable.is_empty() {
        return;
    }
    println!();
    let mut rows = vec![["TARGET", "KIND", "CLUSTER", "FROM", "TO", "RESULT"]
        .map(String::from)
        .to_vec()];
    for t in notable {
        let detail = match &t["outcome"]["detail"] {
            Value::Null => String::new(),
            _ if nothing_to_do(t) => ": nothing to apply".into(),
            Value::String(s) => format!(": {s}"),
            other => format!(": {other}"),
        };
        rows.push(vec![
            t["label"].as_str().unwrap_or_default().to_string(),
            t["kind"].as_str().unwrap_or_default().to_string(),
            t["cluster"].as_str().unwrap_or_default().to_string(),
            t["from"].to_string(),
            t["to"].to_string(),
            format!(
                "{}{detail}",
                t["outcome"]["status"].as_str().unwrap_or_default()
            ),
        ]);
    }
    super::output::table(&rows);
}

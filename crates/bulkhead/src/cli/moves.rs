//! `bulkhead tenant move`: runs the move in this process when the control database is
//! reachable through the data folder (with live progress: phase, rows copied, rate,
//! replication lag, the pause at cutover), otherwise asks the API and waits for the switch.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bulkhead_audit::{action, cli_actor, move_details};
use bulkhead_directory::{Directory, TenantRef};
use bulkhead_mover::{Event, MoveOptions, MoveProgress, MoveRequest};
use reqwest::Method;
use serde_json::{json, Value};

use super::args::MoveArgs;
use super::client::{code_of, exit, ApiClient, Failure};
use super::output::{print_list, Column};

const MOVE_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("FROM", "from_mode"),
    ("ON", "from_cluster"),
    ("TO", "to_mode"),
    ("ON", "to_cluster"),
    ("PHASE", "phase"),
    ("ROWS", "rows_copied"),
    ("PAUSE_MS", "pause_ms"),
    ("ERROR", "error"),
];

pub(crate) async fn run(api: &ApiClient, as_json: bool, args: &MoveArgs) -> Result<(), Failure> {
    let tenant = &args.tenant;
    if args.status {
        let moves = api
            .call(Method::GET, &format!("/v1/tenants/{tenant}/moves"), None)
            .await?;
        if as_json {
            println!(
                "{}",
                serde_json::to_string_pretty(&moves).unwrap_or_default()
            );
        } else {
            print_list(&moves, MOVE_COLUMNS);
        }
        return Ok(());
    }
    let result = match &api.control_dsn {
        Some(dsn) => local(api, dsn, args).await?,
        None => remote(api, args).await?,
    };
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        );
    } else {
        summarize(&result);
    }
    Ok(())
}

async fn remote(api: &ApiClient, args: &MoveArgs) -> Result<Value, Failure> {
    let tenant = &args.tenant;
    let which = json!({ "service": args.service });
    if args.finalize {
        return api
            .call(
                Method::POST,
                &format!("/v1/tenants/{tenant}/move/finalize"),
                Some(which),
            )
            .await;
    }
    if args.rollback {
        return api
            .call(
                Method::POST,
                &format!("/v1/tenants/{tenant}/move/rollback"),
                Some(which),
            )
            .await;
    }
    eprintln!(
        "moving tenant {tenant} (through the API; progress shows when run beside the data folder)"
    );
    api.call(
        Method::POST,
        &format!("/v1/tenants/{tenant}/move"),
        Some(json!({
            "to": args.to, "cluster": args.cluster, "service": args.service,
            "drain_seconds": args.drain_seconds,
        })),
    )
    .await
}

async fn local(api: &ApiClient, dsn: &str, args: &MoveArgs) -> Result<Value, Failure> {
    let dir = Directory::connect(dsn)
        .await
        .map_err(|e| Failure::new(exit::UNREACHABLE, e.to_string()))?;
    let fail = |e: bulkhead_mover::MoveError| Failure::new(code_of(e.kind()), e.to_string());
    let tenant: &TenantRef = &args.tenant;
    let opts = MoveOptions {
        drain_bound: Duration::from_secs(args.drain_seconds),
        ..Default::default()
    };
    let progress = Printer::default();
    let (m, what) = if args.finalize {
        let m = bulkhead_mover::finalize(&dir, tenant, args.service.as_ref())
            .await
            .map_err(fail)?;
        (m, action::MOVE_FINALIZED)
    } else if args.rollback {
        let m = bulkhead_mover::rollback(&dir, tenant, args.service.as_ref(), &opts, &progress)
            .await
            .map_err(fail)?;
        (m, action::MOVE_ROLLED_BACK)
    } else {
        let Some(to) = args.to else {
            return Err(Failure::new(
                exit::INVALID,
                "say where: --to shared|schema|database",
            ));
        };
        let req = MoveRequest {
            tenant: tenant.clone(),
            service: args.service.clone(),
            to,
            cluster: args.cluster.clone(),
        };
        let m = bulkhead_mover::start(&dir, &req, &opts, &progress)
            .await
            .map_err(fail)?;
        (m, action::MOVED)
    };
    let event = bulkhead_audit::Event::new(what, &cli_actor())
        .tenant(m.tenant_id)
        .details(move_details(&m));
    super::ledger::record_local(api, &dir, vec![event]).await;
    serde_json::to_value(&m).map_err(|e| Failure::new(exit::INTERNAL, e.to_string()))
}

/// Progress lines on stderr, at most a few a second while copying or catching up.
#[derive(Default)]
struct Printer {
    last: Mutex<Option<Instant>>,
}

impl Printer {
    fn throttled(&self) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        if last.is_some_and(|t| t.elapsed() < Duration::from_millis(500)) {
            return true;
        }
        *last = Some(Instant::now());
        false
    }
}

impl MoveProgress for Printer {
    fn event(&self, event: &Event) {
        match event {
            Event::Phase(p) => eprintln!("phase: {p}"),
            Event::Copying {
                table,
                bytes,
                rows_expected,
                bytes_per_second,
            } => {
                if !self.throttled() {
                    eprintln!(
                        "  copying {table}: {:.1} MB of about {rows_expected} rows, {:.1} MB/s",
                        *bytes as f64 / 1e6,
                        bytes_per_second / 1e6
                    );
                }
            }
            Event::Copied {
                table,
                rows,
                seconds,
            } => eprintln!(
                "  copied {table}: {rows} rows in {seconds:.2} s ({:.0} rows/s)",
                *rows as f64 / seconds.max(1e-6)
            ),
            Event::CatchingUp { applied, lag_bytes } => {
                if !self.throttled() {
                    eprintln!(
                        "  catching up: {applied} changes applied, {lag_bytes} bytes of WAL behind"
                    );
                }
            }
            Event::Switched {
                pause_ms,
                sessions_ended,
            } => eprintln!(
                "  switched: the tenant's new transactions waited {pause_ms} ms{}",
                if *sessions_ended > 0 {
                    format!("; {sessions_ended} session(s) past the drain bound were ended")
                } else {
                    String::new()
                }
            ),
        }
    }
}

fn summarize(m: &Value) {
    let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
    println!(
        "move {}: {} on {} -> {} on {}: {}",
        s("id"),
        s("from_mode"),
        s("from_cluster"),
        s("to_mode"),
        s("to_cluster"),
        s("phase")
    );
    if let Some(tables) = m["parity"]["tables"].as_array() {
        for t in tables {
            println!(
                "  parity {}: {} rows, hash {} (source and target agree)",
                t["table"].as_str().unwrap_or_default(),
                t["target_rows"],
                t["target_hash"].as_str().unwrap_or_default()
            );
        }
    }
    match m["phase"].as_str() {
        Some("switched") => println!(
            "  the source is kept, fenced: `bulkhead tenant move {} --finalize` removes it, `--rollback` moves back",
            m["tenant_id"].as_str().unwrap_or_default()
        ),
        Some("finalized") => println!("  the source is removed"),
        Some("aborted") => println!("  aborted: the tenant stays where it was"),
        _ => {}
    }
}

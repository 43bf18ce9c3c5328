//! `audit`, `usage` and `cost`: the audit log and metering, read through the API; and the
//! audit events of work the CLI runs in its own process (moves, backups, migrations).

use bulkhead_audit::{AuditLog, Event};
use bulkhead_directory::Directory;
use reqwest::Method;
use serde_json::Value;

use super::args::{AuditCmd, CostArgs, Range, UsageArgs, UsageCmd};
use super::client::{exit, ApiClient, Failure};
use super::output::{print_list, Column};

/// `?k=v&...` of the pairs that have a value (values form-encoded).
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            pairs
                .iter()
                .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v))),
        )
        .finish();
    if encoded.is_empty() {
        String::new()
    } else {
        format!("?{encoded}")
    }
}

fn range_pairs(r: &Range) -> Vec<(&'static str, Option<String>)> {
    vec![("since", r.since.clone()), ("until", r.until.clone())]
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

const EVENT_COLUMNS: &[Column] = &[
    ("AT", "at"),
    ("N", "n"),
    ("TENANT", "tenant_id"),
    ("ACTOR", "actor"),
    ("ACTION", "action"),
    ("DETAILS", "details"),
];

pub(crate) async fn audit(api: &ApiClient, as_json: bool, cmd: &AuditCmd) -> Result<(), Failure> {
    match cmd {
        AuditCmd::List {
            tenant,
            since,
            limit,
        } => {
            let q = query(&[
                ("tenant", tenant.as_ref().map(|t| t.to_string())),
                ("since", since.clone()),
                ("limit", Some(limit.to_string())),
            ]);
            let v = api
                .call(Method::GET, &format!("/v1/audit{q}"), None)
                .await?;
            if as_json {
                print_json(&v);
            } else {
                print_list(&v, EVENT_COLUMNS);
            }
            Ok(())
        }
        AuditCmd::Verify { tenant } => {
            let q = query(&[("tenant", tenant.clone())]);
            let v = api
                .call(Method::GET, &format!("/v1/audit/verify{q}"), None)
                .await?;
            if as_json {
                print_json(&v);
            } else {
                for r in v["reports"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    for f in r["findings"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                    {
                        println!(
                            "{}  {}  {}",
                            r["chain"].as_str().unwrap_or_default(),
                            f["kind"].as_str().unwrap_or_default().to_uppercase(),
                            f["message"].as_str().unwrap_or_default()
                        );
                    }
                }
                println!(
                    "{} chain(s), {} entries: {}",
                    v["chains"],
                    v["entries"],
                    if v["intact"] == true {
                        "intact"
                    } else {
                        "TAMPERED"
                    }
                );
            }
            if v["intact"] != true {
                return Err(Failure::new(
                    exit::ISOLATION,
                    "the audit log was tampered with (see the findings above)",
                ));
            }
            Ok(())
        }
    }
}

const USAGE_COLUMNS: &[Column] = &[
    ("SLUG", "slug"),
    ("TENANT", "tenant_id"),
    ("METRIC", "metric"),
    ("QUANTITY", "quantity"),
];

pub(crate) async fn usage(api: &ApiClient, as_json: bool, args: &UsageArgs) -> Result<(), Failure> {
    match &args.cmd {
        None => {
            let mut pairs = range_pairs(&args.range);
            pairs.push(("tenant", args.tenant.as_ref().map(|t| t.to_string())));
            let v = api
                .call(Method::GET, &format!("/v1/usage{}", query(&pairs)), None)
                .await?;
            if as_json {
                print_json(&v);
            } else {
                print_list(&v, USAGE_COLUMNS);
            }
            Ok(())
        }
        Some(UsageCmd::Export {
            range,
            format,
            output,
        }) => {
            let mut pairs = range_pairs(range);
            pairs.push(("format", Some(format.clone())));
            let bytes = api
                .call_bytes(
                    Method::GET,
                    &format!("/v1/usage/export{}", query(&pairs)),
                    None,
                )
                .await?;
            match output {
                Some(path) => std::fs::write(path, &bytes)
                    .map_err(|e| Failure::new(exit::INVALID, format!("{}: {e}", path.display()))),
                None => {
                    use std::io::Write;
                    std::io::stdout()
                        .write_all(&bytes)
                        .map_err(|e| Failure::new(exit::INTERNAL, e.to_string()))
                }
            }
        }
        Some(UsageCmd::Collect) => {
            let v = api.call(Method::POST, "/v1/usage/collect", None).await?;
            if as_json {
                print_json(&v);
            } else {
                println!(
                    "gateway: {} usage events; outboxes: {} rows ({} new, {} refused) from {} databases; storage: {} tenants sampled",
                    v["gateway_events"],
                    v["outbox"]["rows"],
                    v["outbox"]["counted"],
                    v["outbox"]["refused"],
                    v["outbox"]["databases"],
                    v["storage"].as_array().map_or(0, Vec::len)
                );
            }
            Ok(())
        }
    }
}

pub(crate) async fn cost(api: &ApiClient, as_json: bool, args: &CostArgs) -> Result<(), Failure> {
    let mut pairs = range_pairs(&args.range);
    if !args.prices.is_empty() {
        pairs.push(("prices", Some(args.prices.join(","))));
    }
    let v = api
        .call(Method::GET, &format!("/v1/cost{}", query(&pairs)), None)
        .await?;
    if as_json {
        print_json(&v);
        return Ok(());
    }
    if v["prices"].as_object().is_none_or(|p| p.is_empty()) {
        eprintln!("no prices: give some with --price METRIC=PRICE or [metering.prices] in the configuration");
    }
    let mut rows = vec![vec![
        "RANK".to_string(),
        "SLUG".into(),
        "TENANT".into(),
        "COST".into(),
        "ITEMS".into(),
    ]];
    for t in v["tenants"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let items: Vec<String> = t["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|i| {
                format!(
                    "{}={:.4}",
                    i["metric"].as_str().unwrap_or_default(),
                    i["amount"].as_f64().unwrap_or_default()
                )
            })
            .collect();
        rows.push(vec![
            t["rank"].to_string(),
            t["slug"].as_str().unwrap_or("-").to_string(),
            t["tenant_id"].as_str().unwrap_or_default().to_string(),
            format!("{:.4}", t["cost"].as_f64().unwrap_or_default()),
            items.join(" "),
        ]);
    }
    super::output::table(&rows);
    Ok(())
}

/// Records events of work this process did itself, under the instance's master key. A
/// failure is reported, not returned: the work is done.
pub(crate) async fn record_local(api: &ApiClient, dir: &Directory, events: Vec<Event>) {
    let Some(secrets) = &api.secrets_dir else {
        return;
    };
    let recorded = match bulkhead_keys::MasterKey::load(secrets) {
        Ok(key) => AuditLog::new(dir.clone(), key)
            .record_all(events)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = recorded {
        eprintln!("warning: the audit events of this command could not be recorded: {e}");
    }
}

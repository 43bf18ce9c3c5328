//! `verify` and `probe`: print the server's report as a table (or JSON) and exit 9 when it
//! found a failure or a leak.

use reqwest::Method;

use super::client::{exit, ApiClient, Failure};
use bulkhead_model::ServiceName;

fn query(service: Option<&ServiceName>) -> String {
    service.map(|s| format!("?service={s}")).unwrap_or_default()
}

fn parse<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, Failure> {
    serde_json::from_value(value).map_err(|e| {
        Failure::new(
            exit::INTERNAL,
            format!("the server's report does not read: {e}"),
        )
    })
}

pub(crate) async fn verify(
    api: &ApiClient,
    as_json: bool,
    service: Option<&ServiceName>,
) -> Result<(), Failure> {
    let value = api
        .call(Method::GET, &format!("/v1/verify{}", query(service)), None)
        .await?;
    let report: bulkhead_verify::Report = parse(value.clone())?;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        print!("{}", report.to_table());
    }
    if report.failures() > 0 {
        return Err(Failure::new(
            exit::ISOLATION,
            format!("verify found {} failure(s)", report.failures()),
        ));
    }
    Ok(())
}

pub(crate) async fn probe(
    api: &ApiClient,
    as_json: bool,
    service: Option<&ServiceName>,
) -> Result<(), Failure> {
    eprintln!("probing: two throwaway tenants in each mode, attacked through the gateway (this takes a few seconds)");
    let value = api
        .call(Method::POST, &format!("/v1/probe{}", query(service)), None)
        .await?;
    let report: bulkhead_probe::ProbeReport = parse(value.clone())?;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        print!("{}", report.to_table());
    }
    if !report.all_blocked() {
        return Err(Failure::new(
            exit::ISOLATION,
            format!(
                "probe: {} leak(s), {} inconclusive",
                report.leaks(),
                report.inconclusive()
            ),
        ));
    }
    Ok(())
}

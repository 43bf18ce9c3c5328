//! The attack vectors. Each runs as the attacker `a` of a pair against its victim `b`, through
//! the gateway, and judges by what `a` saw and what became of `b`'s rows (read back as `b`):
//! grouped as data (`data.rs`: reads, writes, COPY, key probing), context (`context.rs`:
//! settings, signed contexts (a forged or replayed MAC, the key), roles, search_path, other
//! databases, tokens, a service login's catalog reads) and session state (`state.rs`:
//! LISTEN/NOTIFY, advisory locks, other sessions' queries, prepared statements and cursors
//! left on a pooled connection, another client's session settings, cancel keys) and names (`names.rs`: a slug equal to the
//! other's id, the other's id read off the catalogs).
//!
//! A vector found later is added here when it is closed.

/// Logs `$key` in at the gateway, or returns an inconclusive verdict naming `$who`.
macro_rules! login {
    ($setup:expr, $key:expr, $who:expr) => {
        match $crate::vectors::logged_in($setup, $key, $who).await {
            Ok(c) => c,
            Err(v) => return v,
        }
    };
}

/// Logs in with the service's own credential, or returns an inconclusive verdict.
macro_rules! service_login {
    ($setup:expr) => {
        match $crate::vectors::service_logged_in($setup).await {
            Ok(c) => c,
            Err(v) => return v,
        }
    };
}

mod context;
mod data;
mod names;
mod state;

use std::future::Future;
use std::pin::Pin;

use crate::client::{describe, texts};
use crate::report::{Outcome, ProbeReport, ProbeRow};
use crate::setup::{Pair, Setup};
use crate::ProbeError;

/// What a vector concluded, and why.
pub(crate) type Verdict = (Outcome, String);

/// A client logged in with the service's credential (trusted with all its tenants).
pub(crate) async fn service_logged_in(setup: &Setup) -> Result<tokio_postgres::Client, Verdict> {
    let (user, password) = &setup.credential;
    setup
        .gateway
        .login_to(&setup.gateway.service, user, password)
        .await
        .map_err(|e| {
            (
                Outcome::Inconclusive,
                format!("the service login failed: {}", describe(&e)),
            )
        })
}

/// A client logged in with `key`, or the inconclusive verdict of `who` not getting in.
pub(crate) async fn logged_in(
    setup: &Setup,
    key: &str,
    who: &str,
) -> Result<tokio_postgres::Client, Verdict> {
    setup.gateway.login(key).await.map_err(|e| {
        (
            Outcome::Inconclusive,
            format!("{who} could not log in: {}", describe(&e)),
        )
    })
}

type Vector = for<'a> fn(&'a Setup, &'a Pair) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;

/// Every vector run for each mode.
const PER_MODE: &[(&str, Vector)] = &[
    ("unfiltered read", |s, p| Box::pin(data::read(s, p))),
    ("unfiltered update", |s, p| Box::pin(data::update(s, p))),
    ("unfiltered delete", |s, p| Box::pin(data::delete(s, p))),
    ("insert with the other's tenant id", |s, p| {
        Box::pin(data::insert_as_other(s, p))
    }),
    ("TRUNCATE", |s, p| Box::pin(data::truncate(s, p))),
    ("COPY out", |s, p| Box::pin(data::copy_out(s, p))),
    ("COPY from a server file", |s, p| {
        Box::pin(data::copy_file(s, p))
    }),
    ("unique-violation probing", |s, p| {
        Box::pin(data::unique_probe(s, p))
    }),
    ("foreign-key probing", |s, p| Box::pin(data::fk_probe(s, p))),
    ("functions", |s, p| Box::pin(data::function(s, p))),
    ("usage events under the other's id", |s, p| {
        Box::pin(data::usage_as_other(s, p))
    }),
    (
        "rows under the other's id, then a move to shared",
        |s, p| Box::pin(data::planted_then_moved(s, p)),
    ),
    ("SET bulkhead.tenant_id", |s, p| {
        Box::pin(context::set_tenant(s, p, false))
    }),
    ("SET LOCAL bulkhead.tenant_id", |s, p| {
        Box::pin(context::set_tenant(s, p, true))
    }),
    ("set_config of the tenant setting", |s, p| {
        Box::pin(context::set_config_tenant(s, p))
    }),
    ("a forged tenant MAC", |s, p| {
        Box::pin(context::forged_mac(s, p))
    }),
    (
        "the own MAC replayed for the other, past the guard",
        |s, p| Box::pin(context::replayed_own_mac(s, p)),
    ),
    ("a forged MAC set past the guard", |s, p| {
        Box::pin(context::forged_mac_in_function(s, p))
    }),
    ("reading the context key", |s, p| {
        Box::pin(context::context_key(s, p))
    }),
    ("SET ROLE", |s, p| Box::pin(context::set_role(s, p))),
    ("RESET ROLE", |s, p| {
        Box::pin(context::statement_then_read(s, p, "RESET ROLE".into()))
    }),
    ("SET SESSION AUTHORIZATION", |s, p| {
        Box::pin(context::session_authorization(s, p))
    }),
    ("RESET ALL", |s, p| {
        Box::pin(context::statement_then_read(s, p, "RESET ALL".into()))
    }),
    ("search_path change", |s, p| {
        Box::pin(context::search_path(s, p))
    }),
    ("schema-qualified names", |s, p| {
        Box::pin(context::qualified(s, p))
    }),
    ("connecting to the other's database", |s, p| {
        Box::pin(context::other_database(s, p))
    }),
    ("startup options", |s, p| {
        Box::pin(context::startup_options(s, p))
    }),
    (
        "token for A with SET LOCAL bulkhead.tenant for B",
        |s, p| Box::pin(context::token_then_other(s, p)),
    ),
    ("service login switching tenant mid-transaction", |s, p| {
        Box::pin(context::switch_mid_transaction(s, p))
    }),
    (
        "service login reading tenant data before choosing a tenant",
        |s, p| Box::pin(context::catalog_route(s, p)),
    ),
    ("LISTEN/NOTIFY across tenants", |s, p| {
        Box::pin(state::listen_notify(s, p))
    }),
    ("advisory locks", |s, p| Box::pin(state::advisory(s, p))),
    ("another client's session settings", |s, p| {
        Box::pin(state::session_settings(s, p))
    }),
    ("other sessions' query text in pg_stat_activity", |s, p| {
        Box::pin(state::stat_activity(s, p))
    }),
    ("prepared statement left on a pooled connection", |s, p| {
        Box::pin(state::prepared_left(s, p))
    }),
    ("cursor left on a pooled connection", |s, p| {
        Box::pin(state::cursor_left(s, p))
    }),
    ("cancel request with another client's key", |s, p| {
        Box::pin(state::cancel_other(s, p))
    }),
    ("a slug equal to the other's id", |s, p| {
        Box::pin(names::slug_is_victims_id(s, p))
    }),
    ("the other's id in the catalogs", |s, p| {
        Box::pin(names::catalog_enumeration(s, p))
    }),
];

/// Runs every vector for every pair (and the once-only ones), in order.
pub(crate) async fn run_all(
    setup: &Setup,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<ProbeReport, ProbeError> {
    let mut report = ProbeReport::default();
    for pair in &setup.pairs {
        for (name, vector) in PER_MODE {
            progress(&format!("{} / {name}", pair.mode.as_str()));
            let (outcome, detail) = vector(setup, pair).await;
            report.rows.push(ProbeRow {
                vector: name.to_string(),
                mode: pair.mode.as_str().to_string(),
                outcome,
                detail,
            });
        }
    }
    progress("a suspended tenant's key and token");
    let (outcome, detail) = context::suspended(setup).await;
    report.rows.push(ProbeRow {
        vector: "a suspended tenant's key and token".into(),
        mode: "shared".into(),
        outcome,
        detail,
    });
    Ok(report)
}

/// The victim's secrets as the victim reads them now.
pub(crate) async fn victim_rows(setup: &Setup, pair: &Pair) -> Result<Vec<String>, String> {
    let b = setup
        .gateway
        .login(&pair.b.key)
        .await
        .map_err(|e| describe(&e))?;
    texts(&b, "SELECT secret FROM probe_rows ORDER BY id")
        .await
        .map_err(|e| describe(&e))
}

/// True when any of the victim's secrets (or anything naming the victim) is in `seen`.
pub(crate) fn shows_victim(seen: &[String], pair: &Pair) -> bool {
    let hex = pair.b.id.simple();
    seen.iter()
        .any(|v| pair.b.secrets.iter().any(|s| v.contains(s.as_str())) || v.contains(&hex))
}

/// Judges a read the attacker tried: refused, or what it saw.
pub(crate) fn judge_read(
    result: Result<Vec<String>, tokio_postgres::Error>,
    pair: &Pair,
) -> Verdict {
    match result {
        Err(e) => (Outcome::Blocked, format!("refused: {}", describe(&e))),
        Ok(seen) if shows_victim(&seen, pair) => (
            Outcome::Leak,
            format!("saw the other tenant's rows: {seen:?}"),
        ),
        Ok(seen) => (
            Outcome::Blocked,
            format!("saw only its own {} value(s)", seen.len()),
        ),
    }
}

/// Judges the victim's rows after an attempted write: untouched, or changed.
pub(crate) async fn judge_intact(
    setup: &Setup,
    pair: &Pair,
    attempt: Result<u64, tokio_postgres::Error>,
) -> Verdict {
    let how = match &attempt {
        Ok(n) => format!("accepted ({n} of its own rows)"),
        Err(e) => format!("refused: {}", describe(e)),
    };
    match victim_rows(setup, pair).await {
        Ok(rows) if rows == pair.b.secrets => (
            Outcome::Blocked,
            format!("{how}; the other tenant's rows are intact"),
        ),
        Ok(rows) => (
            Outcome::Leak,
            format!("{how}; the other tenant's rows changed: {rows:?}"),
        ),
        Err(e) => (
            Outcome::Inconclusive,
            format!("{how}; could not read the victim back: {e}"),
        ),
    }
}

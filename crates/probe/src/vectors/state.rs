//! Attacks through state outside the rows: notification channels, advisory locks, other
//! sessions' query text, prepared statements and cursors a pooled connection might keep, and
//! cancel keys.

use std::time::Duration;

use bulkhead_wire::to_server;
use bytes::BytesMut;

use super::Verdict;
use crate::client::{cancel, describe, texts, Raw};
use crate::report::Outcome;
use crate::setup::{Pair, Setup};

pub(super) async fn listen_notify(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    let theirs = format!("t_{}", pair.b.id.simple());
    let mut refused = Vec::new();
    for sql in [
        format!("LISTEN {theirs}"),
        format!("NOTIFY {theirs}_events, 'x'"),
        format!("SELECT pg_notify('{theirs}', 'x')"),
    ] {
        match a.batch_execute(&sql).await {
            Ok(()) => return (Outcome::Leak, format!("accepted: {sql}")),
            Err(e) => refused.push(describe(&e)),
        }
    }
    (Outcome::Blocked, format!("refused: {}", refused.join("; ")))
}

pub(super) async fn advisory(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    let b = login!(setup, &pair.b.key, "the victim");
    if let Err(e) = b.batch_execute("BEGIN").await {
        return (
            Outcome::Inconclusive,
            format!("the victim could not begin: {}", describe(&e)),
        );
    }
    let held = texts(&b, "SELECT bulkhead.try_advisory_xact_lock(7)").await;
    if held.as_deref().ok() != Some(&["t".to_string()][..]) {
        let _ = b.batch_execute("ROLLBACK").await;
        return (
            Outcome::Inconclusive,
            format!("the victim could not take its lock: {held:?}"),
        );
    }
    let raw = a.batch_execute("SELECT pg_try_advisory_lock(7)").await;
    let _ = a.batch_execute("BEGIN").await;
    let scoped = texts(&a, "SELECT bulkhead.try_advisory_xact_lock(7)").await;
    let _ = a.batch_execute("ROLLBACK").await;
    let _ = b.batch_execute("ROLLBACK").await;
    match (raw, scoped) {
        (Ok(()), _) => (Outcome::Leak, "pg_try_advisory_lock on a key shared by every tenant was accepted".into()),
        (Err(_), Ok(v)) if v == ["t"] => (Outcome::Blocked, "pg_advisory_* refused; the scoped lock on the same key was free: no contention across tenants".into()),
        (Err(_), Ok(v)) => (Outcome::Leak, format!("the scoped lock collided with the other tenant's ({v:?})")),
        (Err(_), Err(e)) => (Outcome::Inconclusive, format!("the scoped lock failed: {}", describe(&e))),
    }
}

pub(super) async fn stat_activity(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    let b = login!(setup, &pair.b.key, "the victim");
    let marker = format!("probe-marker-{}", pair.b.id.simple());
    let victim = tokio::spawn(async move {
        let _ = b
            .simple_query(&format!(
                "SELECT pg_sleep(1.2), '{marker}' FROM probe_rows LIMIT 1"
            ))
            .await;
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = texts(&a, "SELECT coalesce(query, '') FROM pg_stat_activity").await;
    let _ = victim.await;
    match seen {
        Err(e) => (Outcome::Blocked, format!("refused: {}", describe(&e))),
        Ok(rows) if rows.iter().any(|q| q.contains("probe-marker-")) => (
            Outcome::Leak,
            "another session's query text was visible".into(),
        ),
        Ok(rows) => (
            Outcome::Blocked,
            format!(
                "{} sessions listed, none with another tenant's query text",
                rows.len()
            ),
        ),
    }
}

pub(super) async fn prepared_left(setup: &Setup, pair: &Pair) -> Verdict {
    let b = login!(setup, &pair.b.key, "the victim");
    // The victim prepares (tokio-postgres names its statements s0, s1, ...) and runs it.
    match b.prepare("SELECT secret FROM probe_rows").await {
        Ok(st) => {
            let _ = b.query(&st, &[]).await;
        }
        Err(e) => {
            return (
                Outcome::Inconclusive,
                format!("the victim could not prepare: {}", describe(&e)),
            )
        }
    }
    let mut a = match Raw::login(&setup.gateway, &pair.a.key).await {
        Ok(r) => r,
        Err(e) => {
            return (
                Outcome::Inconclusive,
                format!("the attacker could not log in: {e}"),
            )
        }
    };
    for name in ["s0", "s1", "s2"] {
        let mut out = BytesMut::new();
        to_server::bind(&mut out, "", name, &[], &[], &[]);
        to_server::execute(&mut out, "", 0);
        to_server::sync(&mut out);
        if let Err(e) = a.send(&out).await {
            return (Outcome::Inconclusive, format!("sending failed: {e}"));
        }
        match a.until_ready().await {
            Ok(errors) if errors.is_empty() => {
                return (
                    Outcome::Leak,
                    format!("executed statement {name} it never prepared"),
                )
            }
            Ok(_) => {}
            Err(e) => return (Outcome::Inconclusive, format!("reading failed: {e}")),
        }
    }
    (
        Outcome::Blocked,
        "statements it never prepared do not exist for it".into(),
    )
}

pub(super) async fn cursor_left(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    let b = login!(setup, &pair.b.key, "the victim");
    if let Err(e) = b
        .batch_execute("BEGIN; DECLARE probe_c CURSOR FOR SELECT secret FROM probe_rows; COMMIT")
        .await
    {
        return (
            Outcome::Inconclusive,
            format!("the victim could not declare: {}", describe(&e)),
        );
    }
    let held = b
        .batch_execute("DECLARE probe_h CURSOR WITH HOLD FOR SELECT secret FROM probe_rows")
        .await;
    let _ = a.batch_execute("BEGIN").await;
    let fetched = texts(&a, "FETCH ALL FROM probe_c").await;
    let _ = a.batch_execute("ROLLBACK").await;
    match (held, fetched) {
        (Ok(()), _) => (
            Outcome::Leak,
            "a WITH HOLD cursor, which outlives its transaction, was accepted".into(),
        ),
        (Err(_), Err(e)) => (
            Outcome::Blocked,
            format!(
                "WITH HOLD refused; the other's cursor is gone: {}",
                describe(&e)
            ),
        ),
        (Err(_), Ok(rows)) => (
            Outcome::Leak,
            format!("fetched from the other tenant's cursor: {rows:?}"),
        ),
    }
}

pub(super) async fn cancel_other(setup: &Setup, pair: &Pair) -> Verdict {
    let mut b = match Raw::login(&setup.gateway, &pair.b.key).await {
        Ok(r) => r,
        Err(e) => {
            return (
                Outcome::Inconclusive,
                format!("the victim could not log in: {e}"),
            )
        }
    };
    let a = match Raw::login(&setup.gateway, &pair.a.key).await {
        Ok(r) => r,
        Err(e) => {
            return (
                Outcome::Inconclusive,
                format!("the attacker could not log in: {e}"),
            )
        }
    };
    let mut out = BytesMut::new();
    to_server::query(&mut out, "SELECT pg_sleep(1)");
    if let Err(e) = b.send(&out).await {
        return (Outcome::Inconclusive, format!("sending failed: {e}"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = b.key.0;
    let mut wrong = b.key.1.clone();
    for byte in &mut wrong {
        *byte = byte.wrapping_add(1);
    }
    // The victim's pid with a wrong secret, then with the attacker's own secret.
    let _ = cancel(&setup.gateway, pid, &wrong).await;
    let _ = cancel(&setup.gateway, pid, &a.key.1).await;
    match b.until_ready().await {
        Ok(errors) if errors.iter().any(|c| c == "57014") => (
            Outcome::Leak,
            "the other client's query was cancelled with a forged key".into(),
        ),
        Ok(_) => (Outcome::Blocked, "forged keys cancelled nothing".into()),
        Err(e) => (
            Outcome::Inconclusive,
            format!("reading the victim's result failed: {e}"),
        ),
    }
}

/// The attacker's session settings must never reach the victim's transactions on a shared
/// connection, and a pool reset sent after a statement (where a server would reset the
/// connection's role and search_path) must be refused.
pub(super) async fn session_settings(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    if let Err(e) = a
        .batch_execute("SET TimeZone = 'Pacific/Chatham'; SET statement_timeout = '100ms'")
        .await
    {
        return (
            Outcome::Inconclusive,
            format!("the attacker's own settings were refused: {}", describe(&e)),
        );
    }
    let b = login!(setup, &pair.b.key, "the victim");
    for _ in 0..4 {
        // Interleaved, so a connection the attacker used serves the victim.
        let _ = a.batch_execute("SELECT 1").await;
        match texts(&b, "SHOW TimeZone").await {
            Ok(zone) if zone.iter().any(|z| z == "Pacific/Chatham") => {
                return (
                    Outcome::Leak,
                    "the victim got the attacker's TimeZone".into(),
                )
            }
            Ok(_) => {}
            Err(e) => {
                return (
                    Outcome::Leak,
                    format!("the victim's query failed: {}", describe(&e)),
                )
            }
        }
    }
    match a.batch_execute("SELECT 1; RESET ALL").await {
        Ok(()) => (
            Outcome::Leak,
            "RESET ALL after a statement reached the server".into(),
        ),
        Err(e) => (
            Outcome::Blocked,
            format!(
                "each client sees its own settings; a trailing RESET ALL is refused: {}",
                describe(&e)
            ),
        ),
    }
}

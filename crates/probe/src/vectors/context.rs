//! Attacks on the tenant context: the tenant setting, roles and authorization, search_path,
//! schema-qualified names, other databases, startup options, and tokens.

use super::{judge_read, Verdict};
use crate::client::{describe, texts};
use crate::report::Outcome;
use crate::setup::{Pair, Setup};

const READ: &str = "SELECT tenant_id::text, secret FROM probe_rows";

/// Runs `statement` as the attacker (inside a transaction, so SET LOCAL counts), then reads:
/// blocked when the statement is refused or the read shows only the attacker's rows.
pub(super) async fn statement_then_read(setup: &Setup, pair: &Pair, statement: String) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    if let Err(e) = a.batch_execute(&format!("BEGIN; {statement}")).await {
        let _ = a.batch_execute("ROLLBACK").await;
        return (Outcome::Blocked, format!("refused: {}", describe(&e)));
    }
    let verdict = judge_read(texts(&a, READ).await, pair);
    let _ = a.batch_execute("ROLLBACK").await;
    match verdict {
        (Outcome::Blocked, d) => (Outcome::Blocked, format!("accepted, but {d}")),
        other => other,
    }
}

pub(super) async fn set_tenant(setup: &Setup, pair: &Pair, local: bool) -> Verdict {
    let local = if local { "LOCAL " } else { "" };
    statement_then_read(
        setup,
        pair,
        format!("SET {local}bulkhead.tenant_id = '{}'", pair.b.id),
    )
    .await
}

pub(super) async fn set_config_tenant(setup: &Setup, pair: &Pair) -> Verdict {
    statement_then_read(
        setup,
        pair,
        format!(
            "SELECT set_config('bulkhead.tenant_id', '{}', true)",
            pair.b.id
        ),
    )
    .await
}

pub(super) async fn set_role(setup: &Setup, pair: &Pair) -> Verdict {
    statement_then_read(setup, pair, format!("SET ROLE \"{}\"", pair.b.role)).await
}

pub(super) async fn session_authorization(setup: &Setup, pair: &Pair) -> Verdict {
    statement_then_read(
        setup,
        pair,
        format!("SET SESSION AUTHORIZATION \"{}\"", pair.b.role),
    )
    .await
}

pub(super) async fn search_path(setup: &Setup, pair: &Pair) -> Verdict {
    let path = pair.b.schema.clone().unwrap_or_else(|| "public".into());
    statement_then_read(
        setup,
        pair,
        format!("SET LOCAL search_path = \"{path}\", public"),
    )
    .await
}

pub(super) async fn qualified(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    let schema = pair.b.schema.clone().unwrap_or_else(|| "public".into());
    judge_read(
        texts(&a, &format!("SELECT secret FROM \"{schema}\".probe_rows")).await,
        pair,
    )
}

pub(super) async fn other_database(setup: &Setup, pair: &Pair) -> Verdict {
    let mut tried = Vec::new();
    for database in [
        pair.b.database.clone(),
        format!("{}_x", setup.gateway.service),
    ] {
        match setup
            .gateway
            .login_to(&database, "probe", &pair.a.key)
            .await
        {
            Err(e) => tried.push(format!("{database}: refused ({})", describe(&e))),
            Ok(c) => {
                let (outcome, detail) = judge_read(texts(&c, READ).await, pair);
                if outcome != Outcome::Blocked {
                    return (outcome, format!("logged in to {database}: {detail}"));
                }
                tried.push(format!("{database}: {detail}"));
            }
        }
    }
    (Outcome::Blocked, tried.join("; "))
}

pub(super) async fn startup_options(setup: &Setup, pair: &Pair) -> Verdict {
    let schema = pair.b.schema.clone().unwrap_or_else(|| "public".into());
    let options = format!(
        "-c role={} -c search_path={schema} -c bulkhead.tenant_id={}",
        pair.b.role, pair.b.id
    );
    match setup
        .gateway
        .login_with_options(&pair.a.key, &options)
        .await
    {
        Err(e) => (Outcome::Blocked, format!("refused: {}", describe(&e))),
        Ok(c) => match judge_read(texts(&c, READ).await, pair) {
            (Outcome::Blocked, d) => (Outcome::Blocked, format!("options ignored: {d}")),
            other => other,
        },
    }
}

pub(super) async fn token_then_other(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.token, "the attacker's token");
    if let Err(e) = a
        .batch_execute(&format!(
            "BEGIN; SET LOCAL bulkhead.tenant = '{}'",
            pair.b.id
        ))
        .await
    {
        let _ = a.batch_execute("ROLLBACK").await;
        return (Outcome::Blocked, format!("refused: {}", describe(&e)));
    }
    let verdict = judge_read(texts(&a, READ).await, pair);
    let _ = a.batch_execute("ROLLBACK").await;
    verdict
}

pub(super) async fn switch_mid_transaction(setup: &Setup, pair: &Pair) -> Verdict {
    let s = service_login!(setup);
    if let Err(e) = s
        .batch_execute(&format!(
            "BEGIN; SET LOCAL bulkhead.token = '{}'; SELECT count(*) FROM probe_rows",
            pair.a.token
        ))
        .await
    {
        return (
            Outcome::Inconclusive,
            format!("the first tenant's statement failed: {}", describe(&e)),
        );
    }
    let switched = s
        .batch_execute(&format!("SET LOCAL bulkhead.tenant = '{}'", pair.b.id))
        .await;
    let verdict = match switched {
        Err(e) => (Outcome::Blocked, format!("refused: {}", describe(&e))),
        Ok(()) => judge_read(texts(&s, READ).await, pair),
    };
    let _ = s.batch_execute("ROLLBACK").await;
    verdict
}

pub(super) async fn suspended(setup: &Setup) -> Verdict {
    let mut tried = Vec::new();
    for (what, password) in [
        ("key", &setup.suspended.key),
        ("token", &setup.suspended.token),
    ] {
        match setup.gateway.login(password).await {
            Err(e) => tried.push(format!("{what}: refused ({})", describe(&e))),
            Ok(c) => {
                let seen = texts(&c, READ).await.unwrap_or_default();
                return (
                    Outcome::Leak,
                    format!(
                        "a suspended tenant's {what} logged in (saw {} values)",
                        seen.len()
                    ),
                );
            }
        }
    }
    (Outcome::Blocked, tried.join("; "))
}

/// A service login that chose no tenant runs catalog reads on the service's catalog route
/// (as a role bound to no tenant): nothing it sends there may reach a tenant's rows — not a
/// plain or schema-qualified read, not the tenant helper, not a read inside a transaction
/// that began with catalog reads.
pub(super) async fn catalog_route(setup: &Setup, pair: &Pair) -> Verdict {
    let s = service_login!(setup);
    let schema = pair.b.schema.clone().unwrap_or_else(|| "public".into());
    let reads = [
        READ.to_string(),
        format!("SELECT secret FROM \"{schema}\".probe_rows"),
        "SELECT bulkhead.current_tenant()::text".to_string(),
        format!(
            "SELECT secret FROM pg_catalog.pg_class c, \"{schema}\".probe_rows WHERE c.relname = 'probe_rows'"
        ),
    ];
    let mut refused = 0;
    for sql in &reads {
        match judge_read(texts(&s, sql).await, pair) {
            (Outcome::Blocked, d) if d.starts_with("refused") => refused += 1,
            (Outcome::Blocked, _) => {}
            (outcome, d) => return (outcome, format!("{sql}: {d}")),
        }
    }
    let in_transaction = async {
        s.batch_execute("BEGIN").await?;
        texts(&s, "SELECT 1").await?;
        texts(&s, READ).await
    }
    .await;
    let _ = s.batch_execute("ROLLBACK").await;
    match judge_read(in_transaction, pair) {
        (Outcome::Blocked, d) => (
            Outcome::Blocked,
            format!(
                "{refused} of {} reads refused, the rest saw nothing; in a transaction begun with a catalog read: {d}",
                reads.len()
            ),
        ),
        (outcome, d) => (outcome, format!("in a transaction begun with a catalog read: {d}")),
    }
}

/// Signed contexts (shared tenants run under one role; the tenant setting must carry the
/// gateway's MAC): the MAC set through the guard with the other's id, forged.
pub(super) async fn forged_mac(setup: &Setup, pair: &Pair) -> Verdict {
    statement_then_read(
        setup,
        pair,
        format!(
            "SET LOCAL bulkhead.tenant_mac = '{}'; SET LOCAL bulkhead.tenant_id = '{}'",
            "0".repeat(64),
            pair.b.id
        ),
    )
    .await
}

/// The tenant setting changed inside a function body, where the guard cannot see it, so the
/// session's own MAC is replayed for the other tenant: only the database's check stands.
pub(super) async fn replayed_own_mac(setup: &Setup, pair: &Pair) -> Verdict {
    statement_then_read(
        setup,
        pair,
        format!("SELECT probe_set('bulkhead.tenant_id', '{}')", pair.b.id),
    )
    .await
}

/// Both settings set inside a function body: the other's id with a MAC made up by the
/// attacker (every byte of it chosen, none known to be right).
pub(super) async fn forged_mac_in_function(setup: &Setup, pair: &Pair) -> Verdict {
    statement_then_read(
        setup,
        pair,
        format!(
            "SELECT probe_set('bulkhead.tenant_mac', encode(sha256(convert_to('{}', 'UTF8')), 'hex')), \
                    probe_set('bulkhead.tenant_id', '{}')",
            pair.b.id, pair.b.id
        ),
    )
    .await
}

/// The key the gateway signs contexts with: read directly, through the attacker's own
/// function, or by asking the check itself (an oracle that must answer only yes or no).
pub(super) async fn context_key(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    let mut tried = Vec::new();
    for sql in [
        "SELECT encode(key, 'hex') FROM bulkhead.context_key",
        "SELECT encode(ipad, 'hex') || encode(opad, 'hex') FROM bulkhead.context_key",
        "SELECT count(*)::text FROM bulkhead.context_key",
    ] {
        match texts(&a, sql).await {
            Err(e) => tried.push(format!("refused: {}", describe(&e))),
            Ok(seen) if seen.is_empty() => tried.push("no rows".into()),
            Ok(seen) => return (Outcome::Leak, format!("{sql} answered {seen:?}")),
        }
    }
    match texts(
        &a,
        &format!(
            "SELECT bulkhead.context_valid(current_user::text, '{}', '{}')::text",
            pair.b.id,
            "0".repeat(64)
        ),
    )
    .await
    {
        Err(e) => tried.push(format!("the check refused: {}", describe(&e))),
        Ok(seen) if seen.iter().all(|v| v == "false") => {
            tried.push("the check answered only false".into())
        }
        Ok(seen) => return (Outcome::Leak, format!("the check answered {seen:?}")),
    }
    (Outcome::Blocked, tried.join("; "))
}

//! Attacks on the data itself: reading, changing or planting the other tenant's rows, COPY,
//! and probing for its keys through unique and foreign-key violations.

use futures_util::StreamExt;

use super::{judge_intact, judge_read, shows_victim, Verdict};
use crate::client::{code, describe, texts};
use crate::report::Outcome;
use crate::setup::{Pair, Setup};

pub(super) async fn read(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    judge_read(
        texts(&a, "SELECT tenant_id::text, secret FROM probe_rows").await,
        pair,
    )
}

pub(super) async fn update(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    let attempt = a
        .execute("UPDATE probe_rows SET secret = secret || '-pwned'", &[])
        .await;
    let verdict = judge_intact(setup, pair, attempt).await;
    let _ = a
        .execute(
            "UPDATE probe_rows SET secret = replace(secret, '-pwned', '')",
            &[],
        )
        .await;
    verdict
}

pub(super) async fn delete(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    // Id 2 exists for the victim only.
    let attempt = a.execute("DELETE FROM probe_rows WHERE id = 2", &[]).await;
    judge_intact(setup, pair, attempt).await
}

pub(super) async fn insert_as_other(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    let planted = format!("planted-{}", pair.b.id.simple());
    let attempt = a
        .execute(
            &format!(
                "INSERT INTO probe_rows (tenant_id, id, secret) VALUES ('{}', 77, '{planted}')",
                pair.b.id
            ),
            &[],
        )
        .await;
    let _ = a.execute("DELETE FROM probe_rows WHERE id = 77", &[]).await;
    judge_intact(setup, pair, attempt).await
}

pub(super) async fn truncate(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    let attempt = a.execute("TRUNCATE probe_rows", &[]).await;
    judge_intact(setup, pair, attempt).await
}

pub(super) async fn copy_out(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    let mut seen = Vec::new();
    for sql in [
        "COPY probe_rows TO STDOUT",
        "COPY (SELECT tenant_id, secret FROM probe_rows) TO STDOUT",
    ] {
        match a.copy_out(sql).await {
            Ok(stream) => {
                let chunks: Vec<_> = stream.collect().await;
                for c in chunks.into_iter().flatten() {
                    seen.push(String::from_utf8_lossy(&c).to_string());
                }
            }
            Err(e) => seen.push(format!("refused: {}", describe(&e))),
        }
    }
    if shows_victim(&seen, pair) {
        (
            Outcome::Leak,
            format!("COPY showed the other tenant's rows: {seen:?}"),
        )
    } else {
        (Outcome::Blocked, "COPY showed only its own rows".into())
    }
}

pub(super) async fn copy_file(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    match a
        .batch_execute("COPY probe_rows FROM '/etc/hostname'")
        .await
    {
        Err(e) => (Outcome::Blocked, format!("refused: {}", describe(&e))),
        Ok(()) => (Outcome::Leak, "COPY from a server file was accepted".into()),
    }
}

pub(super) async fn unique_probe(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    // The victim has id 2, the attacker does not: a violation would tell it so.
    let attempt = a
        .execute(
            "INSERT INTO probe_rows (id, secret) VALUES (2, 'mine')",
            &[],
        )
        .await;
    let _ = a.execute("DELETE FROM probe_rows WHERE id = 2", &[]).await;
    match attempt {
        Ok(_) => (
            Outcome::Blocked,
            "the key the other tenant uses was free for it: nothing revealed".into(),
        ),
        Err(e) if code(&e).as_deref() == Some("23505") => (
            Outcome::Leak,
            format!(
                "a unique violation revealed the other tenant's key: {}",
                describe(&e)
            ),
        ),
        Err(e) => (
            Outcome::Inconclusive,
            format!("the insert failed otherwise: {}", describe(&e)),
        ),
    }
}

pub(super) async fn fk_probe(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    // Parent 2 exists for the victim only, parent 999 for nobody: both must fail alike.
    let theirs = a
        .execute("INSERT INTO probe_children (id, parent) VALUES (1, 2)", &[])
        .await;
    let nobodys = a
        .execute(
            "INSERT INTO probe_children (id, parent) VALUES (2, 999)",
            &[],
        )
        .await;
    let _ = a.execute("DELETE FROM probe_children", &[]).await;
    match (&theirs, &nobodys) {
        (Ok(_), _) => (
            Outcome::Leak,
            "a child row could reference the other tenant's row".into(),
        ),
        (Err(t), Err(n)) if code(t) == code(n) => (
            Outcome::Blocked,
            format!(
                "the other tenant's key and a missing one fail alike: {}",
                describe(t)
            ),
        ),
        (Err(t), _) => (
            Outcome::Leak,
            format!(
                "the other tenant's key fails differently from a missing one: {}",
                describe(t)
            ),
        ),
    }
}

pub(super) async fn function(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    judge_read(texts(&a, "SELECT probe_secrets()").await, pair)
}

/// A schema or database tenant writes a row under the victim's id into its own table (which
/// its own place allows), then the operator moves it into shared tables: the row must not
/// arrive there as the victim's.
pub(super) async fn planted_then_moved(setup: &Setup, pair: &Pair) -> Verdict {
    if pair.mode == bulkhead_model::Mode::Shared {
        return (
            Outcome::Blocked,
            "shared tables refuse a row under another id (see `insert with the other's tenant id`)"
                .into(),
        );
    }
    let a = login!(setup, &pair.a.key, "the attacker");
    let planted = format!("planted-{}", pair.b.id.simple());
    if let Err(e) = a
        .execute(
            &format!(
                "INSERT INTO probe_rows (tenant_id, id, secret) VALUES ('{}', 78, '{planted}')",
                pair.b.id
            ),
            &[],
        )
        .await
    {
        return (
            Outcome::Blocked,
            format!("could not even plant the row: {}", describe(&e)),
        );
    }
    let req = bulkhead_mover::MoveRequest {
        tenant: bulkhead_directory::TenantRef::Id(pair.a.id),
        service: Some(setup.service.clone()),
        to: bulkhead_model::Mode::Shared,
        cluster: None,
    };
    let moved = bulkhead_mover::start(&setup.dir, &req, &Default::default(), &()).await;
    let how = match &moved {
        Ok(_) => "the move went through".to_string(),
        Err(e) => format!("the move was refused: {e}"),
    };
    let victim = super::victim_rows(setup, pair).await;
    // Put the attacker back where it was, whatever happened.
    if moved.is_ok() {
        let _ = bulkhead_mover::rollback(
            &setup.dir,
            &bulkhead_directory::TenantRef::Id(pair.a.id),
            Some(&setup.service),
            &Default::default(),
            &(),
        )
        .await;
    }
    if let Ok(a) = setup.gateway.login(&pair.a.key).await {
        let _ = a.execute("DELETE FROM probe_rows WHERE id = 78", &[]).await;
    }
    match victim {
        Ok(rows) if rows == pair.b.secrets => (
            Outcome::Blocked,
            format!("{how}; the other tenant's rows are intact"),
        ),
        Ok(rows) => (
            Outcome::Leak,
            format!("{how}; the other tenant now has: {rows:?}"),
        ),
        Err(e) => (
            Outcome::Inconclusive,
            format!("{how}; could not read the victim back: {e}"),
        ),
    }
}

/// The usage outbox is one table per database, shared by every tenant there: the attacker
/// tries to bill the victim (an event under the victim's id) and to read the victim's
/// events. Only `bulkhead.usage()` under its own id is allowed.
pub(super) async fn usage_as_other(setup: &Setup, pair: &Pair) -> Verdict {
    let a = login!(setup, &pair.a.key, "the attacker");
    if let Err(e) = a
        .execute("SELECT bulkhead.usage('probe_events', 1, 'own')", &[])
        .await
    {
        return (
            Outcome::Inconclusive,
            format!("recording its own usage failed: {}", describe(&e)),
        );
    }
    let planted = a
        .execute(
            &format!(
                "INSERT INTO bulkhead.usage_outbox (tenant_id, metric, quantity, idempotency_key) VALUES ('{}', 'probe_events', 1000, 'billed-to-victim')",
                pair.b.id
            ),
            &[],
        )
        .await;
    if planted.is_ok() {
        return (
            Outcome::Leak,
            "recorded usage under the other tenant's id".into(),
        );
    }
    match texts(
        &a,
        "SELECT tenant_id::text || ' ' || idempotency_key FROM bulkhead.usage_outbox",
    )
    .await
    {
        Ok(seen) if shows_victim(&seen, pair) => (
            Outcome::Leak,
            format!("read the other tenant's usage events: {seen:?}"),
        ),
        Ok(seen) => (
            Outcome::Leak,
            format!("read the usage outbox ({} rows)", seen.len()),
        ),
        Err(e) => (
            Outcome::Blocked,
            format!(
                "billing the other tenant refused ({}); reading the outbox refused: {}",
                planted.err().map(|e| describe(&e)).unwrap_or_default(),
                describe(&e)
            ),
        ),
    }
}

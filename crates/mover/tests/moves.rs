//! Moves with a writer running through the gateway for the whole move: afterwards every
//! acknowledged write is at the target, nothing is duplicated, sequences continue, the
//! tenant id is unchanged and another tenant's rows are untouched.

use bulkhead_directory::{MovePhase, TenantRef};
use bulkhead_model::{ClusterName, Mode, TenantId};
use bulkhead_mover::{MoveOptions, MoveRequest};

mod support;
use support::*;

fn request(tenant: TenantId, to: Mode, cluster: Option<&str>) -> MoveRequest {
    MoveRequest {
        tenant: TenantRef::Id(tenant),
        service: None,
        to,
        cluster: cluster.map(|c| c.parse::<ClusterName>().expect("cluster")),
    }
}

/// Seeds `n` customers for a tenant through the gateway.
async fn seed(env: &Env, key: &str, n: i64) {
    let c = connect(env, key).await.expect("connect");
    c.execute(
        "INSERT INTO customers (id, name) SELECT g, 's' || g FROM generate_series(1000000::bigint, 1000000 + $1::bigint - 1) g",
        &[&n],
    )
    .await
    .expect("seed");
}

/// Checks that what the gateway shows is exactly what was acknowledged (plus the seed).
async fn assert_all_acked(env: &Env, key: &str, acked: &Acked, seeded: i64) {
    let (customers, events) = snapshot(env, key).await;
    let written: Vec<(i64, String)> = customers
        .iter()
        .filter(|(id, _)| **id < 1_000_000)
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let expected: Vec<(i64, String)> = acked
        .customers
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    // A write that failed (not acknowledged) may still have committed only if its COMMIT's
    // answer was lost; the gateway never loses one, so the two must be equal.
    assert_eq!(written, expected, "acknowledged customers at the target");
    assert_eq!(
        customers.len() as i64 - written.len() as i64,
        seeded,
        "seeded customers"
    );
    for e in &acked.events {
        assert!(
            events.binary_search(e).is_ok(),
            "acknowledged event {e} is at the target"
        );
    }
}

#[tokio::test]
async fn every_direction_with_a_writer_and_another_tenant_untouched() {
    let env = env("every_direction").await;
    let (acme, key) = tenant(&env, "acme", Mode::Shared).await;
    let (_, other_key) = tenant(&env, "other", Mode::Shared).await;
    seed(&env, &key, 500).await;
    seed(&env, &other_key, 300).await;
    let other_before = snapshot(&env, &other_key).await;
    let mut next_id = 1;
    let mut all = Acked::default();
    let mut epoch = env
        .dir
        .placement(&env.service.parse().expect("s"), &acme)
        .await
        .expect("p")
        .expect("placement")
        .epoch;
    for to in [
        Mode::Schema,
        Mode::Database,
        Mode::Schema,
        Mode::Shared,
        Mode::Database,
        Mode::Shared,
    ] {
        let writer = Writer::start(&env, &key, next_id).await;
        wait_commits(&writer, 20).await;
        let m = match bulkhead_mover::start(
            &env.dir,
            &request(acme, to, None),
            &MoveOptions::default(),
            &(),
        )
        .await
        {
            Ok(m) => m,
            Err(e) => {
                let acked = writer.stop().await;
                panic!("move to {to}: {e}; writer errors: {:?}", acked.errors);
            }
        };
        assert_eq!(m.phase, MovePhase::Switched);
        wait_commits(&writer, 20).await;
        let round = writer.stop().await;
        next_id += round.commits as i64 + round.errors.len() as i64 + 10;
        // Each round writes ids past the last round's, so the rounds add up.
        all.customers.extend(round.customers.clone());
        all.events.extend(round.events.iter().copied());
        assert_all_acked(&env, &key, &all, 500).await;
        let acked = round;
        let p = env
            .dir
            .placement(&env.service.parse().expect("s"), &acme)
            .await
            .expect("p")
            .expect("placement");
        assert_eq!(p.mode, to, "placement mode");
        assert_eq!(p.tenant_id, acme, "same tenant id");
        assert_eq!(p.epoch, epoch + 1, "epoch + 1");
        epoch = p.epoch;
        // Sequences continue: a new event gets an id past every one handed out.
        let c = connect(&env, &key).await.expect("connect");
        let id: i64 = c
            .query_one(
                "INSERT INTO events (kind) VALUES ('after') RETURNING id",
                &[],
            )
            .await
            .expect("insert after the move")
            .get(0);
        assert!(
            all.events.iter().all(|e| *e < id),
            "event id {id} continues the sequence after moving to {to}"
        );
        let done = bulkhead_mover::finalize(&env.dir, &TenantRef::Id(acme), None)
            .await
            .expect("finalize");
        assert_eq!(done.phase, MovePhase::Finalized);
        assert_eq!(
            snapshot(&env, &other_key).await,
            other_before,
            "the other tenant's rows"
        );
        eprintln!(
            "moved to {to}: {} commits, {} errors ({:?}), pause {:?} ms",
            acked.commits,
            acked.errors.len(),
            acked.errors.first(),
            m.pause_ms
        );
    }
}

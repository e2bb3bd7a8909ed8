//! After an attempt: recording results, lost leases, purging finished work, wake-ups and queue counts.

use std::collections::BTreeSet;

use herald_core::status::DeliveryStatus;
use herald_store::{DeliveryFilter, NextState, StoreStats, DEFAULT_TENANT};

use super::*;

/// Recording attempts moves deliveries to delivered, retrying or failed, and keeps the attempt history.
pub async fn record_attempts(store: Shared) {
    let ep = add_endpoint(&store, DEFAULT_TENANT, 1, &["*"]).await;
    let ok = publish_to(&store, "t.a", BASE, &ep.id).await;
    let retry = publish_to(&store, "t.b", BASE + 1, &ep.id).await;
    let dead = publish_to(&store, "t.c", BASE + 2, &ep.id).await;
    let stolen = publish_to(&store, "t.d", BASE + 3, &ep.id).await;
    let now = BASE + 10;
    assert_eq!(claim(&store, "w1", now).await.len(), 4);

    // Delivered, with the attempt kept field by field.
    let result = attempt_result(&ok, "w1", 1, Some(204), NextState::Delivered, now + 50);
    let attempt = result.attempt.clone();
    let ok_before = store.get_delivery(DEFAULT_TENANT, &ok).await.unwrap();
    record(&store, result).await;
    let d = store.get_delivery(DEFAULT_TENANT, &ok).await.unwrap();
    assert_eq!(d.status, DeliveryStatus::Delivered);
    assert_eq!(d.attempt_count, 1);
    assert_eq!(d.next_attempt_ms, None);
    assert_eq!(d.last_status_code, Some(204));
    assert_eq!(d.last_error, None);
    assert_eq!(d.updated_ms, now + 50);
    assert_eq!(d.created_ms, ok_before.created_ms);
    assert_eq!(
        store.list_attempts(DEFAULT_TENANT, &ok).await.unwrap(),
        vec![attempt]
    );

    // Retry later: not claimable before that time, claimable at it.
    let t = now + 20_000; // before the other leases expire
    let mut result = attempt_result(&retry, "w1", 1, None, NextState::RetryAt(t), now + 60);
    result.attempt.response_body = None;
    let first_attempt = result.attempt.clone();
    record(&store, result).await;
    let d = store.get_delivery(DEFAULT_TENANT, &retry).await.unwrap();
    assert_eq!(d.status, DeliveryStatus::Retrying);
    assert_eq!(d.attempt_count, 1);
    assert_eq!(d.next_attempt_ms, Some(t));
    assert_eq!(d.last_status_code, None);
    assert_eq!(d.last_error.as_deref(), Some("timeout"));
    assert!(claim(&store, "w2", t - 1)
        .await
        .iter()
        .all(|c| c.id != retry));
    let again = claim(&store, "w2", t).await;
    let again: Vec<_> = again.iter().filter(|c| c.id == retry).collect();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt_count, 1);
    record(
        &store,
        attempt_result(&retry, "w2", 2, Some(200), NextState::Delivered, t + 5),
    )
    .await;
    let attempts = store.list_attempts(DEFAULT_TENANT, &retry).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0], first_attempt);
    assert_eq!(
        (attempts[1].number, attempts[1].status_code),
        (2, Some(200))
    );
    let d = store.get_delivery(DEFAULT_TENANT, &retry).await.unwrap();
    assert_eq!(
        (d.status, d.attempt_count, d.last_error),
        (DeliveryStatus::Delivered, 2, None)
    );

    // Failed joins the dead-letter set.
    assert_eq!(store.stats(now).await.unwrap().failed, 0);
    record(
        &store,
        attempt_result(&dead, "w1", 1, Some(410), NextState::Failed, now + 70),
    )
    .await;
    let d = store.get_delivery(DEFAULT_TENANT, &dead).await.unwrap();
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!(d.next_attempt_ms, None);
    assert_eq!(d.last_status_code, Some(410));
    assert_eq!(store.stats(now + 70).await.unwrap().failed, 1);

    // A result from an owner that does not hold the lease changes no state (its attempt history is checked by
    // `lost_lease_keeps_attempt_history`).
    let before = store.get_delivery(DEFAULT_TENANT, &stolen).await.unwrap();
    assert_eq!(before.status, DeliveryStatus::InProgress);
    record(
        &store,
        attempt_result(
            &stolen,
            "intruder",
            1,
            Some(200),
            NextState::Delivered,
            now + 80,
        ),
    )
    .await;
    assert_eq!(
        store.get_delivery(DEFAULT_TENANT, &stolen).await.unwrap(),
        before
    );
    // ... and the delivery stays claimable once the real lease expires.
    assert!(claim(&store, "w3", now + LEASE_SPAN - 1).await.is_empty());
    let rescued = claim(&store, "w3", now + LEASE_SPAN).await;
    assert_eq!(claimed_ids(&rescued), BTreeSet::from([stolen.clone()]));
    assert_eq!(rescued[0].attempt_count, 0);
    record(
        &store,
        attempt_result(
            &stolen,
            "w3",
            1,
            Some(201),
            NextState::Delivered,
            now + LEASE_SPAN + 9,
        ),
    )
    .await;
    let d = store.get_delivery(DEFAULT_TENANT, &stolen).await.unwrap();
    assert_eq!(
        (d.status, d.attempt_count, d.last_status_code),
        (DeliveryStatus::Delivered, 1, Some(201))
    );

    // Other tenants cannot read attempts.
    store
        .create_tenant("other", &"3".repeat(64), BASE)
        .await
        .unwrap();
    assert_not_found(store.list_attempts("other", &ok).await);
    assert_not_found(
        store
            .list_attempts(DEFAULT_TENANT, "dlv_00000000000000000000000000")
            .await,
    );
}

/// A result from a lost lease must change nothing, attempt history included; otherwise the stale attempt takes
/// the attempt number the new owner uses next and the new owner's real attempt is dropped.
pub async fn lost_lease_keeps_attempt_history(store: Shared) {
    let ep = add_endpoint(&store, DEFAULT_TENANT, 1, &["*"]).await;
    let id = publish_to(&store, "lease.lost", BASE, &ep.id).await;
    assert_eq!(
        claimed_ids(&claim(&store, "crashed", BASE).await),
        BTreeSet::from([id.clone()])
    );
    // The first owner stalls past its lease; another owner takes over.
    let expired = BASE + LEASE_SPAN + 1;
    let rescued = claim(&store, "rescuer", expired).await;
    assert_eq!(claimed_ids(&rescued), BTreeSet::from([id.clone()]));
    assert_eq!(rescued[0].attempt_count, 0);

    // The stalled owner's result arrives: no state change, no attempt.
    record(
        &store,
        attempt_result(&id, "crashed", 1, Some(500), NextState::Failed, expired + 5),
    )
    .await;
    let d = store.get_delivery(DEFAULT_TENANT, &id).await.unwrap();
    assert_eq!(
        (d.status, d.attempt_count, d.last_status_code),
        (DeliveryStatus::InProgress, 0, None)
    );
    assert_eq!(
        store.list_attempts(DEFAULT_TENANT, &id).await.unwrap(),
        Vec::new(),
        "a result from a lost lease must not add an attempt"
    );

    // The rescuer's attempt 1 is the one on record.
    let result = attempt_result(
        &id,
        "rescuer",
        1,
        Some(200),
        NextState::Delivered,
        expired + 9,
    );
    let real = result.attempt.clone();
    record(&store, result).await;
    let d = store.get_delivery(DEFAULT_TENANT, &id).await.unwrap();
    assert_eq!(
        (d.status, d.attempt_count, d.last_status_code),
        (DeliveryStatus::Delivered, 1, Some(200))
    );
    assert_eq!(
        store.list_attempts(DEFAULT_TENANT, &id).await.unwrap(),
        vec![real]
    );
}

/// Purging by retention, the wake-up time and the queue counts.
pub async fn purge_next_due_and_stats(store: Shared) {
    assert_eq!(store.next_due_ms().await.unwrap(), None);
    assert_eq!(store.stats(BASE).await.unwrap(), StoreStats::default());

    let ep = add_endpoint(&store, DEFAULT_TENANT, 1, &["*"]).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(publish_to(&store, "p.x", BASE + 100 + i, &ep.id).await);
    }
    assert_eq!(store.next_due_ms().await.unwrap(), Some(BASE + 100));
    let stats = store.stats(BASE + 103).await.unwrap();
    assert_eq!(
        stats,
        StoreStats {
            due: 4,
            in_flight: 0,
            scheduled: 4,
            failed: 0
        }
    );

    let now = BASE + 1_000;
    assert_eq!(claim(&store, "w", now).await.len(), 8);
    // Only leases remain: the next wake-up is the earliest lease expiry.
    assert_eq!(store.next_due_ms().await.unwrap(), Some(now + LEASE_SPAN));
    assert_eq!(
        store.stats(now).await.unwrap(),
        StoreStats {
            due: 0,
            in_flight: 8,
            scheduled: 0,
            failed: 0
        }
    );

    // 0..3 failed (old, old, recent), 3..6 delivered (old, old, recent), 6 cancelled (old), 7 retrying.
    let outcome = |i: usize| match i {
        0..=2 => NextState::Failed,
        3..=5 => NextState::Delivered,
        _ => NextState::RetryAt(now + 500_000),
    };
    let at = |i: usize| {
        if i == 2 || i == 5 {
            now + 200_000
        } else {
            now + 100
        }
    };
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| *i != 6) {
        record(
            &store,
            attempt_result(id, "w", 1, Some(500), outcome(i), at(i)),
        )
        .await;
    }
    store
        .release_leases("w", &[ids[6].clone()], now + 100)
        .await
        .unwrap();
    store
        .cancel_delivery(DEFAULT_TENANT, &ids[6], now + 100)
        .await
        .unwrap();

    assert_eq!(store.next_due_ms().await.unwrap(), Some(now + 500_000));
    let stats = store.stats(now + 300_000).await.unwrap();
    assert_eq!(
        stats,
        StoreStats {
            due: 0,
            in_flight: 0,
            scheduled: 1,
            failed: 3
        }
    );
    let stats = store.stats(now + 500_000).await.unwrap();
    assert_eq!(
        stats,
        StoreStats {
            due: 1,
            in_flight: 0,
            scheduled: 0,
            failed: 3
        }
    );

    // Failed deliveries are kept until `failed_before`, the others until `others_before`.
    let failed_before = now + 150_000;
    let others_before = now + 150_000;
    assert_eq!(
        store.purge_finished(failed_before, 0, 100).await.unwrap(),
        2
    );
    for (i, id) in ids.iter().enumerate() {
        let gone = i < 2;
        assert_eq!(
            store.get_delivery(DEFAULT_TENANT, id).await.is_err(),
            gone,
            "delivery {i}"
        );
    }
    assert_not_found(store.list_attempts(DEFAULT_TENANT, &ids[0]).await);
    assert_eq!(store.stats(now + 300_000).await.unwrap().failed, 1);

    // Batches: three old delivered/cancelled ones, two per call.
    assert_eq!(store.purge_finished(0, others_before, 2).await.unwrap(), 2);
    assert_eq!(store.purge_finished(0, others_before, 2).await.unwrap(), 1);
    assert_eq!(store.purge_finished(0, others_before, 2).await.unwrap(), 0);
    let left: BTreeSet<String> = [2, 5, 7].iter().map(|&i| ids[i].clone()).collect();
    let remaining = store
        .list_deliveries(
            DEFAULT_TENANT,
            &DeliveryFilter::default(),
            &herald_store::Page::first(100),
        )
        .await
        .unwrap();
    assert_eq!(
        remaining
            .items
            .iter()
            .map(|d| d.id.clone())
            .collect::<BTreeSet<_>>(),
        left
    );
    // The retrying delivery is never purged, however old.
    assert_eq!(
        store.purge_finished(i64::MAX, i64::MAX, 100).await.unwrap(),
        2
    );
    let d = store.get_delivery(DEFAULT_TENANT, &ids[7]).await.unwrap();
    assert_eq!(d.status, DeliveryStatus::Retrying);
    assert_eq!(
        store
            .list_attempts(DEFAULT_TENANT, &ids[7])
            .await
            .unwrap()
            .len(),
        1
    );

    // Deliver the last one: nothing due, nothing leased.
    assert_eq!(claim(&store, "w", now + 500_000).await.len(), 1);
    record(
        &store,
        attempt_result(
            &ids[7],
            "w",
            2,
            Some(200),
            NextState::Delivered,
            now + 500_001,
        ),
    )
    .await;
    assert_eq!(store.next_due_ms().await.unwrap(), None);
    assert_eq!(
        store.stats(now + 500_001).await.unwrap(),
        StoreStats::default()
    );
}

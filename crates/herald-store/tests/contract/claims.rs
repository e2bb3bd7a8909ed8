//! The delivery engine's side: leases, per-key limits, recording attempts, releasing, purging, queue counts.

use std::collections::{BTreeSet, HashMap};

use herald_core::status::DeliveryStatus;
use herald_store::{DeliveryFilter, NextState, StoreStats, DEFAULT_TENANT};

use super::*;

/// Concurrent claims never hand one delivery to two owners; leases hold until they expire.
pub async fn claims_are_exclusive(store: Shared) {
    let mut ep = endpoint(DEFAULT_TENANT, 1, &["*"]);
    ep.max_in_flight = 1_000;
    store.create_endpoint(&ep).await.unwrap();
    let mut all = BTreeSet::new();
    for i in 0..200 {
        let (_, ids) = publish(&store, "load.test", BASE + i % 7).await;
        all.extend(ids);
    }
    assert_eq!(all.len(), 200);

    let now = BASE + 100;
    let claimers: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let request = claim_request(&format!("owner-{i}"), now, 100);
                store.claim_due(&request).await.unwrap()
            })
        })
        .collect();
    let mut union = BTreeSet::new();
    let mut owner_of = HashMap::new();
    for (i, task) in claimers.into_iter().enumerate() {
        let claimed = task.await.unwrap();
        assert!(claimed.len() <= 100);
        for c in claimed {
            assert!(union.insert(c.id.clone()), "{} claimed twice", c.id);
            owner_of.insert(c.id, format!("owner-{i}"));
        }
    }
    assert_eq!(union, all);

    // Everything is leased.
    assert!(claim(&store, "late", now).await.is_empty());
    assert!(claim(&store, "late", now + LEASE_SPAN - 1).await.is_empty());
    for id in all.iter().take(3) {
        let d = store.get_delivery(DEFAULT_TENANT, id).await.unwrap();
        assert_eq!(d.status, DeliveryStatus::InProgress);
        assert_eq!(d.next_attempt_ms, None);
    }

    // Half the owners report back; the rest crash.
    let recorded: Vec<String> = all.iter().step_by(2).cloned().collect();
    let results = recorded
        .iter()
        .map(|id| {
            attempt_result(
                id,
                &owner_of[id],
                1,
                Some(200),
                NextState::Delivered,
                now + 10,
            )
        })
        .collect();
    store.record_attempts(results).await.unwrap();

    let expired = now + LEASE_SPAN + 1;
    let recovered = claim(&store, "rescuer", expired).await;
    let want: BTreeSet<String> = all.iter().skip(1).step_by(2).cloned().collect();
    assert_eq!(claimed_ids(&recovered), want);
    assert_eq!(recovered.len(), 100);
    assert!(recovered.iter().all(|c| c.attempt_count == 0));
    assert!(claim(&store, "late", expired).await.is_empty());

    // The crashed owner's late result no longer counts; the rescuer's does.
    let lost = recovered[0].id.clone();
    record(
        &store,
        attempt_result(
            &lost,
            &owner_of[&lost],
            1,
            Some(500),
            NextState::Failed,
            expired + 5,
        ),
    )
    .await;
    assert_eq!(
        store
            .get_delivery(DEFAULT_TENANT, &lost)
            .await
            .unwrap()
            .status,
        DeliveryStatus::InProgress
    );
    record(
        &store,
        attempt_result(
            &lost,
            "rescuer",
            1,
            Some(200),
            NextState::Delivered,
            expired + 6,
        ),
    )
    .await;
    assert_eq!(
        store
            .get_delivery(DEFAULT_TENANT, &lost)
            .await
            .unwrap()
            .status,
        DeliveryStatus::Delivered
    );
}

/// A dispatch key never gets more than its `max_in_flight`, counting what the worker already runs.
pub async fn per_key_limits(store: Shared) {
    let mut ep = endpoint(DEFAULT_TENANT, 1, &["*"]);
    ep.max_in_flight = 3;
    store.create_endpoint(&ep).await.unwrap();
    for i in 0..10 {
        publish(&store, "limited", BASE + i).await;
    }
    let now = BASE + 100;

    let first = store.claim_due(&claim_request("w", now, 50)).await.unwrap();
    assert_eq!(first.len(), 3);
    let key = first[0].dispatch_key.clone();
    assert!(first
        .iter()
        .all(|c| c.dispatch_key == key && c.max_in_flight == 3));

    let mut request = claim_request("w", now, 50);
    request.in_flight = HashMap::from([(key.clone(), 2)]);
    assert_eq!(store.claim_due(&request).await.unwrap().len(), 1);

    request.in_flight = HashMap::from([(key.clone(), 3)]);
    assert!(store.claim_due(&request).await.unwrap().is_empty());

    let mut request = claim_request("w", now, 50);
    request.saturated = vec![key.clone()];
    assert!(store.claim_due(&request).await.unwrap().is_empty());

    // An unrelated key in flight does not count against this one.
    let mut request = claim_request("w", now, 2);
    request.in_flight = HashMap::from([("some-other-key".to_string(), 50)]);
    assert_eq!(store.claim_due(&request).await.unwrap().len(), 2);
    // 10 - 3 - 1 - 2 = 4 still waiting.
    assert_eq!(claim(&store, "w", now).await.len(), 3);
    assert_eq!(claim(&store, "w", now).await.len(), 1);

    // Direct deliveries, without an endpoint, use the request's default limit.
    for i in 0..5 {
        store
            .create_direct_delivery(new_direct(
                DEFAULT_TENANT,
                "https://one-host.example.com/x",
                "{}",
                BASE + i,
            ))
            .await
            .unwrap();
    }
    let mut request = claim_request("w", now, 50);
    request.default_max_in_flight = 2;
    let direct = store.claim_due(&request).await.unwrap();
    assert_eq!(direct.len(), 2);
    assert!(direct
        .iter()
        .all(|c| c.endpoint_id.is_none() && c.max_in_flight == 2));
    assert_eq!(direct[0].dispatch_key, direct[1].dispatch_key);
    request.in_flight = HashMap::from([(direct[0].dispatch_key.clone(), 1)]);
    assert_eq!(store.claim_due(&request).await.unwrap().len(), 1);
    request.saturated = vec![direct[0].dispatch_key.clone()];
    assert!(store.claim_due(&request).await.unwrap().is_empty());

    // `limit` caps the batch.
    let mut request = claim_request("w", now, 1);
    request.default_max_in_flight = 100;
    assert_eq!(store.claim_due(&request).await.unwrap().len(), 1);
    request.limit = 0;
    assert!(store.claim_due(&request).await.unwrap().is_empty());
}

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

    // KNOWN SQLITE BUG (record_attempts inserts the attempt row before checking the lease owner): a result from
    // an owner that does not hold the lease must change nothing, including the attempt history.
    let before = store.get_delivery(DEFAULT_TENANT, &stolen).await.unwrap();
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
    assert_eq!(before.status, DeliveryStatus::InProgress);
    assert!(
        store
            .list_attempts(DEFAULT_TENANT, &stolen)
            .await
            .unwrap()
            .is_empty(),
        "a result from a lost lease must not add an attempt"
    );
    // ... and it stays claimable once the real lease expires.
    let rescued = claim(&store, "w3", now + LEASE_SPAN).await;
    assert_eq!(claimed_ids(&rescued), BTreeSet::from([stolen.clone()]));
    let result = attempt_result(
        &stolen,
        "w3",
        1,
        Some(201),
        NextState::Delivered,
        now + LEASE_SPAN + 9,
    );
    let real = result.attempt.clone();
    record(&store, result).await;
    assert_eq!(
        store.list_attempts(DEFAULT_TENANT, &stolen).await.unwrap(),
        vec![real]
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

/// Leases given back are claimable at once and the delivery keeps its waiting status.
pub async fn release_leases(store: Shared) {
    let ep = add_endpoint(&store, DEFAULT_TENANT, 1, &["*"]).await;
    let fresh = publish_to(&store, "r.a", BASE, &ep.id).await;
    let tried = publish_to(&store, "r.b", BASE + 1, &ep.id).await;
    let kept = publish_to(&store, "r.c", BASE + 2, &ep.id).await;
    assert_eq!(claim(&store, "w1", BASE + 10).await.len(), 3);
    record(
        &store,
        attempt_result(
            &tried,
            "w1",
            1,
            Some(500),
            NextState::RetryAt(BASE + 20),
            BASE + 15,
        ),
    )
    .await;
    assert_eq!(
        claimed_ids(&claim(&store, "w1", BASE + 20).await),
        BTreeSet::from([tried.clone()])
    );

    // Someone else's release changes nothing.
    store
        .release_leases("w2", &[fresh.clone(), tried.clone()], BASE + 30)
        .await
        .unwrap();
    assert!(claim(&store, "w2", BASE + 30).await.is_empty());

    store
        .release_leases("w1", &[fresh.clone(), tried.clone()], BASE + 40)
        .await
        .unwrap();
    let d = store.get_delivery(DEFAULT_TENANT, &fresh).await.unwrap();
    assert_eq!(
        (d.status, d.attempt_count, d.next_attempt_ms),
        (DeliveryStatus::Pending, 0, Some(BASE + 40))
    );
    let d = store.get_delivery(DEFAULT_TENANT, &tried).await.unwrap();
    assert_eq!(
        (d.status, d.attempt_count, d.next_attempt_ms),
        (DeliveryStatus::Retrying, 1, Some(BASE + 40))
    );
    assert_eq!(
        store
            .get_delivery(DEFAULT_TENANT, &kept)
            .await
            .unwrap()
            .status,
        DeliveryStatus::InProgress
    );

    let back = claim(&store, "w3", BASE + 40).await;
    assert_eq!(claimed_ids(&back), BTreeSet::from([fresh, tried.clone()]));
    let tried_claim = back.iter().find(|c| c.id == tried).unwrap();
    assert_eq!(tried_claim.attempt_count, 1);
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

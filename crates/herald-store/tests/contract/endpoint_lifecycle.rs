//! What endpoint operations do to deliveries: replays create them, deletion cancels them.

use herald_core::status::DeliveryStatus;
use herald_store::{DeliveryFilter, NextState, Page, DEFAULT_TENANT};

use super::*;

/// Replaying an endpoint re-sends the events since a time that match its filter, and only those.
pub async fn replay_endpoint(store: Shared) {
    store
        .create_tenant("other", &"g".repeat(64), BASE)
        .await
        .unwrap();
    let ep = add_endpoint(&store, DEFAULT_TENANT, 1, &["order.*"]).await;
    add_endpoint(&store, "other", 2, &["*"]).await;

    publish(&store, "order.created", BASE).await; // before `since`
    let (matching_a, _) = publish(&store, "order.created", BASE + 100).await; // exactly at `since`
    publish(&store, "invoice.paid", BASE + 200).await; // no match
    let (matching_b, _) = publish(&store, "order.paid", BASE + 300).await;
    store
        .publish(new_event("other", "order.created", "{}", BASE + 300))
        .await
        .unwrap(); // other tenant
    store
        .create_direct_delivery(new_direct(
            DEFAULT_TENANT,
            "https://d.example.com/",
            "{}",
            BASE + 400,
        ))
        .await
        .unwrap(); // direct deliveries are not events

    let now = BASE + 10_000;
    let before = store
        .count_deliveries(DEFAULT_TENANT, &DeliveryFilter::default())
        .await
        .unwrap();
    assert_eq!(
        store
            .replay_endpoint(DEFAULT_TENANT, &ep.id, BASE + 100, now)
            .await
            .unwrap(),
        2
    );
    let after = store
        .count_deliveries(DEFAULT_TENANT, &DeliveryFilter::default())
        .await
        .unwrap();
    assert_eq!(after, before + 2);

    let filter = DeliveryFilter {
        endpoint_id: Some(ep.id.clone()),
        status: Some(DeliveryStatus::Pending),
        ..Default::default()
    };
    let listed = store
        .list_deliveries(DEFAULT_TENANT, &filter, &Page::first(100))
        .await
        .unwrap();
    let fresh: Vec<_> = listed
        .items
        .iter()
        .filter(|d| d.created_ms == now)
        .collect();
    assert_eq!(fresh.len(), 2);
    let mut events: Vec<&str> = fresh.iter().map(|d| d.event_id.as_str()).collect();
    events.sort();
    let mut want = vec![matching_a.as_str(), matching_b.as_str()];
    want.sort();
    assert_eq!(events, want);
    for d in fresh {
        assert_eq!(
            d.next_attempt_ms,
            Some(now),
            "replayed deliveries are due now"
        );
        assert_eq!(d.attempt_count, 0);
        assert_eq!(d.url, ep.url);
    }

    assert_eq!(
        store
            .replay_endpoint(DEFAULT_TENANT, &ep.id, now + 1, now)
            .await
            .unwrap(),
        0
    );
    assert_not_found(store.replay_endpoint("other", &ep.id, BASE, now).await);
    assert_not_found(
        store
            .replay_endpoint(DEFAULT_TENANT, &endpoint_id(9), BASE, now)
            .await,
    );
}

/// Deleting an endpoint cancels its unfinished deliveries (any state), leaves finished ones alone and makes
/// late results from in-flight attempts harmless.
pub async fn delete_endpoint_cancels_deliveries(store: Shared) {
    let ep = add_endpoint(&store, DEFAULT_TENANT, 1, &["*"]).await;
    let keep = add_endpoint(&store, DEFAULT_TENANT, 2, &["*"]).await;
    let delivered = publish_to(&store, "a.b", BASE, &ep.id).await;
    let retrying = publish_to(&store, "a.b", BASE + 1, &ep.id).await;
    let in_flight = publish_to(&store, "a.b", BASE + 2, &ep.id).await;
    let claimed = claim(&store, "w1", BASE + 10).await;
    assert_eq!(claimed.len(), 6);
    record(
        &store,
        attempt_result(
            &delivered,
            "w1",
            1,
            Some(200),
            NextState::Delivered,
            BASE + 20,
        ),
    )
    .await;
    record(
        &store,
        attempt_result(
            &retrying,
            "w1",
            1,
            Some(503),
            NextState::RetryAt(BASE + 60_000),
            BASE + 20,
        ),
    )
    .await;
    let pending = publish_to(&store, "a.b", BASE + 30, &ep.id).await;

    store
        .delete_endpoint(DEFAULT_TENANT, &ep.id, BASE + 100)
        .await
        .unwrap();
    assert_not_found(store.get_endpoint(DEFAULT_TENANT, &ep.id).await);
    for id in [&retrying, &in_flight, &pending] {
        let d = store.get_delivery(DEFAULT_TENANT, id).await.unwrap();
        assert_eq!(d.status, DeliveryStatus::Cancelled, "{id}");
        assert_eq!(d.last_error.as_deref(), Some("endpoint deleted"), "{id}");
        assert_eq!(d.next_attempt_ms, None);
        assert_eq!(d.updated_ms, BASE + 100);
    }
    let d = store
        .get_delivery(DEFAULT_TENANT, &delivered)
        .await
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Delivered);
    assert_eq!(d.last_error, None);

    // The in-flight attempt's result arrives late: the delivery stays cancelled.
    record(
        &store,
        attempt_result(
            &in_flight,
            "w1",
            1,
            Some(200),
            NextState::Delivered,
            BASE + 200,
        ),
    )
    .await;
    let d = store
        .get_delivery(DEFAULT_TENANT, &in_flight)
        .await
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Cancelled);
    assert_eq!(d.attempt_count, 0);

    // Nothing of the deleted endpoint is claimable; the other endpoint's deliveries are untouched.
    let later = claim(&store, "w2", BASE + 1_000_000).await;
    assert!(
        later
            .iter()
            .all(|c| c.endpoint_id.as_deref() == Some(keep.id.as_str())),
        "{later:?}"
    );
    let kept = store
        .count_deliveries(
            DEFAULT_TENANT,
            &DeliveryFilter {
                endpoint_id: Some(keep.id.clone()),
                status: Some(DeliveryStatus::Cancelled),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(kept, 0);
}

/// Disabling an endpoint parks its queued deliveries (not claimable, nothing lost); enabling it makes them
/// due again.
pub async fn disabled_endpoint_parks_deliveries(store: Shared) {
    let mut ep = add_endpoint(&store, DEFAULT_TENANT, 1, &["*"]).await;
    let id = publish_to(&store, "a.b", BASE, &ep.id).await;
    ep.disabled = true;
    ep.updated_ms = BASE + 1;
    store.update_endpoint(&ep).await.unwrap();
    assert!(
        claim(&store, "w1", BASE + 10).await.is_empty(),
        "nothing is sent to a disabled endpoint"
    );
    let parked = store.get_delivery(DEFAULT_TENANT, &id).await.unwrap();
    assert_eq!(parked.status, herald_core::status::DeliveryStatus::Pending);
    assert_eq!(parked.next_attempt_ms, None);
    assert_eq!(store.next_due_ms().await.unwrap(), None);

    ep.disabled = false;
    ep.updated_ms = BASE + 20;
    store.update_endpoint(&ep).await.unwrap();
    assert_eq!(
        store
            .get_delivery(DEFAULT_TENANT, &id)
            .await
            .unwrap()
            .next_attempt_ms,
        Some(BASE + 20)
    );
    let claimed = claim(&store, "w1", BASE + 20).await;
    assert_eq!(claimed_ids(&claimed), [id].into_iter().collect());
}

/// Recovering an endpoint retries its failed deliveries created since a time, each with a fresh cycle;
/// others are left alone, and another tenant cannot do it.
pub async fn recover_endpoint_retries_failed_deliveries(store: Shared) {
    let ep = add_endpoint(&store, DEFAULT_TENANT, 1, &["*"]).await;
    for t in [0, 10, 20] {
        publish(&store, "x", BASE + t).await;
    }
    let now = BASE + 100;
    let claimed = claim(&store, "w1", now).await;
    assert_eq!(claimed.len(), 3);
    let results = claimed
        .iter()
        .map(|d| attempt_result(&d.id, "w1", 1, Some(410), NextState::Failed, now))
        .collect();
    store.record_attempts(results).await.unwrap();

    assert_not_found(store.recover_endpoint("other", &ep.id, BASE, now).await);
    assert_not_found(
        store
            .recover_endpoint(DEFAULT_TENANT, &endpoint_id(9), BASE, now)
            .await,
    );
    let later = now + 1_000;
    assert_eq!(
        store
            .recover_endpoint(DEFAULT_TENANT, &ep.id, BASE + 10, later)
            .await
            .unwrap(),
        2
    );
    let again = claim(&store, "w2", later).await;
    assert_eq!(again.len(), 2);
    assert!(again
        .iter()
        .all(|d| d.cycle_started_ms == later && d.cycle_base == 1));
    let failed = DeliveryFilter {
        status: Some(DeliveryStatus::Failed),
        ..DeliveryFilter::default()
    };
    assert_eq!(
        ids_matching(&store, DEFAULT_TENANT, failed).await.len(),
        1,
        "the older one stays failed"
    );
    assert_eq!(
        store
            .recover_endpoint(DEFAULT_TENANT, &ep.id, BASE + 10, later)
            .await
            .unwrap(),
        0
    );
}

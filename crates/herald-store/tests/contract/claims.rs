//! Leases: exclusive claims, expiry, per-key in-flight limits and giving leases back.

use std::collections::{BTreeSet, HashMap};

use herald_core::status::DeliveryStatus;
use herald_store::{NextState, DEFAULT_TENANT};

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
                claimed(&store, &request).await
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

/// A dispatch key never has more than the lease window times its `max_in_flight` unexpired leases, whoever
/// holds them.
pub async fn per_key_limits(store: Shared) {
    let window = WINDOW as usize;
    let mut ep = endpoint(DEFAULT_TENANT, 1, &["*"]);
    ep.max_in_flight = 3;
    store.create_endpoint(&ep).await.unwrap();
    for i in 0..10 {
        publish(&store, "limited", BASE + i).await;
    }
    let now = BASE + 100;

    let first = claimed(&store, &claim_request("w1", now, 50)).await;
    assert_eq!(first.len(), 3 * window);
    let key = first[0].dispatch_key.clone();
    assert!(first
        .iter()
        .all(|c| c.dispatch_key == key && c.max_in_flight == 3));
    // The leases count for every node, not just the one holding them.
    assert!(claimed(&store, &claim_request("w2", now, 50))
        .await
        .is_empty());
    assert!(claimed(&store, &claim_request("w1", now, 50))
        .await
        .is_empty());

    // One result recorded frees one lease, for the node that holds the rest: another node, whose peers
    // hold the key's whole limit, could not send it.
    record(
        &store,
        attempt_result(
            &first[0].id,
            "w1",
            1,
            Some(200),
            NextState::Delivered,
            now + 1,
        ),
    )
    .await;
    assert!(claimed(&store, &claim_request("w2", now + 2, 50))
        .await
        .is_empty());
    let second = claimed(&store, &claim_request("w1", now + 2, 50)).await;
    assert_eq!(second.len(), 1);

    // Expired leases no longer count: their deliveries and the free slots are claimable again.
    let later = now + 2 + LEASE_SPAN + 1;
    let third = claimed(&store, &claim_request("w3", later, 50)).await;
    assert_eq!(third.len(), 9.min(3 * window));

    // Direct deliveries, without an endpoint, use the request's default limit, per host.
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
    let mut request = claim_request("w", later, 50);
    request.default_max_in_flight = 2;
    let direct = claimed(&store, &request).await;
    assert_eq!(direct.len(), 5.min(2 * window));
    assert!(direct
        .iter()
        .all(|c| c.endpoint_id.is_none() && c.max_in_flight == 2));
    assert!(direct
        .iter()
        .all(|c| c.dispatch_key == direct[0].dispatch_key));
    assert!(claimed(&store, &request).await.is_empty());

    // `limit` caps the batch.
    let mut request = claim_request("w", later, 1);
    request.default_max_in_flight = 100;
    assert_eq!(claimed(&store, &request).await.len(), 1);
    request.limit = 0;
    assert!(claimed(&store, &request).await.is_empty());
}

/// A key the request names as narrow is leased only what can be sent at once.
pub async fn narrow_keys_get_no_lease_window(store: Shared) {
    let mut ep = endpoint(DEFAULT_TENANT, 1, &["*"]);
    ep.max_in_flight = 3;
    store.create_endpoint(&ep).await.unwrap();
    for i in 0..20 {
        publish(&store, "narrow", BASE + i).await;
    }
    let mut request = claim_request("w1", BASE + 100, 50);
    request.narrow_keys = std::sync::Arc::new([ep.id.clone()].into());
    assert_eq!(claimed(&store, &request).await.len(), 3);
    assert!(claimed(&store, &request).await.is_empty());
    request.narrow_keys = Default::default();
    assert_eq!(
        claimed(&store, &request).await.len(),
        3 * WINDOW as usize - 3
    );
}

/// A claim leases ahead of what its keys can send at once no more than `most_ahead`: the room its node
/// has for leases waiting their turn.
pub async fn leases_ahead_stop_at_most_ahead(store: Shared) {
    let mut ep = endpoint(DEFAULT_TENANT, 1, &["*"]);
    ep.max_in_flight = 3;
    store.create_endpoint(&ep).await.unwrap();
    for i in 0..20 {
        publish(&store, "ahead", BASE + i).await;
    }
    let mut request = claim_request("w1", BASE + 100, 50);
    request.lease_window = 4;
    request.most_ahead = 2;
    assert_eq!(claimed(&store, &request).await.len(), 3 + 2);
    request.most_ahead = 0;
    assert!(claimed(&store, &request).await.is_empty());
    request.most_ahead = 100;
    assert_eq!(claimed(&store, &request).await.len(), 4 * 3 - 5);
}

/// Keys are leased ahead of what they can send only with slots no key could use now: a claim that the
/// keys' free requests can fill takes no more of any key than it can send.
pub async fn keys_lease_ahead_only_with_idle_slots(store: Shared) {
    for n in 1..=3 {
        let mut ep = endpoint(DEFAULT_TENANT, n, &["*"]);
        ep.max_in_flight = 2;
        store.create_endpoint(&ep).await.unwrap();
    }
    for i in 0..10 {
        publish(&store, "spread", BASE + i).await;
    }
    let now = BASE + 100;
    let per_key = |claimed: &[ClaimedDelivery]| {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for c in claimed {
            *counts.entry(c.dispatch_key.clone()).or_default() += 1;
        }
        counts.into_values().collect::<Vec<_>>()
    };
    // Three keys can send 6 at once: a claim of 5 takes at most 2 of each.
    let mut request = claim_request("w1.1", now, 5);
    request.node = "w1".into();
    let first = claimed(&store, &request).await;
    assert_eq!(first.len(), 5);
    assert!(
        per_key(&first).iter().all(|n| *n <= 2),
        "{:?}",
        per_key(&first)
    );
    // With every key sending what it may, more slots than that are idle: they lease ahead, up to the
    // window.
    let mut again = claim_request("w1.2", now, 50);
    again.node = "w1".into();
    let second = claimed(&store, &again).await;
    assert_eq!(first.len() + second.len(), 3 * 2 * WINDOW as usize);
}

/// A claim reports the leases other nodes hold on the keys it looked at, and leases no more than the
/// node could send with the rest of the limit: its own claims (`<node>.<n>`) are not its peers'.
pub async fn peer_leases_shrink_a_nodes_share(store: Shared) {
    let window = WINDOW;
    let mut ep = endpoint(DEFAULT_TENANT, 1, &["*"]);
    ep.max_in_flight = 4;
    store.create_endpoint(&ep).await.unwrap();
    for i in 0..40 {
        publish(&store, "shared", BASE + i).await;
    }
    let now = BASE + 100;
    let mut a = claim_request("a.1", now, 3);
    a.node = "a".into();
    let a_first = store.claim_due(&a).await.unwrap();
    assert_eq!(a_first.deliveries.len(), 3);
    assert!(a_first.peer_leases.is_empty(), "nobody else holds leases");

    // Node b may send 4 - 3 = 1 at a time, and holds a window of that.
    let mut b = claim_request("b.1", now, 50);
    b.node = "b".into();
    let b_claim = store.claim_due(&b).await.unwrap();
    assert_eq!(b_claim.deliveries.len(), window as usize);
    let key = b_claim.deliveries[0].dispatch_key.clone();
    assert_eq!(b_claim.peer_leases.get(&key), Some(&3));

    // Node a, under another claim id of its own, counts b's leases as its peers' and its own as not.
    let mut a_again = claim_request("a.2", now, 50);
    a_again.node = "a".into();
    let a_second = store.claim_due(&a_again).await.unwrap();
    assert_eq!(a_second.peer_leases.get(&key), Some(&window));
    let a_room = if window >= 4 {
        0
    } else {
        (4 * window).saturating_sub(3 + window + (window - 1) * window)
    };
    assert_eq!(a_second.deliveries.len() as u32, a_room);
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

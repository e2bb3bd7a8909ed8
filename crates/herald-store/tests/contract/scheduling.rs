//! Dispatch keys as the unit of scheduling: round robin across keys, the resumable walk, and refilling
//! freed slots in the commit that records results.

use std::collections::{BTreeSet, HashMap};

use herald_core::status::DeliveryStatus;
use herald_store::{NextState, DEFAULT_TENANT};

use super::*;

/// A key with a deep, older backlog does not delay another key's newer work: a claim too small for both
/// serves them in turns, and the next claim resumes after the last key it served.
pub async fn claims_interleave_keys(store: Shared) {
    let mut busy = endpoint(DEFAULT_TENANT, 1, &["busy"]);
    busy.max_in_flight = 1_000;
    let mut quiet = endpoint(DEFAULT_TENANT, 2, &["quiet"]);
    quiet.max_in_flight = 1_000;
    store.create_endpoint(&busy).await.unwrap();
    store.create_endpoint(&quiet).await.unwrap();
    for i in 0..300 {
        publish(&store, "busy", BASE + i).await;
    }
    let late = publish_to(&store, "quiet", BASE + 1_000, &quiet.id).await;

    let now = BASE + 2_000;
    let first = store
        .claim_due(&claim_request("w1", now, 10))
        .await
        .unwrap();
    assert_eq!(first.deliveries.len(), 10);
    assert!(
        first.deliveries.iter().any(|d| d.id == late),
        "the quiet key's delivery waits behind the busy key's backlog"
    );
    assert!(first.more, "the busy key still has due work");
    let per_key = first.deliveries.iter().fold(HashMap::new(), |mut m, d| {
        *m.entry(d.dispatch_key.clone()).or_insert(0) += 1;
        m
    });
    assert_eq!(per_key.get(&busy.id), Some(&9));
    // The busy key's rows come oldest first.
    let busy_created: Vec<i64> = first
        .deliveries
        .iter()
        .filter(|d| d.dispatch_key == busy.id)
        .map(|d| d.cycle_started_ms)
        .collect();
    assert!(busy_created.windows(2).all(|w| w[0] <= w[1]));

    // Resuming from the cursor keeps draining the backlog.
    let mut request = claim_request("w2", now, 50);
    request.after_key = first.next_key.clone();
    let second = store.claim_due(&request).await.unwrap();
    assert_eq!(second.deliveries.len(), 50);
    assert!(second.deliveries.iter().all(|d| d.dispatch_key == busy.id));
}

/// A claim visits at most [`herald_store::claiming::WALK`] keys; it says so, and the next claim, resumed at
/// its cursor, reaches the keys it did not visit. Nothing is claimed twice.
pub async fn the_walk_resumes_where_it_stopped(store: Shared) {
    let keys = herald_store::claiming::WALK + 40;
    for n in 0..keys as u64 {
        let mut ep = endpoint(DEFAULT_TENANT, n + 1, &["wide"]);
        ep.max_in_flight = 2;
        store.create_endpoint(&ep).await.unwrap();
    }
    let (_, ids) = publish(&store, "wide", BASE).await;
    let (_, more_ids) = publish(&store, "wide", BASE + 1).await;
    let all: BTreeSet<String> = ids.into_iter().chain(more_ids).collect();
    assert_eq!(all.len(), keys * 2);

    let now = BASE + 10;
    let first = store
        .claim_due(&claim_request("w1", now, 10_000))
        .await
        .unwrap();
    assert_eq!(first.deliveries.len(), herald_store::claiming::WALK * 2);
    assert!(first.more, "keys were left unvisited");
    let mut request = claim_request("w2", now, 10_000);
    request.after_key = first.next_key.clone();
    let second = store.claim_due(&request).await.unwrap();
    assert_eq!(second.deliveries.len(), 40 * 2);
    let claimed: BTreeSet<String> = first
        .deliveries
        .iter()
        .chain(&second.deliveries)
        .map(|d| d.id.clone())
        .collect();
    assert_eq!(claimed, all);
    // Every key is at its limit now.
    request.after_key = second.next_key.clone();
    assert!(store
        .claim_due(&request)
        .await
        .unwrap()
        .deliveries
        .is_empty());
}

/// Recording results and claiming happen in one commit: the slot a result frees is leased again at once,
/// and the limit counts the recorded lease as gone.
pub async fn record_and_claim_refills_freed_slots(store: Shared) {
    let mut ep = endpoint(DEFAULT_TENANT, 1, &["*"]);
    ep.max_in_flight = 2;
    store.create_endpoint(&ep).await.unwrap();
    for i in 0..8 {
        publish(&store, "refill", BASE + i).await;
    }
    let now = BASE + 100;
    let first = store
        .claim_due(&claim_request("w1", now, 50))
        .await
        .unwrap();
    let window = 2 * WINDOW as usize;
    assert_eq!(first.deliveries.len(), window);
    let done = &first.deliveries[0];
    let result = attempt_result(&done.id, "w1", 1, Some(204), NextState::Delivered, now + 1);
    let (claimed, refill) = tokio::sync::oneshot::channel();
    store
        .record_and_claim(vec![result], &claim_request("w1", now + 2, 50), claimed)
        .await
        .unwrap();
    let refill = refill.await.expect("the claim is handed over");
    assert_eq!(refill.deliveries.len(), 1, "exactly the freed slot");
    assert!(first
        .deliveries
        .iter()
        .all(|d| d.id != refill.deliveries[0].id));
    let recorded = store.get_delivery(DEFAULT_TENANT, &done.id).await.unwrap();
    assert_eq!(recorded.status, DeliveryStatus::Delivered);
    let leased = store
        .get_delivery(DEFAULT_TENANT, &refill.deliveries[0].id)
        .await
        .unwrap();
    assert_eq!(leased.status, DeliveryStatus::InProgress);
    // The window is full again.
    assert!(claim(&store, "w1", now + 3).await.is_empty());
}

/// A paced endpoint is leased only what its rate allows now, whoever claims: the pacing time is stored, so
/// two claimers (two nodes) share one rate, and no lease waits for its turn.
pub async fn paced_keys_are_claimed_at_their_rate(store: Shared) {
    let mut paced = endpoint(DEFAULT_TENANT, 1, &["p.*"]);
    paced.rate_limit_per_s = Some(2);
    store.create_endpoint(&paced).await.unwrap();
    let free = add_endpoint(&store, DEFAULT_TENANT, 2, &["f.*"]).await;
    for n in 0..10 {
        publish(&store, "p.a", BASE + n).await;
        publish(&store, "f.a", BASE + n).await;
    }
    let now = BASE + 100;
    let first = claim(&store, "w1", now).await;
    let count = |claimed: &[ClaimedDelivery], key: &str| {
        claimed.iter().filter(|d| d.dispatch_key == key).count()
    };
    assert_eq!(count(&first, &paced.id), 2, "one second's worth");
    assert_eq!(
        count(&first, &free.id),
        10,
        "an unpaced endpoint is not held back"
    );
    assert!(
        claim(&store, "w2", now).await.is_empty(),
        "another claimer gets nothing: the rate is stored"
    );
    assert!(claim(&store, "w2", now + 499).await.is_empty());
    assert_eq!(count(&claim(&store, "w2", now + 500).await, &paced.id), 1);
    // Idle time is not saved up beyond a second's worth.
    assert_eq!(
        count(&claim(&store, "w3", now + 60_000).await, &paced.id),
        2
    );
}

/// A hinted key is visited in a claim's first step however many keys with work that is not due (retries
/// waiting out an outage) come before it, without moving where the round robin resumes; a hinted key
/// the walk reaches too is served once. A claim stops walking such keys once nothing else is due.
pub async fn hinted_keys_are_visited_beyond_the_walk(store: Shared) {
    let waiting = herald_store::claiming::WALK + 40;
    let early = add_endpoint(&store, DEFAULT_TENANT, 0, &["early"]).await;
    for n in 1..=waiting as u64 {
        add_endpoint(&store, DEFAULT_TENANT, n, &["outage"]).await;
    }
    let late = add_endpoint(&store, DEFAULT_TENANT, 100_000, &["late"]).await;
    publish(&store, "outage", BASE).await;
    // Every waiting key's delivery is attempted once and retries in an hour.
    let mut request = claim_request("w0", BASE + 1, 10_000);
    let mut results = Vec::new();
    loop {
        let claim = store.claim_due(&request).await.unwrap();
        if claim.deliveries.is_empty() {
            break;
        }
        results.extend(claim.deliveries.iter().map(|d| {
            let retry = NextState::RetryAt(BASE + 3_600_000);
            attempt_result(&d.id, "w0", 1, Some(503), retry, BASE + 2)
        }));
        request.after_key = claim.next_key;
    }
    assert_eq!(results.len(), waiting);
    store.record_attempts(results).await.unwrap();

    let now = BASE + 10;
    let idle = store
        .claim_due(&claim_request("w1", now, 100))
        .await
        .unwrap();
    assert!(idle.deliveries.is_empty());
    assert!(
        !idle.more,
        "nothing is due, yet the claim says it stopped short"
    );
    let live = publish_to(&store, "late", now, &late.id).await;
    let unhinted = store
        .claim_due(&claim_request("w1", now, 100))
        .await
        .unwrap();
    assert!(
        unhinted.deliveries.is_empty(),
        "the walk alone should stop short of the live key"
    );
    let mut hinted = claim_request("w1", now, 100);
    hinted.hinted_keys = vec![late.id.clone()];
    let claim = store.claim_due(&hinted).await.unwrap();
    assert_eq!(claimed_ids(&claim.deliveries), BTreeSet::from([live]));
    assert!(unhinted.more, "the walk stopped short of a due delivery");
    assert_ne!(claim.next_key, late.id, "a hinted key moved the cursor");
    assert!(!claim.more, "nothing else is due");

    // A hinted key that the walk's first step reads too is served once, all its due rows.
    let mut ids = BTreeSet::new();
    for i in 0..3 {
        ids.insert(publish_to(&store, "early", now + i, &early.id).await);
    }
    let mut both = claim_request("w2", now + 5, 100);
    both.hinted_keys = vec![early.id.clone(), early.id.clone()];
    let claim = store.claim_due(&both).await.unwrap();
    assert_eq!(claim.deliveries.len(), 3);
    assert_eq!(claimed_ids(&claim.deliveries), ids);
}

//! Circuit breakers kept per dispatch key: a run of failures opens one, claims skip its endpoint while it
//! is open, one probe goes once the cooldown is over, and the breaker's moves publish operational events.

use herald_core::breaker::{BreakerPolicy, CircuitState};
use herald_store::{DeliveryFilter, EventKind, NextState, DEFAULT_TENANT};

use super::*;

const POLICY: BreakerPolicy = BreakerPolicy {
    failures: 3,
    cooldown_ms: 1_000,
    max_cooldown_ms: 4_000,
};

/// A failing endpoint (1) with a backlog, another endpoint (2) that stays healthy, and an endpoint (3)
/// subscribed to the operational events.
async fn setup(store: &Shared, backlog: i64) -> (String, String, String) {
    let failing = add_endpoint(store, DEFAULT_TENANT, 1, &["order.*"]).await;
    let healthy = add_endpoint(store, DEFAULT_TENANT, 2, &["order.*"]).await;
    let watcher = add_endpoint(store, DEFAULT_TENANT, 3, &["endpoint.*"]).await;
    for i in 0..backlog {
        publish(store, "order.created", BASE + i).await;
    }
    (failing.id, healthy.id, watcher.id)
}

/// The events delivered to `endpoint_id`, as (event type, payload, kind).
async fn events_for(
    store: &Shared,
    endpoint_id: &str,
) -> Vec<(String, serde_json::Value, EventKind)> {
    let filter = DeliveryFilter {
        endpoint_id: Some(endpoint_id.to_string()),
        ..DeliveryFilter::default()
    };
    let mut out = Vec::new();
    for id in ids_matching(store, DEFAULT_TENANT, filter)
        .await
        .into_iter()
        .rev()
    {
        let d = store.get_delivery(DEFAULT_TENANT, &id).await.unwrap();
        let e = store.get_event(DEFAULT_TENANT, &d.event_id).await.unwrap();
        out.push((
            e.event_type,
            serde_json::from_str(&e.payload).unwrap(),
            e.kind,
        ));
    }
    out
}

async fn circuit(store: &Shared, endpoint_id: &str) -> Option<herald_core::breaker::BreakerHealth> {
    store
        .endpoint_circuits(DEFAULT_TENANT, &[endpoint_id.to_string()])
        .await
        .unwrap()
        .pop()
        .map(|c| c.health)
}

/// Fail every claimed delivery to `endpoint_id` with a 503 at `now`; returns how many were recorded.
async fn fail_all(
    store: &Shared,
    claimed: &[ClaimedDelivery],
    owner: &str,
    endpoint_id: &str,
    now: i64,
) -> usize {
    let results: Vec<_> = claimed
        .iter()
        .filter(|d| d.dispatch_key == endpoint_id)
        .map(|d| counted_result(d, owner, Some(503), NextState::RetryAt(now), now, POLICY))
        .collect();
    let n = results.len();
    store.record_attempts(results).await.unwrap();
    n
}

pub async fn a_run_of_failures_opens_the_breaker_and_stops_claims(store: Shared) {
    let (failing, healthy, watcher) = setup(&store, 3).await;
    let now = BASE + 100;
    let first = claim(&store, "w1", now).await;
    assert_eq!(fail_all(&store, &first, "w1", &failing, now).await, 3);
    let h = circuit(&store, &failing).await.expect("a stored breaker");
    assert_eq!(h.state(now), CircuitState::Open);
    assert_eq!(h.failures, 3);
    assert_eq!(h.probe_ms, Some(now + 1_000));
    assert_eq!(h.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(
        store.circuit_counts(now).await.unwrap(),
        herald_store::CircuitCounts {
            open: 1,
            half_open: 0
        }
    );
    assert_eq!(circuit(&store, &healthy).await, None, "no failure, no row");
    // Another tenant cannot read it.
    store
        .create_tenant("other", "hash-other", BASE)
        .await
        .unwrap();
    assert!(store
        .endpoint_circuits("other", &[failing.clone()])
        .await
        .unwrap()
        .is_empty());

    // The failing endpoint's retries are due, but no claim takes them while the breaker is open.
    let during = claim(&store, "w2", now + 500).await;
    assert!(
        during.iter().all(|d| d.dispatch_key != failing),
        "{during:?}"
    );
    // `endpoint.failing` was published into the tenant, as an operational event, naming the endpoint.
    let told = events_for(&store, &watcher).await;
    assert_eq!(told.len(), 1, "{told:?}");
    let (event_type, data, kind) = &told[0];
    assert_eq!(event_type, "endpoint.failing");
    assert_eq!(*kind, EventKind::Operational);
    assert_eq!(data["endpoint_id"], failing.as_str());
    assert_eq!(data["url"], "https://hooks1.example.com/in");
    assert_eq!(data["consecutive_failures"], 3);
    assert_eq!(data["last_error"], "HTTP 503");
    let op = during
        .iter()
        .find(|d| d.dispatch_key == watcher)
        .expect("the operational event is claimable");
    assert!(op.operational);
    assert!(first.iter().all(|d| !d.operational));
}

pub async fn a_half_open_breaker_sends_one_probe(store: Shared) {
    let (failing, _healthy, watcher) = setup(&store, 5).await;
    let now = BASE + 100;
    let first = claim(&store, "w1", now).await;
    assert_eq!(fail_all(&store, &first, "w1", &failing, now).await, 5);
    let h = circuit(&store, &failing).await.unwrap();
    assert_eq!(h.failures, 5);

    // After the cooldown: one probe, however many are due.
    let probe_time = now + 1_000;
    assert_eq!(store.circuit_counts(probe_time).await.unwrap().half_open, 1);
    let probe = claim(&store, "w2", probe_time).await;
    let probes: Vec<_> = probe.iter().filter(|d| d.dispatch_key == failing).collect();
    assert_eq!(probes.len(), 1, "{probe:?}");
    assert!(claim(&store, "w3", probe_time + 1)
        .await
        .iter()
        .all(|d| d.dispatch_key != failing));

    // The probe fails: open again, with twice the cooldown, and no second `endpoint.failing`.
    let failed_at = probe_time + 50;
    fail_all(&store, &[probes[0].clone()], "w2", &failing, failed_at).await;
    let h = circuit(&store, &failing).await.unwrap();
    assert_eq!(h.state(failed_at), CircuitState::Open);
    assert_eq!(h.probe_ms, Some(failed_at + 2_000));
    assert!(claim(&store, "w4", failed_at + 1_999)
        .await
        .iter()
        .all(|d| d.dispatch_key != failing));

    // The next probe succeeds: closed, the backlog flows at the endpoint's limit, and `endpoint.recovered`.
    let healed_at = failed_at + 2_000;
    let probe = claim(&store, "w5", healed_at).await;
    let probe: Vec<_> = probe
        .into_iter()
        .filter(|d| d.dispatch_key == failing)
        .collect();
    assert_eq!(probe.len(), 1);
    store
        .record_attempts(vec![counted_result(
            &probe[0],
            "w5",
            Some(204),
            NextState::Delivered,
            healed_at,
            POLICY,
        )])
        .await
        .unwrap();
    let h = circuit(&store, &failing).await.unwrap();
    assert_eq!(h.state(healed_at), CircuitState::Closed);
    assert_eq!(h.failures, 0);
    let rest = claim(&store, "w6", healed_at + 1).await;
    assert_eq!(rest.iter().filter(|d| d.dispatch_key == failing).count(), 4);
    let told: Vec<String> = events_for(&store, &watcher)
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(told, ["endpoint.failing", "endpoint.recovered"]);
    assert_eq!(
        store.circuit_counts(healed_at).await.unwrap(),
        Default::default()
    );

    // Deleting the endpoint forgets its breaker.
    store
        .delete_endpoint(DEFAULT_TENANT, &failing, healed_at)
        .await
        .unwrap();
    assert_eq!(circuit(&store, &failing).await, None);
}

/// After a failed commit the engine writes its results again: the second write moves no delivery, so it
/// counts nothing.
pub async fn results_written_twice_count_once(store: Shared) {
    let (failing, _healthy, _watcher) = setup(&store, 2).await;
    let now = BASE + 100;
    let first = claim(&store, "w1", now).await;
    let results: Vec<_> = first
        .iter()
        .filter(|d| d.dispatch_key == failing)
        .map(|d| counted_result(d, "w1", None, NextState::RetryAt(now + 10), now, POLICY))
        .collect();
    store.record_attempts(results.clone()).await.unwrap();
    store.record_attempts(results).await.unwrap();
    let h = circuit(&store, &failing).await.unwrap();
    assert_eq!(h.failures, 2);
    assert_eq!(h.state(now), CircuitState::Closed);
    assert_eq!(h.last_error.as_deref(), Some("timeout"));
}

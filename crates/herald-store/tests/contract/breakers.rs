//! Circuit breakers kept per dispatch key: a run of failures opens one, claims skip its endpoint while it
//! is open, one probe goes once the cooldown is over, and the breaker's moves publish operational events.

use herald_core::breaker::{BreakerPolicy, CircuitState, HealthPolicy};
use std::collections::BTreeSet;

use herald_store::{DeliveryFilter, EventKind, NextState, DEFAULT_TENANT};

use super::*;

const POLICY: HealthPolicy = HealthPolicy {
    breaker: BreakerPolicy {
        failures: 3,
        cooldown_ms: 1_000,
        max_cooldown_ms: 4_000,
    },
    degraded_rate: 2.0,
    window_ms: 60_000,
    min_attempts: 10,
    disable_after_ms: 0,
};

/// A failing endpoint (1) with a backlog, another endpoint (2) that stays healthy, and an endpoint (3)
/// subscribed to the operational events.
async fn setup(store: &Shared, backlog: i64) -> (String, String, String) {
    let failing = add_endpoint(store, DEFAULT_TENANT, 1, &["order.*"]).await;
    let healthy = add_endpoint(store, DEFAULT_TENANT, 2, &["order.*"]).await;
    let watcher = add_endpoint(store, DEFAULT_TENANT, 3, &["endpoint.*", "delivery.*"]).await;
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
    let everything = add_endpoint(&store, DEFAULT_TENANT, 4, &["*"]).await;
    let now = BASE + 100;
    let first = claim(&store, "w1", now).await;
    assert_eq!(fail_all(&store, &first, "w1", &failing, now).await, 3);
    assert!(
        events_for(&store, &everything.id).await.is_empty(),
        "`*` means the tenant's own events, not Herald's alerts"
    );
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
        .endpoint_circuits("other", std::slice::from_ref(&failing))
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

/// `delivery.failed` for a delivery that entered the dead-letter set, and `endpoint.degraded` once the
/// failure rate over the window passes the policy's, both naming the endpoint.
pub async fn dead_letters_and_a_degraded_endpoint_are_announced(store: Shared) {
    let policy = HealthPolicy {
        degraded_rate: 0.10,
        min_attempts: 4,
        ..POLICY
    };
    let (endpoint, _healthy, watcher) = setup(&store, 4).await;
    let now = BASE + 100;
    let claimed: Vec<_> = claim(&store, "w1", now)
        .await
        .into_iter()
        .filter(|d| d.dispatch_key == endpoint)
        .collect();
    assert_eq!(claimed.len(), 4);
    let mut results: Vec<_> = claimed[..3]
        .iter()
        .map(|d| counted_result(d, "w1", Some(200), NextState::Delivered, now, policy))
        .collect();
    results.push(counted_result(
        &claimed[3],
        "w1",
        Some(410),
        NextState::Failed,
        now,
        policy,
    ));
    store.record_attempts(results).await.unwrap();

    let told = events_for(&store, &watcher).await;
    let types: BTreeSet<&str> = told.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        types,
        BTreeSet::from(["delivery.failed", "endpoint.degraded"]),
        "{told:?}"
    );
    let failed = &told.iter().find(|e| e.0 == "delivery.failed").unwrap().1;
    assert_eq!(failed["delivery_id"], claimed[3].id.as_str());
    assert_eq!(failed["endpoint_id"], endpoint.as_str());
    assert_eq!(failed["event_id"], claimed[3].event_id.as_str());
    assert_eq!(failed["event_type"], "order.created");
    assert_eq!(failed["last_status_code"], 410);
    assert_eq!(failed["attempts"], 1);
    let degraded = &told.iter().find(|e| e.0 == "endpoint.degraded").unwrap().1;
    assert_eq!(degraded["endpoint_id"], endpoint.as_str());
    assert_eq!(degraded["failure_rate"], 0.25);
    assert_eq!(degraded["attempts"], 4);
    assert!(told.iter().all(|e| e.2 == EventKind::Operational));
    let h = circuit(&store, &endpoint).await.unwrap();
    assert!(h.degraded);
    assert_eq!(
        h.state(now),
        CircuitState::Closed,
        "a 410 is not a breaker failure"
    );
}

/// An endpoint whose breaker stays open for the policy's time is disabled (`endpoint.disabled`); enabling
/// it again starts its health afresh.
pub async fn an_endpoint_failing_too_long_is_disabled_until_enabled(store: Shared) {
    let policy = HealthPolicy {
        disable_after_ms: 5_000,
        ..POLICY
    };
    let (endpoint, _healthy, watcher) = setup(&store, 3).await;
    let mut now = BASE + 100;
    let first = claim(&store, "w1", now).await;
    let results: Vec<_> = first
        .iter()
        .filter(|d| d.dispatch_key == endpoint)
        .map(|d| counted_result(d, "w1", None, NextState::RetryAt(now), now, policy))
        .collect();
    store.record_attempts(results).await.unwrap();
    // Probes keep failing until the endpoint has failed for 5 s.
    for round in 0..10 {
        let Some(h) = circuit(&store, &endpoint).await else {
            panic!("no state")
        };
        if h.disabled_ms.is_some() {
            break;
        }
        now = h.probe_ms.expect("open");
        let owner = format!("p{round}");
        let probe: Vec<_> = claim(&store, &owner, now)
            .await
            .into_iter()
            .filter(|d| d.dispatch_key == endpoint)
            .collect();
        assert_eq!(probe.len(), 1, "round {round}");
        store
            .record_attempts(vec![counted_result(
                &probe[0],
                &owner,
                None,
                NextState::RetryAt(now),
                now,
                policy,
            )])
            .await
            .unwrap();
    }
    let ep = store.get_endpoint(DEFAULT_TENANT, &endpoint).await.unwrap();
    assert!(ep.disabled, "disabled after failing for the policy's time");
    let told: Vec<String> = events_for(&store, &watcher)
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(told, ["endpoint.failing", "endpoint.disabled"]);
    // Its deliveries wait (parked) instead of being claimed.
    assert!(claim(&store, "w9", now + 100_000)
        .await
        .iter()
        .all(|d| d.dispatch_key != endpoint));

    let mut enabled = ep.clone();
    enabled.disabled = false;
    enabled.updated_ms = now + 1;
    store.update_endpoint(&enabled).await.unwrap();
    assert_eq!(
        circuit(&store, &endpoint).await,
        None,
        "enabling resets its health"
    );
    let back = claim(&store, "w10", now + 2).await;
    assert_eq!(
        back.iter().filter(|d| d.dispatch_key == endpoint).count(),
        3
    );
}

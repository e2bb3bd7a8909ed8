//! Accepting work: publish fan-out, idempotency keys, direct deliveries and the bodies workers receive.

use std::collections::BTreeSet;

use herald_core::status::DeliveryStatus;
use herald_core::time::format_rfc3339_ms;
use herald_store::{DeliveryFilter, EventKind, Page, DEFAULT_TENANT};

use super::*;

/// One delivery per matching enabled endpoint, each pending and due at once; the event keeps its payload text.
pub async fn publish_fan_out(store: Shared) {
    let exact = add_endpoint(&store, DEFAULT_TENANT, 1, &["order.created"]).await;
    let prefix = add_endpoint(&store, DEFAULT_TENANT, 2, &["order.*"]).await;
    add_endpoint(&store, DEFAULT_TENANT, 3, &["invoice.paid"]).await;
    let mut disabled = endpoint(DEFAULT_TENANT, 4, &["*"]);
    disabled.disabled = true;
    store.create_endpoint(&disabled).await.unwrap();

    let payload =
        "{ \"z\": 1,\n  \"a\": [1.50, \"\\u00e9\", null],  \"big\": 12345678901234567890 }";
    let mut event = new_event(DEFAULT_TENANT, "order.created", payload, BASE);
    event.correlation_id = "corr-fan-out".into();
    let published = store.publish(event).await.unwrap();
    assert!(!published.replayed);
    assert_eq!(published.event.kind, EventKind::Event);
    assert_eq!(published.event.event_type, "order.created");
    assert_eq!(published.event.payload, payload);
    assert_eq!(published.event.created_ms, BASE);
    assert_eq!(published.event.tenant_id, DEFAULT_TENANT);
    assert!(
        published.event.id.starts_with("evt_"),
        "{}",
        published.event.id
    );

    let targets: BTreeSet<Option<String>> = published
        .deliveries
        .iter()
        .map(|d| d.endpoint_id.clone())
        .collect();
    assert_eq!(published.deliveries.len(), 2);
    assert_eq!(
        targets,
        BTreeSet::from([Some(exact.id.clone()), Some(prefix.id.clone())])
    );

    for d in &published.deliveries {
        assert!(d.id.starts_with("dlv_"), "{}", d.id);
        let record = store.get_delivery(DEFAULT_TENANT, &d.id).await.unwrap();
        let ep = if d.endpoint_id.as_deref() == Some(exact.id.as_str()) {
            &exact
        } else {
            &prefix
        };
        assert_eq!(record.status, DeliveryStatus::Pending);
        assert_eq!(record.attempt_count, 0);
        assert_eq!(record.next_attempt_ms, Some(BASE));
        assert_eq!(record.event_id, published.event.id);
        assert_eq!(record.endpoint_id, d.endpoint_id);
        assert_eq!(record.url, ep.url);
        assert_eq!(record.correlation_id, "corr-fan-out");
        assert_eq!(record.reference_id, None);
        assert_eq!(record.last_status_code, None);
        assert_eq!(record.last_error, None);
        assert_eq!((record.created_ms, record.updated_ms), (BASE, BASE));
    }
    assert_eq!(
        store
            .count_deliveries(DEFAULT_TENANT, &DeliveryFilter::default())
            .await
            .unwrap(),
        2
    );

    let stored = store
        .get_event(DEFAULT_TENANT, &published.event.id)
        .await
        .unwrap();
    assert_eq!(stored, published.event);
    assert_eq!(stored.payload, payload);

    // Events and deliveries belong to their tenant.
    store
        .create_tenant("other", &"1".repeat(64), BASE)
        .await
        .unwrap();
    assert_not_found(store.get_event("other", &published.event.id).await);
    assert_not_found(
        store
            .get_delivery("other", &published.deliveries[0].id)
            .await,
    );

    // No endpoint matches: the event is stored with no deliveries.
    let lonely = store
        .publish(new_event(DEFAULT_TENANT, "shipment.sent", "{}", BASE + 1))
        .await
        .unwrap();
    assert!(lonely.deliveries.is_empty());
    assert_eq!(
        store
            .get_event(DEFAULT_TENANT, &lonely.event.id)
            .await
            .unwrap()
            .event_type,
        "shipment.sent"
    );
}

fn delivery_ids(published: &herald_store::Published) -> BTreeSet<String> {
    published.deliveries.iter().map(|d| d.id.clone()).collect()
}

/// An idempotency key answers with the first publish for 24 h, per tenant, and creates nothing new.
pub async fn idempotency(store: Shared) {
    store
        .create_tenant("other", &"2".repeat(64), BASE)
        .await
        .unwrap();
    add_endpoint(&store, DEFAULT_TENANT, 1, &["*"]).await;
    add_endpoint(&store, DEFAULT_TENANT, 2, &["order.*"]).await;
    add_endpoint(&store, "other", 3, &["*"]).await;
    let keyed = |tenant: &str, payload: &str, now: i64| {
        let mut e = new_event(tenant, "order.created", payload, now);
        e.idempotency_key = Some("key-1".into());
        e
    };
    let all = DeliveryFilter::default();

    let first = store
        .publish(keyed(DEFAULT_TENANT, r#"{"n":1}"#, BASE))
        .await
        .unwrap();
    assert!(!first.replayed);
    assert_eq!(first.deliveries.len(), 2);
    assert_eq!(first.event.idempotency_key.as_deref(), Some("key-1"));
    assert_eq!(
        store.count_deliveries(DEFAULT_TENANT, &all).await.unwrap(),
        2
    );

    // Within the window (even with another payload): the first answer, nothing new.
    for now in [BASE + 1, BASE + 24 * 3_600_000 - 1] {
        let again = store
            .publish(keyed(DEFAULT_TENANT, r#"{"n":2}"#, now))
            .await
            .unwrap();
        assert!(again.replayed);
        assert_eq!(again.event, first.event);
        assert_eq!(delivery_ids(&again), delivery_ids(&first));
        assert_eq!(
            store.count_deliveries(DEFAULT_TENANT, &all).await.unwrap(),
            2
        );
    }

    // Keys are per tenant.
    let theirs = store
        .publish(keyed("other", r#"{"n":3}"#, BASE + 2))
        .await
        .unwrap();
    assert!(!theirs.replayed);
    assert_ne!(theirs.event.id, first.event.id);
    assert_eq!(theirs.deliveries.len(), 1);
    assert_eq!(store.count_deliveries("other", &all).await.unwrap(), 1);

    // A publish without a key is never a replay.
    let plain = store
        .publish(new_event(DEFAULT_TENANT, "order.created", "{}", BASE + 3))
        .await
        .unwrap();
    assert!(!plain.replayed);
    assert_eq!(
        store.count_deliveries(DEFAULT_TENANT, &all).await.unwrap(),
        4
    );

    // After 24 h + 1 ms the key is forgotten: a new event.
    let expired_at = BASE + 24 * 3_600_000 + 1;
    let fresh = store
        .publish(keyed(DEFAULT_TENANT, r#"{"n":4}"#, expired_at))
        .await
        .unwrap();
    assert!(!fresh.replayed);
    assert_ne!(fresh.event.id, first.event.id);
    assert_eq!(fresh.event.payload, r#"{"n":4}"#);
    assert_eq!(fresh.deliveries.len(), 2);
    assert!(delivery_ids(&fresh).is_disjoint(&delivery_ids(&first)));
    assert_eq!(
        store.count_deliveries(DEFAULT_TENANT, &all).await.unwrap(),
        6
    );

    // ... and the key now answers with the new event.
    let again = store
        .publish(keyed(DEFAULT_TENANT, r#"{"n":5}"#, expired_at + 10))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.event.id, fresh.event.id);
    assert_eq!(delivery_ids(&again), delivery_ids(&fresh));
    assert_eq!(
        store.count_deliveries(DEFAULT_TENANT, &all).await.unwrap(),
        6
    );

    // Concurrent publishes with one fresh key: exactly one creates the event, the others replay it.
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut e = new_event(
                    DEFAULT_TENANT,
                    "order.created",
                    r#"{"race":true}"#,
                    expired_at + 100 + i,
                );
                e.idempotency_key = Some("race-key".into());
                store.publish(e).await.unwrap()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for racer in racers {
        answers.push(racer.await.unwrap());
    }
    assert_eq!(answers.iter().filter(|p| !p.replayed).count(), 1);
    let events: BTreeSet<&str> = answers.iter().map(|p| p.event.id.as_str()).collect();
    assert_eq!(events.len(), 1);
    assert!(answers
        .iter()
        .all(|p| delivery_ids(p) == delivery_ids(&answers[0])));
    assert_eq!(
        store.count_deliveries(DEFAULT_TENANT, &all).await.unwrap(),
        8
    );
}

/// Direct deliveries carry their URL, reference and secret, and their body is the payload as given; event
/// deliveries are sent inside the envelope.
pub async fn direct_and_event_bodies(store: Shared) {
    let payload = "[ 3, {\"b\":true ,\"a\":\"x\"} ]";
    let url = "https://direct.example.com/hook?x=1";
    let mut new = new_direct(DEFAULT_TENANT, url, payload, BASE);
    new.reference_id = Some("order-42".into());
    new.correlation_id = "dc-1".into();
    let direct = store.create_direct_delivery(new).await.unwrap();
    assert!(direct.id.starts_with("dlv_"), "{}", direct.id);
    assert_eq!(
        store
            .get_delivery(DEFAULT_TENANT, &direct.id)
            .await
            .unwrap(),
        direct
    );
    assert_eq!(direct.url, url);
    assert_eq!(direct.reference_id.as_deref(), Some("order-42"));
    assert_eq!(direct.correlation_id, "dc-1");
    assert_eq!(direct.status, DeliveryStatus::Pending);
    assert_eq!(direct.endpoint_id, None);
    assert_eq!(direct.attempt_count, 0);
    assert_eq!(direct.next_attempt_ms, Some(BASE));
    let direct_event = store
        .get_event(DEFAULT_TENANT, &direct.event_id)
        .await
        .unwrap();
    assert_eq!(direct_event.kind, EventKind::Direct);
    assert_eq!(direct_event.payload, payload);

    let mut ep = endpoint(DEFAULT_TENANT, 1, &["user.*"]);
    ep.previous_secret = Some(secret(77));
    ep.previous_secret_expires_ms = Some(BASE + 1_000);
    store.create_endpoint(&ep).await.unwrap();
    let event_payload = "{\"user\" : {\"id\": 7,  \"name\":\"Zoë\"}}";
    let mut event = new_event(DEFAULT_TENANT, "user.signed_up", event_payload, BASE + 5);
    event.correlation_id = "ec-1".into();
    let published = store.publish(event).await.unwrap();
    let event_delivery = published.deliveries[0].id.clone();

    let claimed = claim(&store, "w1", BASE + 10).await;
    assert_eq!(claimed.len(), 2);
    // Oldest due first.
    assert_eq!(claimed[0].id, direct.id);
    assert_eq!(claimed[1].id, event_delivery);

    let d = &claimed[0];
    assert_eq!(d.body, payload);
    assert_eq!(d.secrets, vec![secret(99)]);
    assert_eq!(d.url, url);
    assert_eq!(d.event_id, direct.event_id);
    assert_eq!(d.endpoint_id, None);
    assert_eq!(d.tenant_id, DEFAULT_TENANT);
    assert_eq!(d.headers, vec![("x-direct".to_string(), "yes".to_string())]);
    assert_eq!(d.timeout_ms, TIMEOUT_MS);
    assert_eq!(d.correlation_id, "dc-1");
    assert_eq!((d.attempt_count, d.count_4xx, d.cycle_base), (0, 0, 0));
    assert_eq!(d.cycle_started_ms, BASE);

    let e = &claimed[1];
    let envelope: serde_json::Value = serde_json::from_str(&e.body).expect("envelope is JSON");
    assert_eq!(envelope["id"], published.event.id.as_str());
    assert_eq!(envelope["type"], "user.signed_up");
    assert_eq!(envelope["timestamp"], format_rfc3339_ms(BASE + 5).as_str());
    assert_eq!(
        envelope["data"],
        serde_json::from_str::<serde_json::Value>(event_payload).unwrap()
    );
    assert_eq!(envelope.as_object().unwrap().len(), 4, "{}", e.body);
    assert!(
        e.body.contains(event_payload),
        "payload embedded verbatim: {}",
        e.body
    );
    // Current secret first, then the previous one while it is still valid.
    assert_eq!(e.secrets, vec![ep.secret.clone(), secret(77)]);
    assert_eq!(e.url, ep.url);
    assert_eq!(e.endpoint_id.as_deref(), Some(ep.id.as_str()));
    assert_eq!(e.event_id, published.event.id);
    assert_eq!(e.headers, vec![("x-endpoint".to_string(), "1".to_string())]);
    assert_eq!(e.retry_policy, ep.retry_policy);
    assert_eq!(e.timeout_ms, ep.timeout_ms);
    assert_eq!(e.max_in_flight, ep.max_in_flight);
    assert_eq!(e.correlation_id, "ec-1");
    assert_ne!(e.dispatch_key, d.dispatch_key);

    // Once the previous secret expired only the current one signs.
    store
        .release_leases("w1", std::slice::from_ref(&event_delivery), BASE + 2_000)
        .await
        .unwrap();
    let again = claim(&store, "w1", BASE + 2_000).await;
    assert_eq!(claimed_ids(&again), BTreeSet::from([event_delivery]));
    assert_eq!(again[0].secrets, vec![ep.secret.clone()]);

    // Listing by reference finds the direct delivery.
    let by_ref = DeliveryFilter {
        reference_id: Some("order-42".into()),
        ..Default::default()
    };
    let listed = store
        .list_deliveries(DEFAULT_TENANT, &by_ref, &Page::first(10))
        .await
        .unwrap();
    assert_eq!(
        listed
            .items
            .iter()
            .map(|d| d.id.clone())
            .collect::<Vec<_>>(),
        vec![direct.id]
    );
}

/// An event's `traceparent` is stored with it and handed to every claim of its deliveries, direct ones too.
pub async fn traces_ride_with_events(store: Shared) {
    const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    add_endpoint(&store, DEFAULT_TENANT, 1, &["traced"]).await;
    let mut traced = new_event(DEFAULT_TENANT, "traced", "{}", BASE);
    traced.traceparent = Some(TRACE.into());
    let published = store.publish(traced).await.unwrap();
    assert_eq!(published.event.traceparent.as_deref(), Some(TRACE));
    let read = store
        .get_event(DEFAULT_TENANT, &published.event.id)
        .await
        .unwrap();
    assert_eq!(read.traceparent.as_deref(), Some(TRACE));
    let mut direct = new_direct(DEFAULT_TENANT, "https://direct.example.com/x", "{}", BASE);
    direct.traceparent = Some(TRACE.into());
    store.create_direct_delivery(direct).await.unwrap();
    publish(&store, "traced", BASE + 1).await;
    let claimed = claim(&store, "w1", BASE + 10).await;
    assert_eq!(claimed.len(), 3);
    let traces: Vec<Option<&str>> = claimed.iter().map(|d| d.traceparent.as_deref()).collect();
    assert_eq!(
        traces.iter().filter(|t| **t == Some(TRACE)).count(),
        2,
        "{traces:?}"
    );
    assert_eq!(traces.iter().filter(|t| t.is_none()).count(), 1);
}

//! Per-endpoint limits hold across nodes: two nodes on one PostgreSQL database share one endpoint's
//! `rate_limit_per_s`, because each claim reads and moves on the pacing time the store keeps for it.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Backend, Reply, TestApp, TestReceiver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_endpoint_rate_limit() {
    let Some(a) = TestApp::spawn_on(Backend::Postgres, |c| c.delivery.poll_interval_ms = 100).await
    else {
        return;
    };
    let url = a.database_url();
    let b = TestApp::spawn_with(|c| {
        c.database_url = url;
        c.delivery.poll_interval_ms = 100;
    })
    .await;
    let rx = TestReceiver::start(Reply::status(204)).await;
    let rate = 10;
    a.endpoint(json!({
        "url": rx.url("/paced"), "event_types": ["tick"], "rate_limit_per_s": rate, "max_in_flight": 64,
    }))
    .await;
    let events = 60;
    for n in 0..events {
        let node = if n % 2 == 0 { &a } else { &b };
        let (status, body) = node
            .post(
                "/v1/events",
                json!({"event_type": "tick", "payload": {"n": n}}),
            )
            .await;
        assert_eq!(status.as_u16(), 202, "{body}");
    }
    // At 10/s with a burst of one second's worth, 60 requests take at least 5 s from the first claim to
    // the last, wherever they are claimed; each node pacing on its own would send them at twice the rate,
    // in about 3 s. Each node also spaces what it was given over up to a second, hence the 4 s bound.
    // Arrival times are the receiver's own, so a slow publishing loop does not shorten the span.
    let seen = rx.wait_for(events, Duration::from_secs(30)).await;
    assert_eq!(
        seen.len(),
        events,
        "only {} of {events} arrived",
        seen.len()
    );
    let first = seen.iter().map(|s| s.at).min().expect("a first arrival");
    let last = seen.iter().map(|s| s.at).max().expect("a last arrival");
    let took = last - first;
    assert!(
        took >= Duration::from_secs(4),
        "{events} requests at {rate}/s arrived within {took:?} of the first: faster than the rate"
    );
}

/// Three nodes on one PostgreSQL database, each publishing and claiming, never have more than an
/// endpoint's `max_in_flight` requests at its receiver at once, though each may lease ahead of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_one_endpoint_max_in_flight() {
    let Some(a) = TestApp::spawn_on(Backend::Postgres, |c| c.delivery.poll_interval_ms = 100).await
    else {
        return;
    };
    let url = a.database_url();
    let mut nodes = vec![a];
    for _ in 0..2 {
        let url = url.clone();
        nodes.push(
            TestApp::spawn_with(|c| {
                c.database_url = url;
                c.delivery.poll_interval_ms = 100;
            })
            .await,
        );
    }
    let rx = TestReceiver::start(Reply::slow(204, Duration::from_millis(40))).await;
    let limit = 4;
    nodes[0]
        .endpoint(json!({
            "url": rx.url("/limited"), "event_types": ["tick"], "max_in_flight": limit,
        }))
        .await;
    let events = 120;
    for n in 0..events {
        let (status, body) = nodes[n % 3]
            .post(
                "/v1/events",
                json!({"event_type": "tick", "payload": {"n": n}}),
            )
            .await;
        assert_eq!(status.as_u16(), 202, "{body}");
    }
    rx.wait_for(events, Duration::from_secs(60)).await;
    let peak = rx.peak();
    assert!(
        (1..=limit).contains(&peak),
        "{peak} requests at once from three nodes, against max_in_flight {limit}"
    );
}

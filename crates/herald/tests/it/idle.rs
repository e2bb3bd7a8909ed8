//! An idle node stays idle: with work waiting on more endpoints than one claim visits, none of it due,
//! the dispatcher claims once round them and then waits for something to fall due, instead of walking
//! the endpoints over and over.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, Reply, TestApp, TestReceiver};
use crate::on_both_stores;

/// Endpoints with a delivery waiting: more than one claim visits (`herald_store::claiming::WALK`).
const ENDPOINTS: usize = 600;

/// Claims the node has made so far, from `herald_claim_batch_size_count`.
async fn claims(app: &TestApp) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    crate::metrics::sample(&text, "herald_claim_batch_size_count")
}

pub async fn a_node_with_only_retries_waiting_stops_claiming(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    // An outage: every endpoint answers 503, and its next retry is an hour away.
    let rx = TestReceiver::start(Reply::status(503)).await;
    for i in 0..ENDPOINTS {
        app.endpoint(
            json!({"url": rx.url(&format!("/{i}")), "event_types": ["outage.*"],
            "retry_policy": {"kind": "schedule", "delays_ms": [3_600_000]}}),
        )
        .await;
    }
    let (status, _) = app
        .post(
            "/v1/events",
            json!({"event_type": "outage.began", "payload": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    rx.wait_for(ENDPOINTS, Duration::from_secs(60)).await;
    // Let the results be written and the claims that follow them run.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let before = claims(&app).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let made = claims(&app).await - before;
    assert!(
        made <= 10.0,
        "{made} claims in 3 s with nothing due for an hour"
    );
    assert_eq!(rx.count(), ENDPOINTS, "a retry went out early");
}

on_both_stores!(a_node_with_only_retries_waiting_stops_claiming);

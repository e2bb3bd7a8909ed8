//! A slow endpoint must not slow delivery to the others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Reply, TestApp, TestReceiver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_does_not_delay_a_fast_one() {
    let app = Arc::new(TestApp::spawn().await);
    let slow = TestReceiver::start(Reply::slow(200, Duration::from_secs(10))).await;
    let fast = TestReceiver::start(Reply::status(204)).await;
    let slow_ep = app
        .endpoint(json!({"url": slow.url("/slow"), "timeout_ms": 15000}))
        .await;
    app.endpoint(json!({"url": fast.url("/fast")})).await;

    let started = Instant::now();
    let mut publishers = Vec::new();
    for worker in 0..16 {
        let app = app.clone();
        publishers.push(tokio::spawn(async move {
            for n in 0..(1000 / 16 + 1) {
                let i = worker * 1000 + n;
                if n * 16 + worker >= 1000 {
                    break;
                }
                let (status, body) = app
                    .post(
                        "/v1/events",
                        json!({"event_type": "tick", "payload": {"i": i}}),
                    )
                    .await;
                assert_eq!(status.as_u16(), 202, "{body}");
            }
        }));
    }
    for p in publishers {
        p.await.unwrap();
    }
    fast.wait_for(1000, Duration::from_secs(8)).await;
    let elapsed = started.elapsed();
    let path = format!(
        "/v1/deliveries?endpoint_id={}&status=in_progress&limit=250",
        slow_ep["id"].as_str().unwrap()
    );
    let (_, in_flight) = app.get(&path).await;
    let held = in_flight["data"].as_array().unwrap().len();
    assert!(
        (1..=16 + 512 / 4).contains(&held),
        "the slow endpoint holds its in-flight limit (16) and at most a quarter of the node's concurrency \
         (512) waiting, held {held}"
    );
    assert_eq!(
        slow.peak(),
        16,
        "the slow endpoint has its in-flight limit (16) of requests at once, no more"
    );
    println!("1000 events to the fast endpoint delivered in {elapsed:?} while the slow one sleeps 10 s per request");
}

/// While some endpoints hold a backlog far beyond the node's capacity (8 requests in flight here), another
/// endpoint's new event is delivered at its turn of the round robin, not after the backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_backlog_does_not_delay_another_endpoints_new_event() {
    let app = Arc::new(TestApp::spawn_with(|c| c.delivery.concurrency = 8).await);
    let busy = TestReceiver::start(Reply::slow(204, Duration::from_millis(20))).await;
    let quiet = TestReceiver::start(Reply::status(204)).await;
    for i in 0..4 {
        app.endpoint(json!({"url": busy.url(&format!("/busy/{i}")), "event_types": ["busy"]}))
            .await;
    }
    app.endpoint(json!({"url": quiet.url("/quiet"), "event_types": ["quiet"]}))
        .await;
    // 1,600 deliveries at 8 in flight and 20 ms each: at least 4 s of backlog.
    let mut publishers = Vec::new();
    for worker in 0..8 {
        let app = app.clone();
        publishers.push(tokio::spawn(async move {
            for n in 0..50 {
                let body = json!({"event_type": "busy", "payload": {"i": worker * 50 + n}});
                let (status, answer) = app.post("/v1/events", body).await;
                assert_eq!(status.as_u16(), 202, "{answer}");
            }
        }));
    }
    for p in publishers {
        p.await.unwrap();
    }
    let started = Instant::now();
    let (status, answer) = app
        .post("/v1/events", json!({"event_type": "quiet", "payload": {}}))
        .await;
    assert_eq!(status.as_u16(), 202, "{answer}");
    quiet.wait_for(1, Duration::from_secs(3)).await;
    let waited = started.elapsed();
    let drained = busy.count();
    assert!(
        drained < 1_200,
        "the backlog should still be draining, but {drained} of 1,600 arrived"
    );
    println!("the quiet endpoint's event arrived in {waited:?} with {drained} of 1,600 backlog deliveries done");
}

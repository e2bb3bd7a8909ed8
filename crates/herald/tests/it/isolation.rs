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
        (1..=16).contains(&held),
        "the slow endpoint holds at most its in-flight limit (16), held {held}"
    );
    println!("1000 events to the fast endpoint delivered in {elapsed:?} while the slow one sleeps 10 s per request");
}

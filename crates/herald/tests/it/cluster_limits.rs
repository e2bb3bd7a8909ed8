//! Per-endpoint limits hold across nodes: two nodes on one PostgreSQL database share one endpoint's
//! `rate_limit_per_s`, because each claim reads and moves on the pacing time the store keeps for it.

use std::time::{Duration, Instant};

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
    rx.wait_for(1, Duration::from_secs(10)).await;
    let first = Instant::now();
    // Over any span of s seconds: at most rate × (s + 1). Each node pacing on its own would send twice the
    // rate (60 within 3 s).
    let span = Duration::from_secs(3);
    let mut most = 0;
    while first.elapsed() < span {
        most = rx.count();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bound = rate * (span.as_secs() as usize + 1) + 2;
    assert!(
        most <= bound,
        "{most} requests within {span:?} of the first: over {bound}"
    );
    assert!(
        most >= 2 * rate,
        "{most} requests within {span:?}: the rate is reached"
    );
    rx.wait_for(events, Duration::from_secs(20)).await;
}

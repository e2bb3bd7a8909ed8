//! Publishing, fan-out, signatures, retries, failures, operator actions, idempotency.

use std::time::Duration;

use axum::http::StatusCode;
use herald_core::signing::{verify, Secret};
use reqwest::Method;
use serde_json::json;

use crate::helpers::Backend;
use crate::helpers::{Reply, TestApp, TestReceiver};

const WAIT: Duration = Duration::from_secs(10);

/// A quick bounded policy so retries take milliseconds.
fn quick(max_attempts: u32) -> serde_json::Value {
    json!({"kind": "bounded", "max_attempts": max_attempts, "base_ms": 50, "jitter": 0.0})
}

pub async fn fan_out_respects_type_filters_and_signs_each_delivery(backend: Backend) {
    let app = match TestApp::spawn_on(backend, |_| {}).await {
        Some(app) => app,
        None => return,
    };
    let rx = TestReceiver::start(Reply::status(204)).await;
    let created = app
        .endpoint(json!({"url": rx.url("/a"), "event_types": ["order.created"]}))
        .await;
    let prefixed = app
        .endpoint(json!({"url": rx.url("/b"), "event_types": ["order.*"]}))
        .await;
    app.endpoint(json!({"url": rx.url("/c"), "event_types": ["invoice.paid"]}))
        .await;

    let (status, event) = app
        .call_as_with_headers(
            "/v1/events",
            json!({"event_type": "order.created", "payload": {"order": 42, "items": [1, 2]}}),
            &[("x-correlation-id", "corr-from-client")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{event}");
    assert_eq!(event["correlation_id"], "corr-from-client");
    let mut targets: Vec<String> = event["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["endpoint_id"].as_str().unwrap().into())
        .collect();
    targets.sort();
    let mut expected = vec![
        created["id"].as_str().unwrap().to_string(),
        prefixed["id"].as_str().unwrap().to_string(),
    ];
    expected.sort();
    assert_eq!(targets, expected);

    let seen = rx.wait_for(2, WAIT).await;
    let mut paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["/a", "/b"]);
    for request in &seen {
        let secret = if request.path == "/a" {
            &created["secret"]
        } else {
            &prefixed["secret"]
        };
        let secret = Secret::parse(secret.as_str().unwrap()).unwrap();
        let id = request.header("webhook-id").unwrap();
        assert_eq!(id, event["id"]);
        let ts: i64 = request
            .header("webhook-timestamp")
            .unwrap()
            .parse()
            .unwrap();
        let now = herald_server::app::now_ms() / 1000;
        verify(
            &secret,
            id,
            ts,
            &request.body,
            request.header("webhook-signature").unwrap(),
            now,
            300,
        )
        .expect("signature verifies with the endpoint's secret");
        assert_eq!(request.header("x-correlation-id"), Some("corr-from-client"));
        assert!(request.header("user-agent").unwrap().starts_with("Herald/"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        let body = request.json();
        assert_eq!(body["id"], event["id"]);
        assert_eq!(body["type"], "order.created");
        assert_eq!(body["data"], json!({"order": 42, "items": [1, 2]}));
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    for d in event["deliveries"].as_array().unwrap() {
        app.wait_status(d["id"].as_str().unwrap(), "delivered", WAIT)
            .await;
    }
    let (_, fetched) = app
        .get(&format!("/v1/events/{}", event["id"].as_str().unwrap()))
        .await;
    assert_eq!(fetched["payload"], json!({"order": 42, "items": [1, 2]}));
}

pub async fn two_server_errors_then_success_ends_delivered_with_three_attempts(backend: Backend) {
    let app = match TestApp::spawn_on(backend, |_| {}).await {
        Some(app) => app,
        None => return,
    };
    let rx = TestReceiver::start(Reply::status(200)).await;
    rx.then(&[Reply::status(500), Reply::status(500)]);
    app.endpoint(json!({"url": rx.url("/hook"), "retry_policy": quick(5)}))
        .await;
    let (_, event) = app
        .post("/v1/events", json!({"event_type": "ping", "payload": {}}))
        .await;
    let id = event["deliveries"][0]["id"].as_str().unwrap();
    let d = app.wait_status(id, "delivered", WAIT).await;
    assert_eq!(d["attempt_count"], 3);
    let codes: Vec<i64> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 500, 200]);
    assert_eq!(d["attempts"][0]["number"], 1);
    assert!(d["attempts"][2]["started_at"].is_string());
    assert!(d["next_attempt_at"].is_null());
    let ids: Vec<String> = rx
        .seen()
        .iter()
        .map(|s| s.header("webhook-id").unwrap().to_string())
        .collect();
    assert!(
        ids.iter().all(|i| i == &ids[0]),
        "webhook-id is stable across retries"
    );
}

pub async fn a_404_fails_after_its_single_4xx_retry_and_an_operator_retry_delivers_it(
    backend: Backend,
) {
    let app = match TestApp::spawn_on(backend, |_| {}).await {
        Some(app) => app,
        None => return,
    };
    let rx = TestReceiver::start(Reply::status(404)).await;
    app.endpoint(json!({"url": rx.url("/gone"), "retry_policy": quick(5)}))
        .await;
    let (_, event) = app
        .post(
            "/v1/events",
            json!({"event_type": "ping", "payload": {"n": 1}}),
        )
        .await;
    let id = event["deliveries"][0]["id"].as_str().unwrap().to_string();
    let d = app.wait_status(&id, "failed", WAIT).await;
    assert_eq!(
        d["attempt_count"], 2,
        "a 4xx is retried once, then fails: {d}"
    );
    assert_eq!(d["last_status_code"], 404);
    let (_, failed) = app.get("/v1/deliveries?status=failed").await;
    assert_eq!(failed["data"][0]["id"], id.as_str());

    rx.set_default(Reply::status(200));
    let (status, retried) = app
        .post(&format!("/v1/deliveries/{id}/retry"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    let d = app.wait_status(&id, "delivered", WAIT).await;
    assert_eq!(d["attempt_count"], 3);
}

pub async fn a_timeout_is_recorded_as_timeout(backend: Backend) {
    let app = match TestApp::spawn_on(backend, |_| {}).await {
        Some(app) => app,
        None => return,
    };
    let rx = TestReceiver::start(Reply::slow(200, Duration::from_secs(3))).await;
    app.endpoint(json!({"url": rx.url("/slow"), "timeout_ms": 200, "retry_policy": quick(1)}))
        .await;
    let (_, event) = app
        .post("/v1/events", json!({"event_type": "ping", "payload": {}}))
        .await;
    let id = event["deliveries"][0]["id"].as_str().unwrap();
    let d = app.wait_status(id, "failed", WAIT).await;
    assert_eq!(d["attempts"][0]["error"], "timeout");
    assert!(d["attempts"][0]["status_code"].is_null());
    assert_eq!(d["last_error"], "timeout");
    assert!(d["attempts"][0]["duration_ms"].as_u64().unwrap() >= 200);
}

pub async fn a_refused_connection_is_recorded_as_connect(backend: Backend) {
    let app = match TestApp::spawn_on(backend, |_| {}).await {
        Some(app) => app,
        None => return,
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_, d) = app
        .post("/v1/deliveries", json!({"url": format!("http://127.0.0.1:{port}/x"), "payload": {}, "retry_policy": quick(1)}))
        .await;
    let d = app
        .wait_status(d["id"].as_str().unwrap(), "failed", WAIT)
        .await;
    assert_eq!(d["attempts"][0]["error"], "connect");
}

pub async fn cancel_stops_a_retrying_delivery(backend: Backend) {
    let app = match TestApp::spawn_on(backend, |_| {}).await {
        Some(app) => app,
        None => return,
    };
    let rx = TestReceiver::start(Reply::status(503)).await;
    app.endpoint(
        json!({"url": rx.url("/x"), "retry_policy": {"kind": "schedule", "delays_ms": [60000]}}),
    )
    .await;
    let (_, event) = app
        .post("/v1/events", json!({"event_type": "ping", "payload": {}}))
        .await;
    let id = event["deliveries"][0]["id"].as_str().unwrap();
    let d = app.wait_status(id, "retrying", WAIT).await;
    assert!(d["next_attempt_at"].is_string());
    let (status, cancelled) = app
        .post(&format!("/v1/deliveries/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["status"], "cancelled");
    let (status, again) = app
        .post(&format!("/v1/deliveries/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["error"]["code"], "conflict");
}

pub async fn the_same_idempotency_key_returns_the_first_answer_and_sends_once(backend: Backend) {
    let app = match TestApp::spawn_on(backend, |_| {}).await {
        Some(app) => app,
        None => return,
    };
    let rx = TestReceiver::start(Reply::status(204)).await;
    app.endpoint(json!({"url": rx.url("/once")})).await;
    let body = json!({"event_type": "ping", "payload": {"n": 1}});
    let first = app
        .call_as_with_headers("/v1/events", body.clone(), &[("idempotency-key", "k-1")])
        .await;
    let second = app
        .call_as_with_headers("/v1/events", body.clone(), &[("idempotency-key", "k-1")])
        .await;
    assert_eq!(first.0, StatusCode::ACCEPTED);
    assert_eq!(first.1, second.1);
    let third = app
        .post(
            "/v1/events",
            json!({"event_type": "ping", "payload": {}, "idempotency_key": "k-2"}),
        )
        .await;
    assert_ne!(third.1["id"], first.1["id"]);
    rx.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.count(), 2, "k-1 was delivered once, k-2 once");
}

pub async fn direct_deliveries_are_signed_when_given_a_secret_and_verified_by_the_receiver(
    backend: Backend,
) {
    use herald_server::receiver::{self, ReceiverConfig};
    let app = match TestApp::spawn_on(backend, |_| {}).await {
        Some(app) => app,
        None => return,
    };
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (listener, addr) = receiver::bind(0).await.unwrap();
    let config = ReceiverConfig {
        secret: Some(Secret::parse(secret).unwrap()),
        ..Default::default()
    };
    tokio::spawn(receiver::serve(listener, config, std::future::pending()));
    let (status, d) = app
        .post(
            "/v1/deliveries",
            json!({"url": format!("http://{addr}/in"), "payload": {"raw": true}, "secret": secret, "reference_id": "ref-9"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{d}");
    assert_eq!(d["reference_id"], "ref-9");
    app.wait_status(d["id"].as_str().unwrap(), "delivered", WAIT)
        .await;
    let stats: serde_json::Value = reqwest::get(format!("http://{addr}/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["received"], 1);
    assert_eq!(stats["invalid_signatures"], 0);
    let got: serde_json::Value = reqwest::get(format!("http://{addr}/received"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        got["data"][0]["body"],
        json!({"raw": true}),
        "direct payloads are sent as given"
    );
    assert_eq!(got["data"][0]["signature_valid"], true);

    // A wrong secret on the receiver side is refused with 401 and recorded as such by Herald.
    let (listener, addr) = receiver::bind(0).await.unwrap();
    let wrong = ReceiverConfig {
        secret: Some(Secret::from_bytes(&[1u8; 32]).unwrap()),
        ..Default::default()
    };
    tokio::spawn(receiver::serve(listener, wrong, std::future::pending()));
    let (_, d) = app
        .post(
            "/v1/deliveries",
            json!({"url": format!("http://{addr}/in"), "payload": {}, "secret": secret, "retry_policy": quick(1)}),
        )
        .await;
    let d = app
        .wait_status(d["id"].as_str().unwrap(), "failed", WAIT)
        .await;
    assert_eq!(d["last_status_code"], 401);
}

pub async fn deliveries_list_filters_and_paginates_with_a_cursor(backend: Backend) {
    let app = match TestApp::spawn_on(backend, |_| {}).await {
        Some(app) => app,
        None => return,
    };
    let rx = TestReceiver::start(Reply::status(204)).await;
    let ep = app.endpoint(json!({"url": rx.url("/p")})).await;
    for n in 0..7 {
        app.post(
            "/v1/events",
            json!({"event_type": "ping", "payload": {"n": n}}),
        )
        .await;
    }
    rx.wait_for(7, WAIT).await;
    let mut seen = Vec::new();
    let mut path = format!(
        "/v1/deliveries?endpoint_id={}&limit=3",
        ep["id"].as_str().unwrap()
    );
    loop {
        let (status, page) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => {
                path = format!(
                    "/v1/deliveries?endpoint_id={}&limit=3&cursor={c}",
                    ep["id"].as_str().unwrap()
                )
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first");
    sorted.dedup();
    assert_eq!(sorted.len(), 7);

    for id in &seen {
        app.wait_status(id, "delivered", WAIT).await;
    }
    let (status, deleted) = app
        .call(Method::DELETE, "/v1/deliveries?status=delivered", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted["deleted"], 7);
}

/// A claim's attempts start before its commit is done, and a fast receiver answers before it is: each
/// result must still be written, or its delivery would stay leased until the lease ran out and then be
/// sent again. Four publishers stream to one default endpoint; every delivery ends delivered (well inside
/// the 30 s lease) and every event arrives exactly once.
pub async fn a_steady_stream_is_recorded_delivered_and_received_once_each(backend: Backend) {
    let app = match TestApp::spawn_on(backend, |_| {}).await {
        Some(app) => app,
        None => return,
    };
    let rx = TestReceiver::start(Reply::status(204)).await;
    app.endpoint(json!({"url": rx.url("/stream")})).await;
    const PER_PUBLISHER: u64 = 150;
    let publisher = |first: u64| {
        let app = &app;
        async move {
            for n in first..first + PER_PUBLISHER {
                let (status, body) = app
                    .post(
                        "/v1/events",
                        json!({"event_type": "tick", "payload": {"n": n}}),
                    )
                    .await;
                assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            }
        }
    };
    tokio::join!(
        publisher(0),
        publisher(PER_PUBLISHER),
        publisher(2 * PER_PUBLISHER),
        publisher(3 * PER_PUBLISHER)
    );
    let total = 4 * PER_PUBLISHER;
    rx.wait_for(total as usize, Duration::from_secs(30)).await;
    let deadline = std::time::Instant::now() + WAIT;
    let mut delivered = 0;
    while delivered < total {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {total} deliveries recorded as delivered; the rest are still leased",
            delivered
        );
        let (status, deleted) = app
            .call(Method::DELETE, "/v1/deliveries?status=delivered", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{deleted}");
        delivered += deleted["deleted"].as_u64().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delivered, total);
    let mut seen: Vec<u64> = rx
        .seen()
        .iter()
        .map(|s| s.json()["data"]["n"].as_u64().expect("n in the payload"))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len() as u64, total, "each event arrived once");
    assert_eq!(rx.count() as u64, total, "no event arrived twice");
}

crate::on_both_stores!(
    fan_out_respects_type_filters_and_signs_each_delivery,
    two_server_errors_then_success_ends_delivered_with_three_attempts,
    a_404_fails_after_its_single_4xx_retry_and_an_operator_retry_delivers_it,
    a_timeout_is_recorded_as_timeout,
    a_refused_connection_is_recorded_as_connect,
    cancel_stops_a_retrying_delivery,
    the_same_idempotency_key_returns_the_first_answer_and_sends_once,
    direct_deliveries_are_signed_when_given_a_secret_and_verified_by_the_receiver,
    deliveries_list_filters_and_paginates_with_a_cursor,
    a_steady_stream_is_recorded_delivered_and_received_once_each
);

//! The engine survives what breaks it: a receiver whose answer cannot be stored as text, an attempt that
//! panics, and a dispatcher or recorder that panics (restarted, with `/health` saying so meanwhile).

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use herald_server::failpoint;
use serde_json::{json, Value};

use crate::helpers::{Backend, Reply, TestApp, TestReceiver};

const WAIT: Duration = Duration::from_secs(20);

/// A receiver answering 200 with a body holding NUL bytes and invalid UTF-8.
async fn poison_receiver() -> String {
    let app = axum::Router::new().fallback(|| async {
        (
            StatusCode::OK,
            axum::body::Bytes::from_static(b"ok\0\0\xff\xfe poison"),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hook")
}

async fn deliveries(app: &TestApp) -> Vec<Value> {
    let (status, listed) = app.get("/v1/deliveries?limit=250").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    listed["data"].as_array().unwrap().clone()
}

async fn wait_all_delivered(app: &TestApp, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let all = deliveries(app).await;
        if all.len() == n && all.iter().all(|d| d["status"] == "delivered") {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "not all delivered: {:?}",
            all.iter().map(|d| &d["status"]).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn a_poison_answer_does_not_stop_recording(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let healthy = TestReceiver::start(Reply::status(204)).await;
    let poison = app
        .endpoint(json!({"url": poison_receiver().await, "event_types": ["p.*"]}))
        .await;
    app.endpoint(json!({"url": healthy.url("/ok"), "event_types": ["h.*"]}))
        .await;
    for i in 0..20 {
        let kind = if i % 2 == 0 { "p.x" } else { "h.x" };
        let (status, _) = app
            .post(
                "/v1/events",
                json!({"event_type": kind, "payload": {"i": i}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let all = wait_all_delivered(&app, 20).await;
    let poisoned = all
        .iter()
        .find(|d| d["endpoint_id"] == poison["id"])
        .unwrap();
    let (_, detail) = app
        .get(&format!(
            "/v1/deliveries/{}",
            poisoned["id"].as_str().unwrap()
        ))
        .await;
    let body = detail["attempts"][0]["response_body"].as_str().unwrap();
    assert!(!body.contains('\0'), "{body:?}");
    assert!(
        body.starts_with("ok\u{FFFD}") && body.ends_with(" poison"),
        "{body:?}"
    );
    assert_eq!(
        detail["attempt_count"], 1,
        "recorded once, not re-sent after a lease expiry"
    );
}

pub async fn a_panicking_attempt_frees_its_slot_and_is_retried(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let rx = TestReceiver::start(Reply::status(204)).await;
    let url = rx.url("/panics");
    // One slot: if the panicked attempt kept it, the second delivery would never go out.
    app.endpoint(json!({"url": url, "max_in_flight": 1})).await;
    failpoint::arm(failpoint::points::ATTEMPT, &url, 1);
    for i in 0..2 {
        let (status, _) = app
            .post(
                "/v1/events",
                json!({"event_type": "a.b", "payload": {"i": i}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    wait_all_delivered(&app, 2).await;
    assert_eq!(
        rx.count(),
        2,
        "each delivered once: the panicked attempt sent nothing"
    );
}

async fn health(app: &TestApp) -> (StatusCode, Value) {
    let resp = app.client.get(app.url("/health")).send().await.unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    (status, resp.json().await.unwrap())
}

pub async fn a_panicking_dispatcher_or_recorder_is_restarted(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let rx = TestReceiver::start(Reply::status(204)).await;
    app.endpoint(json!({"url": rx.url("/h")})).await;
    let (status, before) = health(&app).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before["workers"]["running"], true);

    failpoint::arm(failpoint::points::DISPATCHER, app.node_id(), 4);
    failpoint::arm(failpoint::points::RECORDER, app.node_id(), 2);
    let deadline = Instant::now() + WAIT;
    let mut saw_down = false;
    loop {
        let (status, h) = health(&app).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(h["workers"]["running"], false, "{h}");
            saw_down = true;
        }
        if saw_down && status == StatusCode::OK && h["workers"]["restarts"].as_u64() >= Some(4) {
            break;
        }
        assert!(Instant::now() < deadline, "engine did not come back: {h}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for i in 0..5 {
        let (status, _) = app
            .post(
                "/v1/events",
                json!({"event_type": "a.b", "payload": {"i": i}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    wait_all_delivered(&app, 5).await;
}

/// Overwrite an endpoint's stored retry policy behind the API's back (with text that is not JSON, say).
async fn set_stored_policy(app: &TestApp, endpoint_id: &str, policy: &str) {
    let sql = format!("UPDATE endpoints SET retry_policy = '{policy}' WHERE id = ");
    match app.database_url() {
        Some(url) => {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .execute(&format!("{sql}$1"), &[&endpoint_id])
                .await
                .unwrap();
        }
        None => {
            let db = rusqlite::Connection::open(app.data_dir().join("herald.db")).unwrap();
            db.busy_timeout(Duration::from_secs(5)).unwrap();
            db.execute(&format!("{sql}?1"), [endpoint_id]).unwrap();
        }
    }
}

pub async fn an_unreadable_delivery_is_quarantined_not_fatal(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let broken_rx = TestReceiver::start(Reply::status(204)).await;
    let healthy_rx = TestReceiver::start(Reply::status(204)).await;
    let broken = app
        .endpoint(json!({"url": broken_rx.url("/b"), "event_types": ["b.*"]}))
        .await;
    app.endpoint(json!({"url": healthy_rx.url("/h"), "event_types": ["h.*"]}))
        .await;
    let broken_id = broken["id"].as_str().unwrap();
    set_stored_policy(&app, broken_id, "{not json").await;
    for kind in ["b.x", "h.x", "b.y", "h.y"] {
        let (status, _) = app
            .post("/v1/events", json!({"event_type": kind, "payload": {}}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    healthy_rx.wait_for(2, WAIT).await;
    let deadline = Instant::now() + WAIT;
    let quarantined = loop {
        let all = deliveries(&app).await;
        let mine: Vec<Value> = all
            .into_iter()
            .filter(|d| d["endpoint_id"] == broken["id"])
            .collect();
        if mine.len() == 2 && mine.iter().all(|d| d["status"] == "failed") {
            break mine;
        }
        assert!(Instant::now() < deadline, "not quarantined: {mine:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(quarantined[0]["last_error"]
        .as_str()
        .unwrap()
        .starts_with("quarantined"));
    assert_eq!(broken_rx.count(), 0);

    // Once the stored settings are repaired, an operator retry sends them.
    set_stored_policy(&app, broken_id, r#"{"kind": "bounded", "max_attempts": 3}"#).await;
    for d in &quarantined {
        let (status, _) = app
            .post(
                &format!("/v1/deliveries/{}/retry", d["id"].as_str().unwrap()),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    broken_rx.wait_for(2, WAIT).await;
}

crate::on_both_stores!(
    a_poison_answer_does_not_stop_recording,
    a_panicking_attempt_frees_its_slot_and_is_retried,
    a_panicking_dispatcher_or_recorder_is_restarted,
    an_unreadable_delivery_is_quarantined_not_fatal,
);

//! The SSRF guard on every outbound path. Nodes here refuse private targets (the default) and resolve
//! `internal.test` to 127.0.0.1, the way a hostile tenant's DNS name would: deliveries, gateway upstream
//! calls and OAuth2 token fetches must all refuse it, and the loopback servers behind it must see nothing.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Backend, Reply, TestApp, TestReceiver, ADMIN_TOKEN};

const WAIT: Duration = Duration::from_secs(15);

/// A node with private targets refused and `internal.test` resolving to loopback.
async fn guarded(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_on(backend, |c| {
        c.allow_private_targets = false;
        c.resolve = "internal.test=127.0.0.1".parse().unwrap();
    })
    .await
}

fn internal(rx: &TestReceiver, path: &str) -> String {
    format!("http://internal.test:{}{path}", rx.addr.port())
}

async fn wait_job(app: &TestApp, id: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, job) = app.get(&format!("/v1/jobs/{id}")).await;
        assert!(status.is_success(), "{job}");
        if job["status"] == "failed" || job["status"] == "succeeded" {
            return job;
        }
        assert!(Instant::now() < deadline, "job did not end: {job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub async fn deliveries_to_a_name_resolving_to_loopback_are_blocked(backend: Backend) {
    let Some(app) = guarded(backend).await else {
        return;
    };
    let rx = TestReceiver::start(Reply::status(204)).await;
    let (status, refused) = app
        .post("/v1/endpoints", json!({"url": rx.url("/hook")}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["details"]["field"], "url");

    let policy = json!({"kind": "bounded", "max_attempts": 1, "base_ms": 10, "jitter": 0.0});
    app.endpoint(json!({"url": internal(&rx, "/hook"), "retry_policy": policy}))
        .await;
    let (status, published) = app
        .post("/v1/events", json!({"event_type": "t.x", "payload": {}}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{published}");
    let (_, listed) = app.get("/v1/deliveries").await;
    let id = listed["data"][0]["id"].as_str().unwrap().to_string();
    let d = app.wait_status(&id, "failed", WAIT).await;
    assert_eq!(d["attempts"][0]["error"], "blocked", "{d}");
    assert_eq!(rx.count(), 0, "the loopback receiver was never contacted");
}

pub async fn the_gateway_refuses_an_upstream_resolving_to_loopback(backend: Backend) {
    let Some(app) = guarded(backend).await else {
        return;
    };
    let upstream = TestReceiver::start(Reply::status(200)).await;
    let callback = TestReceiver::start(Reply::status(204)).await;
    let (status, route) = app
        .call(
            Method::PUT,
            "/v1/routes/internal",
            Some(json!({"kind": "proxy", "url": internal(&upstream, "/admin")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{route}");
    let resp = app
        .client
        .get(app.url("/async/internal/secrets"))
        .bearer_auth(ADMIN_TOKEN)
        .header("callback-url", internal(&callback, "/cb"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let job: Value = resp.json().await.unwrap();
    let job = wait_job(&app, job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["kind"], "blocked", "{job}");
    assert!(
        job.get("result").is_none(),
        "no internal answer is readable"
    );
    assert_eq!(upstream.count(), 0, "the upstream was never contacted");
    assert_eq!(callback.count(), 0, "nor the callback");
}

pub async fn oauth2_token_urls_resolving_to_loopback_are_never_fetched(backend: Backend) {
    let Some(app) = guarded(backend).await else {
        return;
    };
    let token_server = TestReceiver::start(Reply::status(200)).await;
    let auth = json!({
        "kind": "oauth2_client_credentials",
        "token_url": internal(&token_server, "/token"),
        "client_id": "id",
        "client_secret": "secret",
    });
    let (status, route) = app
        .call(
            Method::PUT,
            "/v1/routes/authed",
            Some(json!({"kind": "proxy", "url": "http://upstream.invalid/api", "auth": auth})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{route}");
    let resp = app
        .client
        .post(app.url("/async/authed/x"))
        .bearer_auth(ADMIN_TOKEN)
        .header("callback-url", "http://callback.invalid/cb")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let job: Value = resp.json().await.unwrap();
    let job = wait_job(&app, job["id"].as_str().unwrap()).await;
    assert_eq!(job["error"]["kind"], "auth", "{job}");
    assert!(
        job["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not allowed"),
        "{job}"
    );
    assert_eq!(
        token_server.count(),
        0,
        "the token endpoint was never contacted"
    );
}

pub async fn the_gateway_path_cannot_leave_the_route(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let upstream = TestReceiver::start(Reply::status(200)).await;
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/routes/api",
            Some(json!({"kind": "proxy", "url": upstream.url("/public/api")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for hostile in [
        "/async/api/%2e%2e/%2e%2e/admin",
        "/async/api/x/.%2E/.%2e/admin",
        "/async/api/a%2F..%2F..%2Fadmin",
        "/async/api/a%5C..%5Cadmin",
    ] {
        let (status, body) = raw_get(&app, hostile, &upstream.url("/cb")).await;
        assert_eq!(status, 422, "{hostile}: {body}");
        assert_eq!(body["error"]["details"]["field"], "path", "{hostile}");
    }
    assert_eq!(upstream.count(), 0);
}

/// A GET sent byte for byte (an HTTP client library would resolve the dot segments before sending).
async fn raw_get(app: &TestApp, path: &str, callback: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {ADMIN_TOKEN}\r\ncallback-url: {callback}\r\nconnection: close\r\n\r\n",
        app.addr
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

crate::on_both_stores!(
    deliveries_to_a_name_resolving_to_loopback_are_blocked,
    the_gateway_refuses_an_upstream_resolving_to_loopback,
    oauth2_token_urls_resolving_to_loopback_are_never_fetched,
    the_gateway_path_cannot_leave_the_route,
);

//! Jobs (seeds 000 and 001): long polls and the webhook rule, progress reports, the async gateway, offload.

use std::io::Read;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Digest;

use crate::helpers::{Backend, Reply, Seen, TestApp, TestReceiver, ADMIN_TOKEN};

const WAIT: Duration = Duration::from_secs(15);
/// Quick retries so tests never wait long for a callback.
const QUICK: &str = r#"{"kind": "bounded", "max_attempts": 5, "base_ms": 100, "jitter": 0.0}"#;

async fn put_route(app: &TestApp, name: &str, kind: &str, url: &str, extra: Value) -> Value {
    let mut body = json!({"kind": kind, "url": url, "retry_policy": serde_json::from_str::<Value>(QUICK).unwrap()});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, route) = app
        .call(Method::PUT, &format!("/v1/routes/{name}"), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{route}");
    route
}

/// Requests of `kind` (a webhook `type`) seen by `rx`.
fn of_type(rx: &TestReceiver, kind: &str) -> Vec<Seen> {
    rx.seen()
        .into_iter()
        .filter(|s| s.json()["type"] == kind)
        .collect()
}

async fn wait_for_type(rx: &TestReceiver, kind: &str, n: usize) -> Vec<Seen> {
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = of_type(rx, kind);
        if seen.len() >= n {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} {kind} webhooks, got {}",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn post_with(
    app: &TestApp,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    app.call_as_with_headers(path, body, headers).await
}

pub async fn a_long_poll_that_receives_the_result_suppresses_the_webhook(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let worker = TestReceiver::start(Reply::status(204)).await;
    let client = TestReceiver::start(Reply::status(204)).await;
    put_route(&app, "tx", "notify", &worker.url("/work"), json!({})).await;

    let (app_url, hook) = (app.url("/v1/jobs"), client.url("/hook"));
    let creator = tokio::spawn(async move {
        let resp = reqwest::Client::new()
            .post(app_url)
            .bearer_auth(ADMIN_TOKEN)
            .json(
                &json!({"route": "tx", "payload": {"amount": 5}, "webhook": hook, "poll": "long"}),
            )
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    });
    let notified = worker.wait_for(1, WAIT).await;
    let note = notified[0].json();
    assert_eq!(note["payload"], json!({"amount": 5}));
    let job_id = note["job_id"].as_str().unwrap().to_string();
    assert_eq!(
        notified[0].header("x-correlation-id"),
        note["correlation_id"].as_str()
    );
    assert!(
        notified[0].header("webhook-signature").is_some(),
        "worker notifications are signed"
    );

    let (status, _) = app
        .post(
            &format!("/v1/jobs/{job_id}/complete"),
            json!({"result": {"ok": true}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answered) = creator.await.unwrap();
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["status"], "succeeded");
    assert_eq!(answered["result"], json!({"ok": true}));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        of_type(&client, "job.succeeded").is_empty(),
        "the long poll got the result, so no webhook"
    );
}

pub async fn after_the_long_poll_expired_the_completion_is_sent_by_webhook(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let worker = TestReceiver::start(Reply::status(204)).await;
    let client = TestReceiver::start(Reply::status(204)).await;
    put_route(&app, "tx", "notify", &worker.url("/work"), json!({})).await;
    let started = Instant::now();
    let (status, job) = post_with(
        &app,
        "/v1/jobs",
        json!({"route": "tx", "webhook": client.url("/hook"), "poll": "long"}),
        &[("prefer", "wait=1")],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the request was held for the wait"
    );
    assert_ne!(job["status"], "succeeded");
    let id = job["id"].as_str().unwrap();
    app.post(
        &format!("/v1/jobs/{id}/complete"),
        json!({"error": {"code": "declined"}}),
    )
    .await;
    let done = wait_for_type(&client, "job.failed", 1).await;
    let body = done[0].json();
    assert_eq!(
        body["data"]["error"],
        json!({"code": "declined"}),
        "errors are delivered like results"
    );
    assert_eq!(done[0].header("webhook-id"), body["id"].as_str());
    let (status, got) = app.get(&format!("/v1/jobs/{id}?wait=1")).await;
    assert_eq!(
        (status, got["status"].as_str()),
        (StatusCode::OK, Some("failed"))
    );
}

pub async fn progress_webhooks_are_sent_only_when_the_value_changes(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let worker = TestReceiver::start(Reply::status(204)).await;
    let client = TestReceiver::start(Reply::status(204)).await;
    put_route(&app, "tx", "notify", &worker.url("/work"), json!({})).await;
    let (_, job) = app
        .post(
            "/v1/jobs",
            json!({"route": "tx", "webhook": client.url("/hook"), "progressReports": true}),
        )
        .await;
    let id = job["id"].as_str().unwrap();
    for value in [10, 10, 50, 100] {
        let (status, j) = app
            .post(
                &format!("/v1/jobs/{id}/progress"),
                json!({"progress": value}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{j}");
        assert_eq!(j["progress"], value);
    }
    let progress = wait_for_type(&client, "job.progress", 3).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        of_type(&client, "job.progress").len(),
        3,
        "10, 10, 50, 100 is three changes"
    );
    let mut values: Vec<i64> = progress
        .iter()
        .map(|s| s.json()["data"]["progress"].as_i64().unwrap())
        .collect();
    values.sort();
    assert_eq!(values, [10, 50, 100]);
    app.post(&format!("/v1/jobs/{id}/complete"), json!({"result": 1}))
        .await;
    let (status, late) = app
        .post(&format!("/v1/jobs/{id}/progress"), json!({"progress": 5}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{late}");
}

pub async fn the_gateway_answers_at_once_and_delivers_the_upstream_result(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let upstream = TestReceiver::start(Reply::slow(201, Duration::from_secs(3))).await;
    let callback = TestReceiver::start(Reply::status(204)).await;
    callback.then(&[Reply::status(502), Reply::status(502)]);
    put_route(
        &app,
        "orders",
        "proxy",
        &upstream.url("/api"),
        json!({"timeout_ms": 10000}),
    )
    .await;

    let started = Instant::now();
    let resp = app
        .client
        .post(app.url("/async/orders/v2/items?sku=42"))
        .bearer_auth(ADMIN_TOKEN)
        .header("callback-url", callback.url("/results"))
        .header("x-correlation-id", "corr-gw-1")
        .header("x-app-header", "kept")
        .json(&json!({"qty": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "answered at once, not after the upstream"
    );
    let job: Value = resp.json().await.unwrap();
    assert_eq!(job["correlation_id"], "corr-gw-1");

    let up = upstream.wait_for(1, WAIT).await;
    assert_eq!(up[0].path, "/api/v2/items");
    assert_eq!(up[0].json(), json!({"qty": 3}));
    assert_eq!(up[0].header("x-correlation-id"), Some("corr-gw-1"));
    assert_eq!(
        up[0].header("callback-url"),
        Some(callback.url("/results").as_str())
    );
    assert_eq!(up[0].header("x-app-header"), Some("kept"));
    assert!(
        up[0].header("authorization").is_none(),
        "the client's Herald token is not forwarded"
    );

    let done = callback.wait_for(3, WAIT).await;
    assert!(done.iter().all(|s| s.json()["type"] == "job.succeeded"));
    assert_eq!(done[2].header("x-correlation-id"), Some("corr-gw-1"));
    assert_eq!(done[2].json()["data"]["result"]["status"], 201);
    assert_eq!(
        done[0].header("webhook-id"),
        done[2].header("webhook-id"),
        "retries keep the webhook id"
    );
    let job_id = job["id"].as_str().unwrap();
    let (_, deliveries) = app
        .get(&format!("/v1/deliveries?reference_id={job_id}"))
        .await;
    let id = deliveries["data"][0]["id"].as_str().unwrap();
    let d = app.wait_status(id, "delivered", WAIT).await;
    assert_eq!(
        d["attempt_count"], 3,
        "the callback answered 502 twice and was retried until it took it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_and_timeouts_reach_the_callback_as_errors() {
    let app = TestApp::spawn().await;
    let failing = TestReceiver::start(Reply::status(503)).await;
    let slow = TestReceiver::start(Reply::slow(200, Duration::from_secs(5))).await;
    let callback = TestReceiver::start(Reply::status(204)).await;
    put_route(&app, "down", "proxy", &failing.url("/x"), json!({})).await;
    put_route(
        &app,
        "slow",
        "proxy",
        &slow.url("/x"),
        json!({"timeout_ms": 300}),
    )
    .await;
    for route in ["down", "slow"] {
        let resp = app
            .client
            .get(app.url(&format!("/async/{route}/thing")))
            .bearer_auth(ADMIN_TOKEN)
            .header("callback-url", callback.url(&format!("/{route}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
    }
    let failed = wait_for_type(&callback, "job.failed", 2).await;
    let by_path = |p: &str| failed.iter().find(|s| s.path == p).unwrap().json();
    assert_eq!(by_path("/down")["data"]["error"]["status"], 503);
    assert_eq!(by_path("/slow")["data"]["error"]["kind"], "timeout");

    let resp = app
        .client
        .post(app.url("/async/down/x"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "missing_callback_url");
}

/// A 5 MiB result through `/complete`, over five times the API's 1 MiB body limit.
pub async fn a_large_result_is_offloaded_and_downloadable_until_its_url_expires(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |c| c.blobs.blob_url_ttl_secs = 2).await else {
        return;
    };
    let worker = TestReceiver::start(Reply::status(204)).await;
    let callback = TestReceiver::start(Reply::status(204)).await;
    put_route(&app, "big", "notify", &worker.url("/work"), json!({})).await;
    let (_, job) = app
        .post(
            "/v1/jobs",
            json!({"route": "big", "webhook": callback.url("/hook")}),
        )
        .await;
    let id = job["id"].as_str().unwrap();
    let chunk: String = (0..5 * 1024 * 1024 / 64)
        .map(|i| format!("{i:063x}"))
        .collect::<Vec<_>>()
        .join("\n");
    let result = json!({"report": chunk});
    let (status, done) = app
        .post(
            &format!("/v1/jobs/{id}/complete"),
            json!({"result": result}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");

    let hook = wait_for_type(&callback, "job.succeeded", 1).await[0].json();
    let indirect = &hook["data"]["result_indirect"];
    assert!(
        hook["data"].get("result").is_none(),
        "an offloaded result is not inline"
    );
    assert_eq!(indirect["content_encoding"], "gzip");
    let expected = result.to_string();
    assert_eq!(indirect["size"], expected.len() as u64);
    assert_eq!(
        indirect["sha256"],
        hex(&sha2::Sha256::digest(expected.as_bytes()))
    );

    let url = indirect["url"].as_str().unwrap();
    let gz = reqwest::get(url).await.unwrap();
    assert_eq!(gz.status().as_u16(), 200);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gz.bytes().await.unwrap()[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(
        hex(&sha2::Sha256::digest(&plain)),
        indirect["sha256"].as_str().unwrap()
    );

    let tampered = url.replace("sig=", "sig=00");
    assert_eq!(
        reqwest::get(&tampered).await.unwrap().status().as_u16(),
        403
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(
        reqwest::get(url).await.unwrap().status().as_u16(),
        403,
        "expired"
    );
    let (_, fresh) = app.get(&format!("/v1/jobs/{id}")).await;
    let again = fresh["result_indirect"]["url"].as_str().unwrap();
    assert_eq!(
        reqwest::get(again).await.unwrap().status().as_u16(),
        200,
        "reading the job signs a fresh URL"
    );
}

/// A result over `max_result_bytes` is refused, and the job can still be completed.
pub async fn results_over_the_limit_are_refused(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |c| c.max_result_bytes = 2 * 1024 * 1024).await
    else {
        return;
    };
    let worker = TestReceiver::start(Reply::status(204)).await;
    put_route(&app, "big", "notify", &worker.url("/work"), json!({})).await;
    let (_, job) = app.post("/v1/jobs", json!({"route": "big"})).await;
    let id = job["id"].as_str().unwrap();
    // Only the head is sent: the declared size alone gets the 413, before any of the body is read.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/jobs/{id}/complete HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        app.addr,
        3 * 1024 * 1024
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = socket.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    let (status, still) = app.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{still}");
    let (status, done) = app
        .post(
            &format!("/v1/jobs/{id}/complete"),
            json!({"result": {"ok": true}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["result"]["ok"], true);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_concurrent_long_polls_are_all_answered() {
    let app = TestApp::spawn().await;
    let worker = TestReceiver::start(Reply::status(204)).await;
    put_route(&app, "many", "notify", &worker.url("/work"), json!({})).await;
    let mut ids = Vec::new();
    for _ in 0..2000 {
        let (_, job) = app.post("/v1/jobs", json!({"route": "many"})).await;
        ids.push(job["id"].as_str().unwrap().to_string());
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut polls = Vec::new();
    for id in &ids {
        let (client, url) = (client.clone(), app.url(&format!("/v1/jobs/{id}?wait=60")));
        polls.push(tokio::spawn(async move {
            let resp = client
                .get(url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            resp.json::<Value>().await.unwrap()
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while health_waiting(&app).await < 2000 {
        assert!(Instant::now() < deadline, "long polls did not all arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_mb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.to_string())
        })
        .unwrap_or_default();
    println!("2000 long polls held open; test process (server + clients) {rss_mb}");
    for id in &ids {
        app.post(&format!("/v1/jobs/{id}/complete"), json!({"result": id}))
            .await;
    }
    for poll in polls {
        let job = poll.await.unwrap();
        assert_eq!(job["status"], "succeeded");
        assert_eq!(job["result"], job["id"]);
    }
}

async fn health_waiting(app: &TestApp) -> u64 {
    let (_, health) = app.get("/health").await;
    health["jobs"]["long_polls"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn routes_declared_in_the_config_file_are_applied_at_start() {
    let declared: toml::Table = r#"
        name = "payments"
        kind = "notify"
        url = "http://127.0.0.1:9/pay"
        timeout_ms = 1000
        [auth]
        kind = "bearer"
        token = "service-token"
    "#
    .parse()
    .unwrap();
    let app = TestApp::spawn_with(|c| c.routes = vec![declared.clone()]).await;
    let (status, route) = app.get("/v1/routes/payments").await;
    assert_eq!(status, StatusCode::OK, "{route}");
    assert_eq!(
        (route["kind"].as_str(), route["timeout_ms"].as_u64()),
        (Some("notify"), Some(1000))
    );
    assert_eq!(
        route["auth"],
        json!({"kind": "bearer"}),
        "credentials are never shown"
    );

    let mut bad = declared;
    bad.insert("kind".into(), toml::Value::String("teleport".into()));
    let dir = crate::helpers::TempDir::new();
    let mut config = crate::helpers::test_config(dir.path());
    config.routes = vec![bad];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = herald_server::start(config, listener)
        .await
        .err()
        .expect("a bad route stops start-up");
    assert!(
        err.to_string().contains("routes[0]") && err.to_string().contains("kind"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_notifications_authenticate_with_oauth2_and_refresh_after_a_401() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let issued = Arc::new(AtomicU32::new(0));
    let counter = issued.clone();
    let token_endpoint = axum::Router::new().route(
        "/token",
        axum::routing::post(move |body: String| {
            let counter = counter.clone();
            async move {
                assert!(body.contains("grant_type=client_credentials"), "{body}");
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                axum::Json(json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": 3600}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token_url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, token_endpoint).await.unwrap() });

    let app = TestApp::spawn().await;
    let worker = TestReceiver::start(Reply::status(204)).await;
    worker.then(&[Reply::status(401)]);
    let auth = json!({"kind": "oauth2_client_credentials", "token_url": token_url, "client_id": "herald", "client_secret": "s3cret"});
    put_route(
        &app,
        "secure",
        "notify",
        &worker.url("/work"),
        json!({"auth": auth}),
    )
    .await;
    app.post("/v1/jobs", json!({"route": "secure"})).await;
    worker.wait_for(2, WAIT).await;
    app.post("/v1/jobs", json!({"route": "secure"})).await;
    let seen = worker.wait_for(3, WAIT).await;
    let bearer: Vec<&str> = seen
        .iter()
        .map(|s| s.header("authorization").unwrap())
        .collect();
    assert_eq!(bearer[0], "Bearer tok-1");
    assert!(
        bearer[1..].iter().all(|b| *b == "Bearer tok-2"),
        "after the 401 a new token is fetched and reused: {bearer:?}"
    );
    assert_eq!(issued.load(Ordering::SeqCst), 2, "one fetch, one refresh");
}

crate::on_both_stores!(
    a_long_poll_that_receives_the_result_suppresses_the_webhook,
    after_the_long_poll_expired_the_completion_is_sent_by_webhook,
    progress_webhooks_are_sent_only_when_the_value_changes,
    the_gateway_answers_at_once_and_delivers_the_upstream_result,
    a_large_result_is_offloaded_and_downloadable_until_its_url_expires,
    results_over_the_limit_are_refused,
);

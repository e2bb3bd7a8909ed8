//! No input gets a 5xx: every route is called with hostile path segments, query strings and bodies (NUL
//! bytes, invalid UTF-8, overflowing numbers, oversized fields, wrong shapes) on both stores, and every
//! answer must be a 2xx or a 4xx with the JSON error object.

use std::time::Duration;

use axum::http::StatusCode;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Backend, Reply, TestApp, TestReceiver, ADMIN_TOKEN};

/// Every operation of the node's own OpenAPI document, each path parameter as `{id}`: a new route is
/// walked without being listed here.
async fn routes(app: &TestApp) -> Vec<(String, String)> {
    let doc: Value = reqwest::get(format!("http://{}/openapi.json", app.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let mut template = String::new();
        let mut rest = path.as_str();
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
            template.push_str(&rest[..open]);
            template.push_str("{id}");
            rest = &rest[close..];
        }
        template.push_str(rest);
        for method in item.as_object().expect("path item").keys() {
            if method != "parameters" {
                routes.push((method.to_ascii_uppercase(), template.clone()));
            }
        }
    }
    assert!(
        routes.len() >= 60,
        "the document lists {} operations",
        routes.len()
    );
    routes
}

/// Path segments a hostile client would try.
const SEGMENTS: &[&str] = &["%00", "a%00b", "%FF%FE", "%C0%AF", "..", "%2e%2e", "nope"];

/// Query strings a hostile client would try.
const QUERIES: &[&str] = &[
    "",
    "limit=-1",
    "limit=99999999999999999999",
    "limit=0",
    "cursor=%00",
    "cursor=not-a-cursor",
    "cursor=ZGx2XwAAAA",
    "page=9223372036854775807",
    "page=-1",
    "page_size=99999999999",
    "reference_id=%00",
    "reference_id=%FF",
    "status=%00",
    "status=bogus",
    "since=not-a-time",
    "since=99999-01-01T00:00:00Z",
    "event_type=%00",
    "wait=99999999999999999999",
    "wait=-5",
    "webhook_url=%00",
];

fn bodies() -> Vec<(&'static str, String)> {
    let nul = "a\\u0000b";
    let deep = "[".repeat(5000) + &"]".repeat(5000);
    vec![
        ("none", String::new()),
        ("not json", "{nope".into()),
        ("null", "null".into()),
        ("array", "[]".into()),
        ("empty", "{}".into()),
        ("deep", deep),
        ("lone surrogate", r#"{"url": "\ud800"}"#.into()),
        (
            "nul everywhere",
            format!(
                r#"{{"url": "http://h.example/{nul}", "description": "{nul}", "event_type": "{nul}",
                "event_types": ["{nul}"], "route": "{nul}", "kind": "{nul}", "name": "{nul}",
                "idempotency_key": "{nul}", "reference_id": "{nul}", "webhookUrl": "{nul}",
                "eventName": "{nul}", "headers": {{"x-a": "{nul}"}}, "secret": "{nul}",
                "payload": {{"k": "{nul}"}}}}"#
            ),
        ),
        (
            "huge numbers",
            r#"{"url": "http://h.example/", "timeout_ms": 1e400, "max_in_flight": 99999999999999999999,
               "rate_limit_per_s": -1, "progress": 1e999}"#
                .into(),
        ),
        (
            "wrong types",
            r#"{"url": 5, "event_types": "x", "headers": [], "metadata": "m", "retry_policy": 7,
               "payload": null, "result": 1, "disabled": "yes"}"#
                .into(),
        ),
        (
            "oversized fields",
            json!({
                "url": "http://h.example/",
                "description": "d".repeat(100_000),
                "metadata": {"k": "v".repeat(100_000)},
                "headers": (0..50).map(|i| (format!("x-h{i}"), json!("v".repeat(5_000)))).collect::<serde_json::Map<_, _>>(),
            })
            .to_string(),
        ),
    ]
}

/// Send one request; a 5xx (or an error answer that is not the JSON error object) fails the test.
/// A connection per request: an early error answer may close a keep-alive connection before its request
/// body was read, and that race between client and server is not what this test is about.
async fn probe(
    client: &reqwest::Client,
    app: &TestApp,
    method: &str,
    path: &str,
    body: &str,
    what: &str,
) {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client
        .request(method.clone(), format!("http://{}{path}", app.addr))
        .bearer_auth(ADMIN_TOKEN)
        .header("callback-url", "http://cb.example/x")
        .timeout(Duration::from_secs(20));
    if !body.is_empty() {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path} ({what}): {e:?}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert!(
        status < 500,
        "{method} {path} with {what} answered {status}: {text}"
    );
    if status >= 400 {
        let parsed: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
            panic!("{method} {path} with {what} answered {status} without JSON: {text}")
        });
        assert!(
            parsed["error"]["code"].is_string() && parsed["error"]["message"].is_string(),
            "{method} {path} with {what}: {text}"
        );
    }
}

/// Real records to aim at besides the made-up ids: an endpoint, a delivery, a route and a job.
async fn real_ids(app: &TestApp, rx: &TestReceiver) -> Vec<String> {
    let ep = app.endpoint(json!({"url": rx.url("/h")})).await;
    let (_, event) = app
        .post(
            "/v1/events",
            json!({"event_type": "a.b", "payload": {"x": 1}}),
        )
        .await;
    let (_, listed) = app.get("/v1/deliveries").await;
    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/routes/work",
            Some(json!({"kind": "notify", "url": rx.url("/w")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, job) = app.post("/v1/jobs", json!({"route": "work"})).await;
    [
        &ep["id"],
        &event["id"],
        &listed["data"][0]["id"],
        &job["id"],
        &json!("work"),
    ]
    .iter()
    .filter_map(|v| v.as_str().map(str::to_string))
    .collect()
}

pub async fn every_route_answers_hostile_input_with_a_4xx(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let rx = TestReceiver::start(Reply::status(204)).await;
    let mut ids: Vec<String> = SEGMENTS.iter().map(|s| s.to_string()).collect();
    ids.push("x".repeat(5000));
    ids.extend(real_ids(&app, &rx).await);
    let bodies = bodies();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for (method, template) in &routes(&app).await {
        let method = method.as_str();
        let paths: Vec<String> = if template.contains("{id}") {
            ids.iter().map(|id| template.replace("{id}", id)).collect()
        } else {
            vec![template.to_string()]
        };
        for path in &paths {
            for query in QUERIES {
                let target = if query.is_empty() {
                    path.clone()
                } else {
                    format!("{path}?{query}")
                };
                probe(
                    &client,
                    &app,
                    method,
                    &target,
                    "",
                    &format!("query {query:?}"),
                )
                .await;
            }
            if method != "GET" && method != "DELETE" {
                for (what, body) in &bodies {
                    probe(&client, &app, method, path, body, &format!("body {what}")).await;
                }
            }
        }
    }
}

pub async fn stored_text_fields_refuse_nul_and_oversized_values(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let url = "http://h.example/hook";
    let cases = [
        (json!({"url": url, "description": "a\u{0}b"}), "description"),
        (
            json!({"url": url, "description": "d".repeat(1025)}),
            "description",
        ),
        (
            json!({"url": url, "metadata": {"k": "v".repeat(17 * 1024)}}),
            "metadata",
        ),
        (
            json!({"url": url, "headers": (0..33).map(|i| (format!("x-h{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
            "headers",
        ),
        (
            json!({"url": url, "headers": {"x-big": "v".repeat(4097)}}),
            "headers.x-big",
        ),
        (
            json!({"url": url, "event_types": ["a\u{0}"]}),
            "event_types.0",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = app.post("/v1/endpoints", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["error"]["details"]["field"], field, "{answer}");
    }
    // NUL inside the client's own JSON payload is kept as written.
    let (status, event) = app
        .post(
            "/v1/events",
            json!({"event_type": "a.b", "payload": {"note": "a\u{0}b"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{event}");
    let (_, read) = app
        .get(&format!("/v1/events/{}", event["id"].as_str().unwrap()))
        .await;
    assert_eq!(read["payload"]["note"], "a\u{0}b");
    let (status, answer) = app.get("/webhook-statuses?page=9223372036854775807").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

crate::on_both_stores!(
    every_route_answers_hostile_input_with_a_4xx,
    stored_text_fields_refuse_nul_and_oversized_values,
);

//! The dashboard's server side over real connections: its page and assets under a strict
//! Content-Security-Policy, the statistics its charts read (`/v1/stats`), and an endpoint's delivery log
//! (`/v1/endpoints/{id}/attempts`). The page itself is driven in headless Chromium by `.ci/dashboard-e2e`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Backend, Reply, TestApp, TestReceiver};
use crate::on_both_stores;

on_both_stores!(
    the_dashboard_is_served_with_a_strict_policy,
    stats_count_attempts_per_endpoint_and_minute,
    the_delivery_log_lists_every_attempt,
);

const WAIT: Duration = Duration::from_secs(10);

async fn fetch(app: &TestApp, path: &str) -> (u16, String, String, String) {
    let res = reqwest::get(app.url(path)).await.expect("the node answers");
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (status, content_type, csp) = (
        res.status().as_u16(),
        header("content-type"),
        header("content-security-policy"),
    );
    (status, content_type, csp, res.text().await.unwrap())
}

pub async fn the_dashboard_is_served_with_a_strict_policy(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let (status, content_type, csp, page) = fetch(&app, "/").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(rule), "{rule} missing from {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "no inline code: {page}"
    );
    for (asset, kind) in [
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/app.css", "text/css"),
        ("/dashboard/favicon.svg", "image/svg+xml"),
    ] {
        assert!(page.contains(asset), "the page links {asset}");
        let (status, content_type, csp, body) = fetch(&app, asset).await;
        assert_eq!(status, 200, "{asset}");
        assert!(content_type.starts_with(kind), "{asset}: {content_type}");
        assert!(csp.contains("default-src 'none'"));
        assert!(!body.is_empty());
    }
    let (_, _, _, script) = fetch(&app, "/dashboard/app.js").await;
    for other_host in ["https://", "//cdn", "googleapis", "unpkg", "jsdelivr"] {
        let loads = script.contains(&format!("fetch(\"{other_host}"))
            || script.contains(&format!("src=\"{other_host}"));
        assert!(!loads, "the script loads from {other_host}");
    }
    let (status, content_type, _, body) = fetch(&app, "/dashboard/../openapi.json.bak").await;
    assert_eq!(status, 404, "{body}");
    assert!(content_type.starts_with("application/json"));
    let (status, _, _, body) = fetch(&app, "/dashboard/secrets.txt").await;
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        "not_found"
    );
}

pub async fn stats_count_attempts_per_endpoint_and_minute(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let ok = TestReceiver::start(Reply::slow(204, Duration::from_millis(30))).await;
    let bad = TestReceiver::start(Reply::status(500)).await;
    let good = app
        .endpoint(json!({"url": ok.url("/ok"), "event_types": ["order.*"]}))
        .await;
    let failing = app
        .endpoint(json!({
            "url": bad.url("/bad"), "event_types": ["invoice.*"],
            "retry_policy": {"kind": "schedule", "delays_ms": [10]},
        }))
        .await;
    let mut ids = Vec::new();
    for (event_type, status) in [
        ("order.a", "delivered"),
        ("order.b", "delivered"),
        ("order.c", "delivered"),
        ("invoice.a", "failed"),
    ] {
        let (code, body) = app
            .post(
                "/v1/events",
                json!({"event_type": event_type, "payload": {}}),
            )
            .await;
        assert_eq!(code.as_u16(), 202, "{body}");
        ids.push((
            body["deliveries"][0]["id"].as_str().unwrap().to_string(),
            status,
        ));
    }
    for (id, status) in &ids {
        app.wait_status(id, status, WAIT).await;
    }

    let (status, stats) = app.get("/v1/stats").await;
    assert_eq!(status.as_u16(), 200, "{stats}");
    assert_eq!(stats["bucket_secs"], 60);
    assert_eq!(stats["totals"]["delivered"], 3, "{stats}");
    assert_eq!(stats["totals"]["retried"], 1);
    assert_eq!(stats["totals"]["failed"], 1);
    assert_eq!(stats["totals"]["success_rate"], 0.6);
    let p50 = stats["totals"]["p50_ms"].as_u64().unwrap();
    assert!((50..=100).contains(&p50), "a 30 ms receiver: {stats}");
    let buckets = stats["buckets"].as_array().unwrap();
    assert!(!buckets.is_empty() && buckets.len() <= 2, "{stats}");
    let delivered: u64 = buckets
        .iter()
        .map(|b| b["delivered"].as_u64().unwrap())
        .sum();
    assert_eq!(delivered, 3);
    let failed = stats["outstanding"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["status"] == "failed")
        .unwrap();
    assert_eq!(failed["count"], 1);
    assert_eq!(stats["oldest_outstanding"], Value::Null);

    let good_id = good["id"].as_str().unwrap();
    let (_, only_good) = app
        .get(&format!("/v1/stats?endpoint_id={good_id}&bucket=3600"))
        .await;
    assert_eq!(only_good["totals"]["delivered"], 3, "{only_good}");
    assert_eq!(only_good["totals"]["failed"], 0);
    assert_eq!(only_good["bucket_secs"], 3600);
    let failing_id = failing["id"].as_str().unwrap();
    let (_, only_failing) = app
        .get(&format!("/v1/stats?endpoint_id={failing_id}"))
        .await;
    assert_eq!(only_failing["totals"]["success_rate"], 0.0);

    // A range before the attempts has none.
    let (_, earlier) = app
        .get("/v1/stats?since=2020-01-01T00:00:00Z&until=2020-01-02T00:00:00Z&bucket=3600")
        .await;
    assert_eq!(earlier["totals"]["delivered"], 0, "{earlier}");
    assert_eq!(earlier["totals"]["p50_ms"], Value::Null);

    // Another tenant sees only its own.
    let (_, tenant) = app.post("/v1/tenants", json!({"id": "elsewhere"})).await;
    let token = tenant["token"].as_str().unwrap();
    let (status, theirs) = app.call_as(token, Method::GET, "/v1/stats", None).await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(theirs["totals"]["delivered"], 0, "{theirs}");
    let (status, _) = app
        .call_as(
            token,
            Method::GET,
            &format!("/v1/stats?endpoint_id={good_id}"),
            None,
        )
        .await;
    assert_eq!(status.as_u16(), 404, "another tenant's endpoint");

    for (query, code) in [
        ("bucket=30", "invalid_bucket"),
        ("bucket=90", "invalid_bucket"),
        ("since=yesterday", "invalid_since"),
        ("since=2020-01-01T00:00:00Z", "invalid_range"),
        (
            "since=2026-01-01T00:00:00Z&until=2026-01-20T00:00:00Z",
            "invalid_bucket",
        ),
    ] {
        let (status, body) = app.get(&format!("/v1/stats?{query}")).await;
        assert_eq!(status.as_u16(), 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], code, "{query}");
    }
}

pub async fn the_delivery_log_lists_every_attempt(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let rx = TestReceiver::start(Reply::status(503)).await;
    let ep = app
        .endpoint(json!({
            "url": rx.url("/busy"), "event_types": ["*"],
            "retry_policy": {"kind": "schedule", "delays_ms": [10, 10]},
        }))
        .await;
    let id = ep["id"].as_str().unwrap();
    let (_, published) = app
        .post(
            "/v1/events",
            json!({"event_type": "a.b", "payload": {"n": 1}}),
        )
        .await;
    let delivery = published["deliveries"][0]["id"].as_str().unwrap();
    app.wait_status(delivery, "failed", WAIT).await;

    let (status, log) = app.get(&format!("/v1/endpoints/{id}/attempts")).await;
    assert_eq!(status.as_u16(), 200, "{log}");
    let entries = log["data"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["id"], delivery);
    let attempts = entries[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{log}");
    for (n, a) in attempts.iter().enumerate() {
        assert_eq!(a["number"], n as u64 + 1);
        assert_eq!(a["status_code"], 503);
        assert!(a["duration_ms"].is_u64() && a["started_at"].is_string());
    }

    let (_, delivered) = app
        .get(&format!("/v1/endpoints/{id}/attempts?status=delivered"))
        .await;
    assert_eq!(delivered["data"], json!([]));
    let (status, body) = app
        .get(&format!("/v1/endpoints/{id}/attempts?status=lost"))
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (400, Some("invalid_status"))
    );
    let (status, _) = app.get("/v1/endpoints/ep_missing/attempts").await;
    assert_eq!(status.as_u16(), 404);
}

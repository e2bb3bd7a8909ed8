//! The seed compatibility routes (SPEC §4), end to end over the same core.

use std::time::Duration;

use axum::http::StatusCode;
use reqwest::Method;
use serde_json::json;

use crate::helpers::Backend;
use crate::helpers::{Reply, TestApp, TestReceiver};

const WAIT: Duration = Duration::from_secs(15);

pub async fn seed_002_broker_registers_lists_and_fans_out(backend: Backend) {
    let app = match TestApp::spawn_on(backend, |_| {}).await {
        Some(app) => app,
        None => return,
    };
    let rx = TestReceiver::start(Reply::status(200)).await;
    for path in ["/one", "/two"] {
        let (status, reg) = app
            .post(
                "/api/v0/webhooks",
                json!({"eventName": "upload_image", "webhookUrl": rx.url(path)}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reg}");
        assert_eq!(reg["eventName"], "upload_image");
    }
    let (status, again) = app
        .post(
            "/api/v0/webhooks",
            json!({"eventName": "upload_image", "webhookUrl": rx.url("/one")}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "registering the same pair twice is a no-op: {again}"
    );
    app.post(
        "/api/v0/webhooks",
        json!({"eventName": "other", "webhookUrl": rx.url("/three")}),
    )
    .await;

    let (_, page1) = app.get("/api/v0/webhooks?page_size=2&offset=0").await;
    assert_eq!(page1["data"].as_array().unwrap().len(), 2);
    assert_eq!(page1["next_offset"], 2);
    let (_, page2) = app.get("/api/v0/webhooks?page_size=2&offset=2").await;
    assert_eq!(page2["data"].as_array().unwrap().len(), 1);
    assert!(page2["next_offset"].is_null());

    let (_, by_event) = app.get("/api/v0/webhooks/upload_image").await;
    assert_eq!(by_event["webhooks"].as_array().unwrap().len(), 2);

    let (status, trig) = app
        .post(
            "/api/v0/trigger-event/upload_image",
            json!({"image": "cat.png"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{trig}");
    assert_eq!(trig["queued"], 2);
    let seen = rx.wait_for(2, WAIT).await;
    let mut paths: Vec<_> = seen.iter().map(|s| s.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, ["/one", "/two"]);
    assert_eq!(seen[0].json()["data"], json!({"image": "cat.png"}));
    assert_eq!(seen[0].json()["type"], "upload_image");

    let bad = app
        .post(
            "/api/v0/webhooks",
            json!({"eventName": "x", "webhookUrl": "gopher://x"}),
        )
        .await;
    assert_eq!(bad.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.1["error"]["details"]["field"], "webhookUrl");
}

pub async fn seed_003_status_api_tracks_queues_and_cleans_up(backend: Backend) {
    let app = match TestApp::spawn_on(backend, |_| {}).await {
        Some(app) => app,
        None => return,
    };
    let ok = TestReceiver::start(Reply::status(200)).await;
    let (status, queued) = app
        .post(
            &format!("/test-webhook?webhook_url={}", ok.url("/webhook-receiver")),
            json!({"test_payload": {"key": "value"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{queued}");
    assert_eq!(queued["status"], "webhook_queued");
    let reference = queued["reference_id"].as_str().unwrap().to_string();
    assert!(reference.starts_with("TEST-"));
    let webhook_id = format!("{reference}_{}", queued["task_id"].as_str().unwrap());
    assert_eq!(queued["webhook_id"], webhook_id.as_str());
    let seen = ok.wait_for(1, WAIT).await;
    assert_eq!(seen[0].json(), json!({"test_payload": {"key": "value"}}));

    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, st) = app.get(&format!("/webhook-status/{webhook_id}")).await;
        assert_eq!(status, StatusCode::OK, "{st}");
        if st["status"] == "delivered" {
            assert_eq!(st["attempts"], 1);
            assert_eq!(st["reference_id"], reference.as_str());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{st}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 4xx: retried once, then failed (seed 003's rule).
    let gone = TestReceiver::start(Reply::status(404)).await;
    let (_, q404) = app
        .post(
            &format!("/test-webhook?webhook_url={}", gone.url("/x")),
            json!({}),
        )
        .await;
    let id404 = q404["webhook_id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, st) = app.get(&format!("/webhook-status/{id404}")).await;
        if st["status"] == "failed" {
            assert_eq!(st["attempts"], 2, "{st}");
            assert_eq!(st["last_status_code"], 404);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (_, listed) = app
        .get(&format!(
            "/webhook-statuses?reference_id={reference}&page=1&page_size=10"
        ))
        .await;
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["items"][0]["webhook_id"], webhook_id.as_str());
    let (_, failed) = app.get("/webhook-statuses?status=failed").await;
    assert_eq!(failed["total"], 1);

    let invalid = app
        .post("/test-webhook?webhook_url=notaurl", json!({}))
        .await;
    assert_eq!(invalid.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid.1["error"]["details"]["field"], "webhook_url");

    let (status, cleaned) = app
        .post(
            "/webhook-cleanup?status=failed&older_than_days=0",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cleaned["deleted"], 1);
    let (status, _) = app.get(&format!("/webhook-status/{id404}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, deleted) = app
        .call(
            Method::DELETE,
            &format!("/webhook-status/{webhook_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    let (status, _) = app.get(&format!("/webhook-status/{webhook_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, bulk) = app
        .call(Method::DELETE, "/webhook-statuses?status=delivered", None)
        .await;
    assert_eq!(bulk["deleted"], 0);
}

crate::on_both_stores!(
    seed_002_broker_registers_lists_and_fans_out,
    seed_003_status_api_tracks_queues_and_cleans_up
);

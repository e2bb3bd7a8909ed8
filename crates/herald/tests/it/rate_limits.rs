//! The per-tenant publish rate limit: past its burst a tenant is answered 429 with `Retry-After`; other
//! tenants are not held back.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::TestApp;

async fn publish(app: &TestApp, token: &str) -> (u16, Option<String>, Value) {
    let resp = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(token)
        .json(&json!({"event_type": "tick", "payload": {}}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry_after, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_publish_rate_is_told_when_to_retry() {
    let app = TestApp::spawn_with(|c| {
        c.tenant_publish_rate_per_s = Some(2);
        c.tenant_publish_burst = Some(3);
    })
    .await;
    let admin = app.token.clone();
    for _ in 0..3 {
        assert_eq!(publish(&app, &admin).await.0, 202);
    }
    let (status, retry_after, body) = publish(&app, &admin).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    let wait_ms = body["error"]["details"]["retry_after_ms"].as_u64().unwrap();
    assert!((1..=500).contains(&wait_ms), "{wait_ms}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    let (_, tenant) = app.post("/v1/tenants", json!({"id": "calm"})).await;
    let (status, _, _) = publish(&app, tenant["token"].as_str().unwrap()).await;
    assert_eq!(status, 202, "another tenant has its own budget");
    // The seed 002 trigger is a publish too.
    let resp = app
        .client
        .post(app.url("/api/v0/trigger-event/tick"))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    tokio::time::sleep(Duration::from_millis(wait_ms + 50)).await;
    assert_eq!(
        publish(&app, &admin).await.0,
        202,
        "admitted once the wait is over"
    );
}

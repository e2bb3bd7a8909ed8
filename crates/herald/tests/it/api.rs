//! Bad input gets a clear JSON error with the right status, never a 5xx; auth and tenant isolation.

use axum::http::StatusCode;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::Backend;
use crate::helpers::TestApp;

async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .request(method, app.url(path))
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let value: Value = resp.json().await.expect("every answer is JSON");
    (status, value)
}

fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
    assert!(answer.1["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

pub async fn bad_input_is_answered_with_json_errors(backend: Backend) {
    let app = match TestApp::spawn_on(backend, |c| c.max_payload_bytes = 4096).await {
        Some(app) => app,
        None => return,
    };
    let t = Some(app.token.as_str());

    assert_error(
        &raw(&app, Method::POST, "/v1/endpoints", t, "{\"url\":").await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );
    assert_error(
        &raw(&app, Method::POST, "/v1/events", t, "").await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );

    let missing = raw(&app, Method::POST, "/v1/events", t, r#"{"payload": {}}"#).await;
    assert_error(
        &missing,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(missing.1["error"]["details"]["field"], "event_type");

    let mistyped = raw(
        &app,
        Method::POST,
        "/v1/endpoints",
        t,
        r#"{"url": "http://127.0.0.1:1/", "timeout_ms": "x"}"#,
    )
    .await;
    assert_error(
        &mistyped,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(mistyped.1["error"]["details"]["field"], "timeout_ms");

    let bad_policy = raw(
        &app,
        Method::POST,
        "/v1/endpoints",
        t,
        r#"{"url": "http://127.0.0.1:1/", "retry_policy": {"kind": "bounded", "jitter": 3}}"#,
    )
    .await;
    assert_error(
        &bad_policy,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(bad_policy.1["error"]["details"]["field"], "retry_policy");

    for url in [
        "ftp://example.com/x",
        "http://",
        "not a url",
        "mailto:a@b.c",
    ] {
        let body = json!({"url": url}).to_string();
        let answer = raw(&app, Method::POST, "/v1/endpoints", t, &body).await;
        assert_error(
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert_eq!(answer.1["error"]["details"]["field"], "url");
        let direct = json!({"url": url, "payload": {}}).to_string();
        assert_error(
            &raw(&app, Method::POST, "/v1/deliveries", t, &direct).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
    }
    let (_, listed) = app.get("/v1/endpoints").await;
    assert_eq!(listed["data"], json!([]), "nothing was stored");
    let (_, listed) = app.get("/v1/deliveries").await;
    assert_eq!(listed["data"], json!([]), "nothing was stored");

    let big = json!({"event_type": "x", "payload": "a".repeat(5000)}).to_string();
    assert_error(
        &raw(&app, Method::POST, "/v1/events", t, &big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );

    assert_error(
        &raw(&app, Method::GET, "/v1/deliveries/dlv_nope", t, "").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &raw(&app, Method::GET, "/v1/endpoints/ep_nope", t, "").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &raw(&app, Method::POST, "/v1/deliveries/dlv_nope/retry", t, "").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &raw(&app, Method::GET, "/v1/nothing-here", t, "").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &raw(&app, Method::GET, "/v1/deliveries?limit=many", t, "").await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    assert_error(
        &raw(&app, Method::GET, "/v1/deliveries?cursor=bm9wZQ", t, "").await,
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
    );
    assert_error(
        &raw(&app, Method::GET, "/v1/deliveries?status=lost", t, "").await,
        StatusCode::BAD_REQUEST,
        "invalid_status",
    );
    assert_error(
        &raw(&app, Method::GET, "/v1/deliveries?limit=0", t, "").await,
        StatusCode::BAD_REQUEST,
        "invalid_limit",
    );
    assert_error(
        &raw(&app, Method::DELETE, "/v1/deliveries", t, "").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    assert_error(
        &raw(&app, Method::GET, "/v1/endpoints", None, "").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &raw(&app, Method::GET, "/v1/endpoints", Some("wrong-token"), "").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    let (status, health) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    let (status, health) = app.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["store"]["reachable"], true);
    assert!(health["queue"]["due"].is_u64());
}

pub async fn tenants_are_isolated(backend: Backend) {
    let app = match TestApp::spawn_on(backend, |_| {}).await {
        Some(app) => app,
        None => return,
    };
    let (status, tenant) = app.post("/v1/tenants", json!({"id": "acme"})).await;
    assert_eq!(status, StatusCode::CREATED, "{tenant}");
    let acme_token = tenant["token"].as_str().unwrap().to_string();
    let (status, _) = app.post("/v1/tenants", json!({"id": "acme"})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    let default_ep = app.endpoint(json!({"url": "http://127.0.0.1:9/x"})).await;
    let path = format!("/v1/endpoints/{}", default_ep["id"].as_str().unwrap());
    let (status, _) = app.call_as(&acme_token, Method::GET, &path, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another tenant's endpoint is invisible"
    );
    let (status, list) = app
        .call_as(&acme_token, Method::GET, "/v1/endpoints", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"], json!([]));

    let (status, _) = app
        .call_as(&acme_token, Method::GET, "/v1/tenants", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let resp = app
        .client
        .get(app.url("/v1/endpoints"))
        .bearer_auth(&acme_token)
        .header("x-herald-tenant", "default")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    // The admin acts on a tenant through x-herald-tenant.
    let resp = app
        .client
        .post(app.url("/v1/endpoints"))
        .bearer_auth(&app.token)
        .header("x-herald-tenant", "acme")
        .json(&json!({"url": "http://127.0.0.1:9/acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let (_, list) = app
        .call_as(&acme_token, Method::GET, "/v1/endpoints", None)
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let resp = app
        .client
        .get(app.url("/v1/endpoints"))
        .bearer_auth(&app.token)
        .header("x-herald-tenant", "nobody")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
}

pub async fn endpoints_can_be_patched_rotated_and_deleted(backend: Backend) {
    let app = match TestApp::spawn_on(backend, |_| {}).await {
        Some(app) => app,
        None => return,
    };
    let ep = app
        .endpoint(json!({"url": "http://127.0.0.1:9/x", "description": "first"}))
        .await;
    let id = ep["id"].as_str().unwrap();
    let old_secret = ep["secret"].as_str().unwrap().to_string();
    assert!(old_secret.starts_with("whsec_"));
    let (status, patched) = app
        .call(
            Method::PATCH,
            &format!("/v1/endpoints/{id}"),
            Some(json!({"disabled": true, "max_in_flight": 4})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["disabled"], true);
    assert_eq!(patched["max_in_flight"], 4);
    assert_eq!(patched["description"], "first");
    assert!(
        patched.get("secret").is_none(),
        "secrets are shown only on create, rotate and /secret"
    );
    let (_, rotated) = app
        .post(&format!("/v1/endpoints/{id}/rotate-secret"), json!({}))
        .await;
    assert_ne!(rotated["secret"].as_str().unwrap(), old_secret);
    let (_, secret) = app.get(&format!("/v1/endpoints/{id}/secret")).await;
    assert_eq!(secret["secret"], rotated["secret"]);
    let (status, _) = app
        .call(Method::DELETE, &format!("/v1/endpoints/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&format!("/v1/endpoints/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

crate::on_both_stores!(
    bad_input_is_answered_with_json_errors,
    tenants_are_isolated,
    endpoints_can_be_patched_rotated_and_deleted
);

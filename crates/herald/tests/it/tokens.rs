//! Tenant tokens: listed, added, rotated and revoked, by the admin or the tenant itself; a revoked token is
//! refused at once on the node that revoked it and within seconds on every other node.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};

async fn status_with(app: &TestApp, token: &str) -> StatusCode {
    app.call_as(token, Method::GET, "/v1/endpoints", None)
        .await
        .0
}

async fn new_tenant(app: &TestApp, id: &str) -> String {
    let (status, tenant) = app.post("/v1/tenants", json!({"id": id})).await;
    assert_eq!(status, StatusCode::CREATED, "{tenant}");
    tenant["token"].as_str().unwrap().to_string()
}

pub async fn tokens_are_listed_added_rotated_and_revoked(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let first = new_tenant(&app, "acme").await;
    let other = new_tenant(&app, "beta").await;
    assert_eq!(status_with(&app, &first).await, StatusCode::OK);

    // The tenant manages its own tokens; another tenant cannot see them.
    let (status, created) = app
        .call_as(
            &first,
            Method::POST,
            "/v1/tenants/acme/tokens",
            Some(json!({"name": "ci"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let second = created["token"].as_str().unwrap().to_string();
    assert_eq!(created["name"], "ci");
    assert_eq!(status_with(&app, &second).await, StatusCode::OK);
    let (status, _) = app
        .call_as(&other, Method::GET, "/v1/tenants/acme/tokens", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, listed) = app
        .call_as(&first, Method::GET, "/v1/tenants/acme/tokens", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let listed = listed["data"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2);
    assert!(
        listed.iter().all(|t| t.get("token").is_none()),
        "tokens are shown only once"
    );
    let first_id = listed[0]["id"].as_str().unwrap().to_string();
    let second_id = created["id"].as_str().unwrap().to_string();

    // Rotation: the old token stops working at once, the new one works.
    let (status, rotated) = app
        .post(
            &format!("/v1/tenants/acme/tokens/{first_id}/rotate"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    assert_eq!(rotated["replaces"], first_id.as_str());
    let third = rotated["token"].as_str().unwrap().to_string();
    assert_eq!(status_with(&app, &first).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status_with(&app, &third).await, StatusCode::OK);
    let (status, _) = app
        .post(
            &format!("/v1/tenants/acme/tokens/{first_id}/rotate"),
            Value::Null,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a revoked token cannot be rotated"
    );

    // Revocation.
    let (status, _) = app
        .call_as(
            &third,
            Method::DELETE,
            &format!("/v1/tenants/acme/tokens/{second_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(status_with(&app, &second).await, StatusCode::UNAUTHORIZED);
    let (_, listed) = app.get("/v1/tenants/acme/tokens").await;
    let revoked: Vec<&Value> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["revoked_at"].is_null())
        .collect();
    assert_eq!(revoked.len(), 2);
    let (status, _) = app.get("/v1/tenants/nobody/tokens").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(Method::DELETE, "/v1/tenants/acme/tokens/tok_nope", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

crate::on_both_stores!(tokens_are_listed_added_rotated_and_revoked);

/// Two nodes on one PostgreSQL database: a token that node B has just used is revoked through node A, and
/// node B refuses it within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_every_node_within_seconds() {
    let Some(a) = TestApp::spawn_on(Backend::Postgres, |_| {}).await else {
        return;
    };
    let url = a.database_url().unwrap();
    let b = TestApp::spawn_with(move |c| c.database_url = Some(url)).await;
    let token = new_tenant(&a, "acme").await;
    assert_eq!(status_with(&b, &token).await, StatusCode::OK);
    let (_, listed) = a.get("/v1/tenants/acme/tokens").await;
    let id = listed["data"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = a
        .call(
            Method::DELETE,
            &format!("/v1/tenants/acme/tokens/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(status_with(&a, &token).await, StatusCode::UNAUTHORIZED);
    let revoked_at = Instant::now();
    while status_with(&b, &token).await != StatusCode::UNAUTHORIZED {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "node B still accepts a revoked token"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `herald serve` prints a generated admin token on the start that creates it, and never again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_is_printed_only_when_generated() {
    use std::io::Read as _;
    use std::process::{Command, Stdio};

    let dir = crate::helpers::TempDir::new();
    let first_start = |dir: &std::path::Path| {
        let port = crate::process::free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir)
            .env_remove("HERALD_ADMIN_TOKEN")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("herald starts");
        let mut stdout = child.stdout.take().unwrap();
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.contains("try:") && Instant::now() < deadline {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        seen
    };
    let generated = first_start(dir.path());
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let token = token.trim();
    assert!(
        generated.contains(token),
        "first start prints it: {generated}"
    );
    let again = first_start(dir.path());
    assert!(again.contains("admin token: saved in"), "{again}");
    assert!(
        !again.contains(token),
        "later starts never print it: {again}"
    );
}

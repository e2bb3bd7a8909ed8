//! The API contract over a real connection: `GET /openapi.json`, the typed client of `herald-api`, and
//! cancelling jobs (notify and proxy).

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use herald_api::client::{Client, ClientError, RequestOptions};
use herald_api::endpoints::EndpointInput;
use herald_api::events::PublishInput;
use herald_api::jobs::JobInput;
use herald_api::JobStatus;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::helpers::{Backend, Reply, Seen, TestApp, TestReceiver, ADMIN_TOKEN};

const WAIT: Duration = Duration::from_secs(15);

fn client(app: &TestApp) -> Client {
    Client::new(&app.url(""), ADMIN_TOKEN, 4).expect("a client")
}

async fn route(app: &TestApp, name: &str, kind: &str, url: &str) {
    let body = json!({"kind": kind, "url": url, "timeout_ms": 60_000,
        "retry_policy": {"kind": "bounded", "max_attempts": 3, "base_ms": 100, "jitter": 0.0}});
    let (status, answer) = app
        .call(Method::PUT, &format!("/v1/routes/{name}"), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

/// Webhooks of `kind` the receiver has seen, waiting up to [`WAIT`] for at least one.
async fn webhooks_of(rx: &TestReceiver, kind: &str) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let seen: Vec<Value> = rx
            .seen()
            .iter()
            .map(Seen::json)
            .filter(|body| body["type"] == kind)
            .collect();
        if !seen.is_empty() {
            return seen;
        }
        assert!(Instant::now() < deadline, "no {kind} webhook arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn the_document_is_served_without_a_token(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let response = reqwest::get(app.url("/openapi.json")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/v1/events"]["post"].is_object());
    assert!(doc["paths"]["/v1/jobs/{id}/cancel"]["post"].is_object());
    assert!(doc["components"]["schemas"]["JobWebhook"].is_object());
}

pub async fn the_typed_client_speaks_the_contract(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let receiver = TestReceiver::start(Reply::status(204)).await;
    let api = client(&app);
    let endpoint = api
        .create_endpoint(&EndpointInput {
            url: Some(receiver.url("/typed")),
            event_types: Some(vec!["order.*".into()]),
            ..EndpointInput::default()
        })
        .await
        .unwrap();
    assert!(endpoint.secret.as_deref().unwrap().starts_with("whsec_"));
    let input = PublishInput {
        event_type: "order.paid".into(),
        payload: serde_json::value::to_raw_value(&json!({"order": 7})).unwrap(),
        idempotency_key: Some("order-7".into()),
    };
    let options = RequestOptions {
        correlation_id: Some("corr-typed".into()),
        ..RequestOptions::default()
    };
    let first = api.publish(&input, &options).await.unwrap();
    assert!(!first.replayed);
    assert_eq!(first.receipt.correlation_id, "corr-typed");
    assert_eq!(first.receipt.deliveries.len(), 1);
    let again = api.publish(&input, &options).await.unwrap();
    assert!(
        again.replayed,
        "the same idempotency key answers the first event"
    );
    assert_eq!(again.receipt.id, first.receipt.id);

    let delivery_id = &first.receipt.deliveries[0].id;
    let deadline = Instant::now() + WAIT;
    let detail = loop {
        let detail = api.delivery(delivery_id).await.unwrap();
        if detail.delivery.status == herald_api::DeliveryStatus::Delivered {
            break detail;
        }
        assert!(Instant::now() < deadline, "not delivered: {detail:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(detail.attempts[0].status_code, Some(204));
    assert_eq!(
        api.event(&first.receipt.id).await.unwrap().payload,
        json!({"order": 7})
    );
    let listed = api.endpoints(&Default::default()).await.unwrap();
    assert_eq!(listed.data.len(), 1);
    assert!(listed.data[0].circuit.is_some());
    assert_eq!(api.health().await.unwrap().status, "ok");

    // An error answer arrives as the error object, with its status.
    match api.delivery("dlv_nope").await {
        Err(ClientError::Api { status, body }) => {
            assert_eq!(status.as_u16(), 404);
            assert_eq!(body.error.code, "not_found");
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    let tenant = api.create_tenant("typed-tenant").await.unwrap();
    let as_tenant = Client::new(&app.url(""), &tenant.token, 1).unwrap();
    assert!(as_tenant
        .endpoints(&Default::default())
        .await
        .unwrap()
        .data
        .is_empty());
}

pub async fn cancelling_a_notify_job_ends_it_and_tells_the_callback(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let worker = TestReceiver::start(Reply::status(204)).await;
    let callback = TestReceiver::start(Reply::status(204)).await;
    route(&app, "slow-work", "notify", &worker.url("/work")).await;
    let api = client(&app);
    let job = api
        .create_job(
            &JobInput {
                route: "slow-work".into(),
                payload: None,
                webhook: Some(callback.url("/hook")),
                progress_reports: None,
                poll: None,
            },
            &RequestOptions::default(),
        )
        .await
        .unwrap();
    worker.wait_for(1, WAIT).await;

    let cancelled = api.cancel_job(&job.id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert_eq!(cancelled.error.as_ref().unwrap()["kind"], "cancelled");
    let hooks = webhooks_of(&callback, "job.cancelled").await;
    assert_eq!(hooks[0]["data"]["id"], job.id.as_str());
    assert_eq!(hooks[0]["data"]["status"], "cancelled");

    // The job stays cancelled: a second cancel and the worker's late report are conflicts.
    match api.cancel_job(&job.id).await {
        Err(e) => assert_eq!(e.status().map(|s| s.as_u16()), Some(409), "{e}"),
        Ok(job) => panic!("cancelled twice: {job:?}"),
    }
    let (status, body) = app
        .post(
            &format!("/v1/jobs/{}/complete", job.id),
            json!({"result": {"late": true}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        api.job(&job.id, None).await.unwrap().status,
        JobStatus::Cancelled
    );
    let (status, _) = app.post("/v1/jobs/job_nope/cancel", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// An upstream that accepts calls and never answers; reports each connection's close.
async fn hanging_upstream() -> (String, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (closed, closes) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                let _ = closed.send(());
            });
        }
    });
    (url, closes)
}

pub async fn cancelling_a_proxy_job_abandons_the_upstream_call(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let (upstream, mut closes) = hanging_upstream().await;
    let callback = TestReceiver::start(Reply::status(204)).await;
    route(&app, "hangs", "proxy", &upstream).await;
    let callback_url = callback.url("/cb");
    let (status, job) = app
        .call_as_with_headers(
            "/async/hangs/slow",
            json!({"q": 1}),
            &[("callback-url", callback_url.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    // Wait until the call is in flight.
    let deadline = Instant::now() + WAIT;
    while client(&app).job(&id, None).await.unwrap().status != JobStatus::Running {
        assert!(Instant::now() < deadline, "the proxy call did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let cancelled = client(&app).cancel_job(&id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    tokio::time::timeout(WAIT, closes.recv())
        .await
        .expect("the upstream connection is dropped when the job is cancelled");
    let hooks = webhooks_of(&callback, "job.cancelled").await;
    assert_eq!(hooks[0]["data"]["id"], id.as_str());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kinds: Vec<Value> = callback
        .seen()
        .iter()
        .map(|s| s.json()["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        vec![json!("job.cancelled")],
        "the callback hears only the cancel"
    );
}

crate::on_both_stores!(
    the_document_is_served_without_a_token,
    the_typed_client_speaks_the_contract,
    cancelling_a_notify_job_ends_it_and_tells_the_callback,
    cancelling_a_proxy_job_abandons_the_upstream_call,
);

//! Jobs seen from above: `GET /v1/jobs` lists a tenant's jobs newest first, by status and route, a page
//! at a time; and every call made for a job continues the trace of the request that started it.

use std::time::Duration;

use herald_core::trace::TraceParent;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Backend, Reply, TestApp, TestReceiver};

const TRACE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

async fn route(app: &TestApp, name: &str, url: &str) {
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/v1/routes/{name}"),
            Some(json!({"kind": "notify", "url": url})),
        )
        .await;
    assert!(status.is_success(), "{body}");
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect()
}

crate::on_both_stores!(jobs_are_listed_newest_first_by_status_and_route);

pub async fn jobs_are_listed_newest_first_by_status_and_route(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let worker = TestReceiver::start(Reply::status(204)).await;
    route(&app, "pay", &worker.url("/pay")).await;
    route(&app, "ship", &worker.url("/ship")).await;
    let mut made = Vec::new();
    for name in ["pay", "ship", "pay"] {
        let (status, job) = app
            .call_as_with_headers(
                "/v1/jobs",
                json!({"route": name}),
                &[("traceparent", TRACE)],
            )
            .await;
        assert_eq!(status.as_u16(), 202, "{job}");
        made.push(job["id"].as_str().unwrap().to_string());
    }
    let (status, done) = app
        .post(
            &format!("/v1/jobs/{}/complete", made[0]),
            json!({"result": 1}),
        )
        .await;
    assert_eq!(status.as_u16(), 200, "{done}");

    let (_, all) = app.get("/v1/jobs").await;
    let newest_first: Vec<String> = made.iter().rev().cloned().collect();
    assert_eq!(ids(&all), newest_first);
    let (_, pay) = app.get("/v1/jobs?route=pay&limit=1").await;
    assert_eq!(ids(&pay), [made[2].clone()]);
    let cursor = pay["next_cursor"].as_str().expect("a next page");
    let (_, rest) = app
        .get(&format!("/v1/jobs?route=pay&limit=1&cursor={cursor}"))
        .await;
    assert_eq!(ids(&rest), [made[0].clone()]);
    assert_eq!(rest["next_cursor"], Value::Null);
    let (_, ok) = app.get("/v1/jobs?status=succeeded").await;
    assert_eq!(ids(&ok), [made[0].clone()]);
    assert_eq!(ok["data"][0]["status"], "succeeded");
    let (status, bad) = app.get("/v1/jobs?status=lost").await;
    assert_eq!(status.as_u16(), 422, "{bad}");
    assert_eq!(bad["error"]["details"]["field"], "status");
    let (_, tenant) = app.post("/v1/tenants", json!({"id": "elsewhere"})).await;
    let (_, theirs) = app
        .call_as(
            tenant["token"].as_str().unwrap(),
            Method::GET,
            "/v1/jobs",
            None,
        )
        .await;
    assert!(ids(&theirs).is_empty());

    // The worker notifications continue the trace of the requests that started the jobs.
    let seen = worker.wait_for(3, Duration::from_secs(10)).await;
    for s in &seen {
        let tp = TraceParent::parse(s.header("traceparent").expect("traceparent")).unwrap();
        assert_eq!(tp.trace_id_hex(), "0af7651916cd43dd8448eb211c80319c");
    }
}

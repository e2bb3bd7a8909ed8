//! Circuit breakers over real connections: a dead endpoint is cut off after a run of failures, probed once
//! per cooldown, and restored when it heals; subscribers hear `endpoint.failing` and `endpoint.recovered`;
//! every node of a cluster honours the same breaker.

use std::time::{Duration, Instant};

use herald_core::breaker::BreakerPolicy;
use serde_json::{json, Value};

use crate::helpers::{Backend, Reply, TestApp, TestReceiver};
use crate::on_both_stores;

/// Five failures open the breaker; 700 ms to each probe.
const POLICY: BreakerPolicy = BreakerPolicy {
    failures: 5,
    cooldown_ms: 700,
    max_cooldown_ms: 700,
};

/// An endpoint at `url` taking one request at a time and retrying every 50 ms, many times.
fn fragile_endpoint(url: String) -> Value {
    json!({
        "url": url,
        "event_types": ["order.*"],
        "max_in_flight": 1,
        "retry_policy": {"kind": "schedule", "delays_ms": vec![50; 40]},
    })
}

async fn circuit(app: &TestApp, endpoint_id: &str) -> Value {
    let (status, shown) = app.get(&format!("/v1/endpoints/{endpoint_id}")).await;
    assert_eq!(status.as_u16(), 200, "{shown}");
    shown["circuit"].clone()
}

/// Wait for the endpoint's breaker to be shown open; returns it.
async fn open_circuit(app: &TestApp, endpoint_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = circuit(app, endpoint_id).await;
        if shown["state"] == "open" {
            return shown;
        }
        assert!(
            Instant::now() < deadline,
            "the breaker never opened: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The count stays at `expected` for `window`.
async fn stays(rx: &TestReceiver, expected: usize, window: Duration) {
    let until = Instant::now() + window;
    while Instant::now() < until {
        assert_eq!(
            rx.count(),
            expected,
            "attempts reached an endpoint whose breaker is open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

on_both_stores!(
    a_dead_endpoint_is_cut_off_probed_and_restored,
    an_endpoint_that_only_fails_is_disabled_and_patching_it_back_starts_afresh,
    recovering_an_endpoint_sends_its_dead_letters_again,
);

pub async fn a_dead_endpoint_is_cut_off_probed_and_restored(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |c| c.delivery.health.breaker = POLICY).await else {
        return;
    };
    let dead = TestReceiver::start(Reply::status(503)).await;
    let watcher = TestReceiver::start(Reply::status(204)).await;
    let ep = app.endpoint(fragile_endpoint(dead.url("/dead"))).await;
    let ep_id = ep["id"].as_str().unwrap().to_string();
    app.endpoint(json!({"url": watcher.url("/ops"), "event_types": ["endpoint.*"]}))
        .await;
    assert_eq!(circuit(&app, &ep_id).await["state"], "closed");
    let mut deliveries = Vec::new();
    for n in 0..3 {
        let (status, body) = app
            .post(
                "/v1/events",
                json!({"event_type": "order.created", "payload": {"n": n}}),
            )
            .await;
        assert_eq!(status.as_u16(), 202, "{body}");
        deliveries.push(body["deliveries"][0]["id"].as_str().unwrap().to_string());
    }

    // Five failures open it, and the subscriber is told which endpoint is failing.
    let alerts = watcher.wait_for(1, Duration::from_secs(10)).await;
    let failing = alerts[0].json();
    assert_eq!(failing["type"], "endpoint.failing", "{failing}");
    assert_eq!(failing["data"]["endpoint_id"], ep_id.as_str());
    assert_eq!(failing["data"]["url"], dead.url("/dead"));
    assert_eq!(failing["data"]["consecutive_failures"], 5);
    assert_eq!(failing["data"]["last_error"], "HTTP 503");
    assert!(
        alerts[0].header("webhook-signature").is_some(),
        "signed like any event"
    );
    // The alert may be sent while the commit that opened the breaker is still being made durable.
    let shown = open_circuit(&app, &ep_id).await;
    assert_eq!(shown["consecutive_failures"], 5);
    assert!(shown["next_probe_at"].is_string(), "{shown}");
    let (_, health) = app.get("/health").await;
    assert_eq!(health["circuit_breakers"]["open"], 1, "{health}");

    // While open, nothing is sent and no attempt is charged.
    assert_eq!(dead.count(), 5);
    stays(&dead, 5, Duration::from_millis(450)).await;

    // The cooldown ends: exactly one probe, which fails, so it opens again for another cooldown.
    dead.wait_for(6, Duration::from_secs(5)).await;
    stays(&dead, 6, Duration::from_millis(450)).await;

    // The endpoint heals: the next probe closes the breaker and the backlog drains.
    dead.set_default(Reply::status(204));
    for id in &deliveries {
        app.wait_status(id, "delivered", Duration::from_secs(10))
            .await;
    }
    let mut charged = 0;
    for id in &deliveries {
        let (_, d) = app.get(&format!("/v1/deliveries/{id}")).await;
        charged += d["attempt_count"].as_u64().unwrap();
    }
    assert_eq!(
        charged as usize,
        dead.count(),
        "attempts are charged only when sent"
    );
    let alerts = watcher.wait_for(2, Duration::from_secs(10)).await;
    let recovered = alerts[1].json();
    assert_eq!(recovered["type"], "endpoint.recovered", "{recovered}");
    assert_eq!(recovered["data"]["endpoint_id"], ep_id.as_str());
    assert_eq!(circuit(&app, &ep_id).await["state"], "closed");
    let (_, health) = app.get("/health").await;
    assert_eq!(health["circuit_breakers"]["open"], 0, "{health}");
    // The alerts' own deliveries never raise alerts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(watcher.count(), 2);
}

/// Two nodes on one database: once one node's results open the breaker, neither node sends to the
/// endpoint until the probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_honour_one_breaker() {
    let slow_probe = BreakerPolicy {
        cooldown_ms: 5_000,
        max_cooldown_ms: 5_000,
        ..POLICY
    };
    let Some(a) = TestApp::spawn_on(Backend::Postgres, |c| {
        c.delivery.health.breaker = slow_probe
    })
    .await
    else {
        return;
    };
    let url = a.database_url();
    let b = TestApp::spawn_with(|c| {
        c.database_url = url;
        c.delivery.health.breaker = slow_probe;
    })
    .await;
    let dead = TestReceiver::start(Reply::status(500)).await;
    let mut body = fragile_endpoint(dead.url("/dead"));
    body["max_in_flight"] = json!(4);
    let ep = a.endpoint(body).await;
    let ep_id = ep["id"].as_str().unwrap().to_string();
    for n in 0..40 {
        let node = if n % 2 == 0 { &a } else { &b };
        let (status, _) = node
            .post(
                "/v1/events",
                json!({"event_type": "order.created", "payload": {"n": n}}),
            )
            .await;
        assert_eq!(status.as_u16(), 202);
    }
    open_circuit(&b, &ep_id).await;
    // Attempts already in flight when it opened may still land (on a loaded machine, a leased attempt can
    // take a while to be sent); then nothing until the probe, seconds away.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let at_open = dead.count();
    assert!(
        at_open <= 5 + 2 * 4,
        "{at_open} attempts: more than the in-flight limit past the threshold"
    );
    stays(&dead, at_open, Duration::from_millis(2_000)).await;
    let (_, health) = b.get("/health").await;
    assert_eq!(health["circuit_breakers"]["open"], 1, "{health}");
}

pub async fn an_endpoint_that_only_fails_is_disabled_and_patching_it_back_starts_afresh(
    backend: Backend,
) {
    let Some(app) = TestApp::spawn_on(backend, |c| {
        c.delivery.health.breaker = BreakerPolicy {
            failures: 2,
            cooldown_ms: 150,
            max_cooldown_ms: 150,
        };
        c.delivery.health.disable_after_ms = 1_000;
    })
    .await
    else {
        return;
    };
    let dead = TestReceiver::start(Reply::status(502)).await;
    let watcher = TestReceiver::start(Reply::status(204)).await;
    let ep = app.endpoint(fragile_endpoint(dead.url("/dead"))).await;
    let ep_id = ep["id"].as_str().unwrap().to_string();
    app.endpoint(json!({"url": watcher.url("/ops"), "event_types": ["endpoint.*"]}))
        .await;
    let (_, published) = app
        .post(
            "/v1/events",
            json!({"event_type": "order.created", "payload": {}}),
        )
        .await;
    let delivery = published["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let alerts = watcher.wait_for(2, Duration::from_secs(10)).await;
    let types: Vec<Value> = alerts.iter().map(|a| a.json()["type"].clone()).collect();
    assert_eq!(types, ["endpoint.failing", "endpoint.disabled"]);
    let disabled = alerts[1].json();
    assert_eq!(disabled["data"]["endpoint_id"], ep_id.as_str());
    assert_eq!(disabled["data"]["last_error"], "HTTP 502");
    // As with every alert, it may arrive while its commit is still being made durable.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, shown) = app.get(&format!("/v1/endpoints/{ep_id}")).await;
        if shown["disabled"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "not disabled: {shown}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent = dead.count();
    stays(&dead, sent, Duration::from_millis(400)).await;

    // Enabled again by hand: the breaker is closed and the waiting delivery goes out.
    dead.set_default(Reply::status(204));
    let (status, patched) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/endpoints/{ep_id}"),
            Some(json!({"disabled": false})),
        )
        .await;
    assert_eq!(status.as_u16(), 200, "{patched}");
    let shown = circuit(&app, &ep_id).await;
    assert_eq!(shown["state"], "closed", "{shown}");
    assert_eq!(shown["consecutive_failures"], 0);
    app.wait_status(&delivery, "delivered", Duration::from_secs(10))
        .await;
}

pub async fn recovering_an_endpoint_sends_its_dead_letters_again(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let rx = TestReceiver::start(Reply::status(500)).await;
    let ep = app
        .endpoint(json!({"url": rx.url("/r"),
            "retry_policy": {"kind": "bounded", "max_attempts": 1, "base_ms": 10, "jitter": 0.0}}))
        .await;
    let ep_id = ep["id"].as_str().unwrap().to_string();
    let mut ids = Vec::new();
    for n in 0..2 {
        let (_, body) = app
            .post(
                "/v1/events",
                json!({"event_type": "x", "payload": {"n": n}}),
            )
            .await;
        ids.push(body["deliveries"][0]["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        app.wait_status(id, "failed", Duration::from_secs(10)).await;
    }
    rx.set_default(Reply::status(204));
    let (status, body) = app
        .post(
            &format!("/v1/endpoints/{ep_id}/recover?since=not-a-time"),
            json!({}),
        )
        .await;
    assert_eq!(status.as_u16(), 400, "{body}");
    let (status, _) = app
        .post(
            "/v1/endpoints/ep_01HF7YAT000000000000000009/recover?since=2020-01-01T00:00:00Z",
            json!({}),
        )
        .await;
    assert_eq!(status.as_u16(), 404);
    let (status, body) = app
        .post(
            &format!("/v1/endpoints/{ep_id}/recover?since=2020-01-01T00:00:00Z"),
            json!({}),
        )
        .await;
    assert_eq!(status.as_u16(), 202, "{body}");
    assert_eq!(body["recovered"], 2);
    for id in &ids {
        let d = app
            .wait_status(id, "delivered", Duration::from_secs(10))
            .await;
        assert_eq!(d["attempt_count"], 2, "{d}");
    }
}

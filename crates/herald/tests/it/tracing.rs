//! W3C trace context: the publisher's `traceparent` is stored with the event and every attempt continues
//! that trace with a span of its own; a request without one starts a trace.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_core::trace::TraceParent;
use serde_json::{json, Value};

use crate::helpers::{Backend, Reply, TestApp, TestReceiver};
use crate::on_both_stores;

const PUBLISHER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

on_both_stores!(every_attempt_continues_the_publishers_trace);

pub async fn every_attempt_continues_the_publishers_trace(backend: Backend) {
    let Some(app) = TestApp::spawn_on(backend, |_| {}).await else {
        return;
    };
    let rx = TestReceiver::start(Reply::status(204)).await;
    rx.then(&[Reply::status(503)]);
    app.endpoint(json!({
        "url": rx.url("/traced"),
        "retry_policy": {"kind": "schedule", "delays_ms": [20]},
    }))
    .await;
    let (status, published) = app
        .call_as_with_headers(
            "/v1/events",
            json!({"event_type": "order.paid", "payload": {}}),
            &[("traceparent", PUBLISHER)],
        )
        .await;
    assert_eq!(status.as_u16(), 202, "{published}");
    let seen = rx.wait_for(2, Duration::from_secs(10)).await;
    let publisher = TraceParent::parse(PUBLISHER).unwrap();
    let spans: Vec<TraceParent> = seen
        .iter()
        .map(|s| TraceParent::parse(s.header("traceparent").expect("traceparent sent")).unwrap())
        .collect();
    for span in &spans {
        assert_eq!(span.trace_id, publisher.trace_id, "the publisher's trace");
        assert_eq!(span.flags, publisher.flags);
        assert_ne!(
            span.parent_id, publisher.parent_id,
            "a span of the attempt's own"
        );
    }
    assert_ne!(
        spans[0].parent_id, spans[1].parent_id,
        "each attempt is its own span"
    );
    let id = published["id"].as_str().unwrap();
    let (_, event) = app.get(&format!("/v1/events/{id}")).await;
    assert_eq!(event["traceparent"], PUBLISHER);

    // No traceparent (or an unusable one): a new trace, still sent on.
    for header in [None, Some("00-not-a-trace-01")] {
        let headers: Vec<(&str, &str)> = header.map(|h| ("traceparent", h)).into_iter().collect();
        let before = rx.count();
        let (status, _) = app
            .call_as_with_headers(
                "/v1/events",
                json!({"event_type": "order.paid", "payload": {}}),
                &headers,
            )
            .await;
        assert_eq!(status.as_u16(), 202);
        let seen = rx.wait_for(before + 1, Duration::from_secs(10)).await;
        let started = TraceParent::parse(seen[before].header("traceparent").unwrap()).unwrap();
        assert_ne!(started.trace_id, publisher.trace_id);
    }

    // A direct delivery continues its request's trace too.
    let before = rx.count();
    let (status, body) = app
        .call_as_with_headers(
            "/v1/deliveries",
            json!({"url": rx.url("/direct"), "payload": {"x": 1}}),
            &[("traceparent", PUBLISHER)],
        )
        .await;
    assert_eq!(status.as_u16(), 202, "{body}");
    let seen = rx.wait_for(before + 1, Duration::from_secs(10)).await;
    let direct = TraceParent::parse(seen[before].header("traceparent").unwrap()).unwrap();
    assert_eq!(direct.trace_id, publisher.trace_id);
}

/// A fake OTLP/HTTP collector: every span it receives, as JSON.
struct Collector {
    addr: std::net::SocketAddr,
    spans: Arc<Mutex<Vec<Value>>>,
}

impl Collector {
    async fn start() -> Collector {
        let spans: Arc<Mutex<Vec<Value>>> = Arc::default();
        let kept = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    let export: Value = serde_json::from_slice(&body).expect("OTLP JSON");
                    for resource in export["resourceSpans"].as_array().into_iter().flatten() {
                        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                            for span in scope["spans"].as_array().into_iter().flatten() {
                                kept.lock().unwrap().push(span.clone());
                            }
                        }
                    }
                    "{}"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Collector { addr, spans }
    }

    /// Wait until a span named `name` with trace id `trace` (hex) arrived; returns it.
    async fn wait_for(&self, name: &str, trace: Option<&str>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .find(|s| {
                    s["name"] == name && trace.is_none_or(|t| s["traceId"].as_str() == Some(t))
                })
                .cloned();
            if let Some(span) = found {
                return span;
            }
            assert!(
                Instant::now() < deadline,
                "no {name} span; got {:?}",
                self.spans.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_for_publish_claim_attempt_and_record_reach_the_collector() {
    let collector = Collector::start().await;
    let endpoint = format!("http://{}", collector.addr);
    let app = TestApp::spawn_with(|c| c.otlp_endpoint = Some(endpoint)).await;
    let rx = TestReceiver::start(Reply::status(204)).await;
    app.endpoint(json!({"url": rx.url("/traced")})).await;
    let (status, _) = app
        .call_as_with_headers(
            "/v1/events",
            json!({"event_type": "order.paid", "payload": {}}),
            &[("traceparent", PUBLISHER)],
        )
        .await;
    assert_eq!(status.as_u16(), 202);
    let seen = rx.wait_for(1, Duration::from_secs(10)).await;
    let sent = TraceParent::parse(seen[0].header("traceparent").unwrap()).unwrap();

    let trace = TraceParent::parse(PUBLISHER).unwrap().trace_id_hex();
    let publish = collector.wait_for("publish", Some(&trace)).await;
    assert_eq!(
        publish["parentSpanId"], "00f067aa0ba902b7",
        "the publisher's span is its parent"
    );
    let attempt = collector.wait_for("attempt", Some(&trace)).await;
    assert_eq!(
        attempt["parentSpanId"], publish["spanId"],
        "the attempt follows the publish"
    );
    assert_eq!(
        attempt["spanId"].as_str().unwrap(),
        format!("{:016x}", sent.parent_id),
        "the receiver sees the attempt's own span"
    );
    collector.wait_for("record", None).await;
    collector.wait_for("claim", None).await;
}

//! `/metrics` on a live node: the admin token guards it, `metrics_listen` serves it without one, the
//! counts follow real deliveries, and `promtool check metrics` accepts the output without a warning. The
//! example alert rules of the README pass `promtool check rules`.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::{postgres_required, Backend, Reply, TestApp, TestReceiver};

const WAIT: Duration = Duration::from_secs(15);

/// `promtool`, or `None` (with a note) where it is not installed outside CI.
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some("promtool");
    }
    assert!(
        !postgres_required(),
        "promtool is required in CI (Debian package prometheus; .ci/run installs it)"
    );
    eprintln!("skipping the promtool check: promtool is not installed");
    None
}

/// Run `promtool check <what>` with `input` on stdin (or `args`); returns its combined output.
fn promtool_check(args: &[&str], input: Option<&str>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .arg("check")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    if let Some(input) = input {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The value of the first sample whose line starts with `prefix` in the exposition `text`.
pub fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {prefix} in:\n{text}"))
}

pub async fn metrics_count_real_deliveries_and_pass_promtool(backend: Backend) {
    let open_port = crate::process::free_port();
    let Some(app) = TestApp::spawn_on(backend, |c| {
        c.metrics_listen = Some(format!("127.0.0.1:{open_port}").parse().unwrap());
        c.node_name = Some("node-a".into());
        // One failure opens a breaker, so the breaker gauges have something to show.
        c.delivery.health.breaker.failures = 1;
    })
    .await
    else {
        return;
    };
    let ok = TestReceiver::start(Reply::status(204)).await;
    let down = TestReceiver::start(Reply::status(500)).await;
    app.endpoint(json!({"url": ok.url("/ok"), "event_types": ["ok.*"]}))
        .await;
    app.endpoint(json!({"url": down.url("/down"), "event_types": ["down.*"],
        "retry_policy": {"kind": "bounded", "max_attempts": 1, "base_ms": 10, "jitter": 0.0}}))
        .await;
    for kind in ["ok.a", "ok.b", "ok.c", "down.a"] {
        let (status, _) = app
            .post("/v1/events", json!({"event_type": kind, "payload": {}}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    ok.wait_for(3, WAIT).await;
    down.wait_for(1, WAIT).await;
    let deadline = std::time::Instant::now() + WAIT;
    while app.get("/v1/deliveries?status=failed").await.1["data"]
        .as_array()
        .is_none_or(|d| d.is_empty())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the failing delivery never failed"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // Guarded by the admin token.
    let anonymous = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let (_, tenant) = app.post("/v1/tenants", json!({"id": "t"})).await;
    let as_tenant = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(tenant["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(as_tenant.status().as_u16(), 403);

    // Recording is batched: poll until the counts are in.
    let deadline = std::time::Instant::now() + WAIT;
    let text = loop {
        let resp = app
            .client
            .get(app.url("/metrics"))
            .bearer_auth(&app.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        let text = resp.text().await.unwrap();
        if text.contains(r#"webhook_delivery_total{status="success",worker_id="node-a"} 3"#) {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        sample(
            &text,
            r#"webhook_delivery_total{status="failure",worker_id="node-a"}"#
        ),
        1.0
    );
    assert_eq!(sample(&text, "herald_events_published_total"), 4.0);
    assert_eq!(
        sample(&text, r#"circuit_breaker_status{service="endpoints"}"#),
        1.0
    );
    assert_eq!(
        sample(&text, r#"herald_circuit_breakers{state="open"}"#),
        1.0
    );
    assert_eq!(
        sample(&text, r#"herald_circuit_breakers{state="half_open"}"#),
        0.0
    );
    assert_eq!(
        sample(&text, r#"herald_deliveries_total{outcome="delivered"}"#),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            r#"webhook_delivery_seconds_count{worker_id="node-a"}"#
        ),
        4.0
    );
    assert_eq!(
        sample(&text, r#"herald_queue_deliveries{state="failed"}"#),
        1.0
    );
    assert!(
        !text.contains("ep_") && !text.contains("evt_"),
        "no ids as labels"
    );

    // The same without a token on metrics_listen.
    let open = reqwest::get(format!("http://127.0.0.1:{open_port}/metrics"))
        .await
        .unwrap();
    assert_eq!(open.status().as_u16(), 200);
    assert!(open
        .text()
        .await
        .unwrap()
        .contains("herald_events_published_total 4"));

    if promtool().is_some() {
        let (passed, said) = promtool_check(&["metrics"], Some(&text));
        assert!(passed && said.trim().is_empty(), "promtool: {said}");
    }
}

crate::on_both_stores!(metrics_count_real_deliveries_and_pass_promtool);

/// The README's example alert rules, kept in `docs/alerts.yml`, are valid.
#[test]
fn the_example_alert_rules_pass_promtool() {
    if promtool().is_none() {
        return;
    }
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/alerts.yml");
    let (passed, said) = promtool_check(&["rules", rules], None);
    assert!(passed, "promtool: {said}");
    assert!(said.contains("SUCCESS"), "{said}");
}

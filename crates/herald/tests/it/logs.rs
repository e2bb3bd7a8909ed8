//! `HERALD_LOG_FORMAT=json`: one JSON object a line, with the delivery's fields; a bad value stops start-up
//! naming the setting.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::ADMIN_TOKEN;
use crate::process::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_delivery_fields() {
    let dir = crate::helpers::TempDir::new();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("HERALD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("HERALD_ALLOW_PRIVATE_TARGETS", "true")
        .env("HERALD_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("herald starts");
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "herald did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // An endpoint on a port nobody listens on: the attempt fails and is logged.
    let closed = free_port();
    let created = client
        .post(format!("{base}/v1/endpoints"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"url": format!("http://127.0.0.1:{closed}/x"),
            "retry_policy": {"kind": "bounded", "max_attempts": 2, "base_ms": 60000}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let published = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-correlation-id", "corr-json-logs")
        .json(&json!({"event_type": "a.b", "payload": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status().as_u16(), 202);
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("a log line about the failed attempt");
        let parsed: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        if parsed["correlation_id"] == "corr-json-logs" {
            break parsed;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(found["level"], "INFO", "{found}");
    assert!(
        found["delivery_id"].as_str().unwrap().starts_with("dlv_"),
        "{found}"
    );
    assert_eq!(found["error"], "connect", "{found}");
    assert!(
        found["timestamp"].is_string() && found["message"].is_string(),
        "{found}"
    );
}

#[test]
fn an_unknown_log_format_stops_start_up() {
    let dir = crate::helpers::TempDir::new();
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("HERALD_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("HERALD_LOG_FORMAT"), "{said}");
}

//! Crash safety: SIGKILL the server while deliveries are pending and retrying; after a restart every
//! acknowledged event is delivered.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Reply, TempDir, TestReceiver, ADMIN_TOKEN};
use crate::process::{free_port, HeraldProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_loses_nothing_acknowledged() {
    let dir = TempDir::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // The first 150 answers fail, so deliveries are retrying at the crash; the endpoint's breaker would
    // stop the load after five of them, so breakers are off here.
    let breakers_off = [("HERALD_BREAKER_FAILURES", "0")];
    let mut herald = HeraldProcess::start(dir.path(), port, &[], &breakers_off).await;
    let client = reqwest::Client::new();

    // Slow answers keep deliveries in flight.
    let rx = TestReceiver::start(Reply::slow(200, Duration::from_millis(50))).await;
    rx.then(&vec![Reply::slow(500, Duration::from_millis(50)); 150]);
    let ep = client
        .post(format!("{base}/v1/endpoints"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"url": rx.url("/crash"), "max_in_flight": 32,
                      "retry_policy": {"kind": "bounded", "max_attempts": 50, "base_ms": 300, "jitter": 0.0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(ep.status().as_u16(), 201);

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut publishers = Vec::new();
    for worker in 0..8 {
        let (client, base, acked) = (client.clone(), base.clone(), acked.clone());
        publishers.push(tokio::spawn(async move {
            for n in 0..100 {
                let sent = client
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({"event_type": "crash.test", "payload": {"w": worker, "n": n}}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().as_u16() == 202 => {
                        let body: serde_json::Value = r.json().await.unwrap();
                        acked
                            .lock()
                            .unwrap()
                            .push(body["id"].as_str().unwrap().to_string());
                    }
                    _ => return, // the server is gone: nothing after this was acknowledged
                }
            }
        }));
    }
    // Kill once a good share is acknowledged and some deliveries are under way.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 300 || rx.count() < 100 {
        assert!(Instant::now() < deadline, "load did not get going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    herald.sigkill();
    for p in publishers {
        p.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    let delivered_before: HashSet<String> = rx
        .seen()
        .iter()
        .filter_map(|s| s.header("webhook-id").map(str::to_string))
        .collect();
    assert!(
        delivered_before.len() < acked.len(),
        "the crash happened with work outstanding"
    );

    let _herald = HeraldProcess::start(dir.path(), port, &[], &breakers_off).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: HashSet<String> = rx
            .seen()
            .iter()
            .filter_map(|s| s.header("webhook-id").map(str::to_string))
            .collect();
        let missing: Vec<&String> = acked.iter().filter(|id| !got.contains(*id)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged events never arrived, e.g. {}",
            missing.len(),
            missing[0]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every acknowledged event's delivery ends `delivered` in the status API.
    let deadline = Instant::now() + Duration::from_secs(20);
    for id in &acked {
        loop {
            let page: serde_json::Value = client
                .get(format!("{base}/v1/deliveries?event_id={id}"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let data = page["data"].as_array().unwrap();
            assert_eq!(data.len(), 1, "one delivery per event: {page}");
            if data[0]["status"] == "delivered" {
                break;
            }
            assert!(Instant::now() < deadline, "{page}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

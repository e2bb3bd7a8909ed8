//! Several nodes on one PostgreSQL database: a node killed mid-load, and the database going away.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{json, Value};

use crate::helpers::{
    test_database, test_database_exclusive, Reply, TempDir, TestApp, TestReceiver, ADMIN_TOKEN,
};
use crate::pgproxy::{server_addr, PgProxy};
use crate::process::{free_port, HeraldProcess};

/// Publish `count` events through `base` with `workers` concurrent clients; returns the acknowledged ids and
/// every status code seen.
async fn publish_many(
    client: &Client,
    base: &str,
    count: usize,
    workers: usize,
) -> (Vec<String>, Vec<u16>) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, base, acked, statuses) = (
            client.clone(),
            base.to_string(),
            acked.clone(),
            statuses.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for n in (w..count).step_by(workers) {
                let sent = client
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({"event_type": "cluster.test", "payload": {"n": n}}))
                    .send()
                    .await;
                let Ok(resp) = sent else { continue };
                let status = resp.status().as_u16();
                statuses.lock().unwrap().push(status);
                if status == 202 {
                    let body: Value = resp.json().await.unwrap();
                    acked
                        .lock()
                        .unwrap()
                        .push(body["id"].as_str().unwrap().to_string());
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let statuses = statuses.lock().unwrap().clone();
    (acked, statuses)
}

/// Wait until the receiver has seen every id in `acked` (by `webhook-id`).
async fn wait_all_received(rx: &TestReceiver, acked: &[String], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got: HashSet<String> = rx
            .seen()
            .iter()
            .filter_map(|s| s.header("webhook-id").map(str::to_string))
            .collect();
        let missing = acked.iter().filter(|id| !got.contains(*id)).count();
        if missing == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} acknowledged events never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many deliveries the node at `base` reports with `status` (the seed 003 view gives a total).
async fn count_with_status(client: &Client, base: &str, status: &str) -> u64 {
    let page: Value = client
        .get(format!(
            "{base}/webhook-statuses?status={status}&page_size=1"
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["total"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_lose_nothing_when_one_is_killed_mid_load() {
    let Some(db) = test_database().await else {
        return;
    };
    let dirs = [TempDir::new(), TempDir::new(), TempDir::new()];
    let flags = ["--database-url", db.url.as_str()];
    let env = [("HERALD_LEASE_MS", "1000")];
    let a = HeraldProcess::start(dirs[0].path(), free_port(), &flags, &env).await;
    let b = HeraldProcess::start(dirs[1].path(), free_port(), &flags, &env).await;
    let mut c = HeraldProcess::start(dirs[2].path(), free_port(), &flags, &env).await;
    let client = Client::new();

    let max_in_flight = 48;
    let rx = TestReceiver::start(Reply::slow(200, Duration::from_millis(20))).await;
    let created = client
        .post(format!("{}/v1/endpoints", a.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"url": rx.url("/cluster"), "max_in_flight": max_in_flight, "timeout_ms": 2000,
                      "retry_policy": {"kind": "bounded", "max_attempts": 20, "base_ms": 200, "jitter": 0.0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);

    let (via_a, via_b) = (a.base.clone(), b.base.clone());
    let (ca, cb) = (client.clone(), client.clone());
    let load_a = tokio::spawn(async move { publish_many(&ca, &via_a, 1500, 4).await });
    let load_b = tokio::spawn(async move { publish_many(&cb, &via_b, 1500, 4).await });
    let deadline = Instant::now() + Duration::from_secs(30);
    while rx.count() < 500 {
        assert!(Instant::now() < deadline, "deliveries did not get going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.sigkill();
    let (mut acked, statuses_a) = load_a.await.unwrap();
    let (acked_b, statuses_b) = load_b.await.unwrap();
    acked.extend(acked_b);
    assert!(
        statuses_a.iter().chain(&statuses_b).all(|s| *s == 202),
        "every publish through a live node succeeds"
    );
    assert_eq!(acked.len(), 3000);

    wait_all_received(&rx, &acked, Duration::from_secs(90)).await;
    let seen = rx.seen();
    let mut per_id: HashMap<String, u32> = HashMap::new();
    for s in &seen {
        *per_id
            .entry(s.header("webhook-id").unwrap().to_string())
            .or_default() += 1;
    }
    let duplicates: u32 = per_id.values().map(|n| n - 1).sum();
    // Only what the killed node had sent and not yet recorded is sent again: at most its leases, which
    // are the endpoint's max_in_flight and what may wait for a turn (a quarter of the default
    // concurrency of 512).
    let held_at_most = max_in_flight + 512 / 4;
    assert!(
        duplicates <= held_at_most,
        "duplicates ({duplicates}) are bounded by what the killed node could hold leased ({held_at_most})"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    for node in [&a.base, &b.base] {
        while count_with_status(&client, node, "delivered").await < 3000 {
            assert!(
                Instant::now() < deadline,
                "the status API never showed every delivery delivered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!("3000 events over 3 nodes, one SIGKILLed: all delivered, {duplicates} duplicates");
}

/// Publish from 4 clients while `outage` runs (it makes the database unreachable for a while and brings it
/// back): every answer is 202 or a JSON 503, none hangs, `/health` reports the store down during the
/// outage, and every acknowledged event is delivered afterwards.
async fn publish_through_an_outage(
    app: &TestApp,
    rx: &TestReceiver,
    outage: impl std::future::Future<Output = ()>,
) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let statuses = Arc::new(Mutex::new(Vec::<u16>::new()));
    let health_seen_down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut publishers = Vec::new();
    for w in 0..4 {
        let (client, base, stop, acked, statuses) = (
            app.client.clone(),
            app.url(""),
            stop.clone(),
            acked.clone(),
            statuses.clone(),
        );
        let health_seen_down = health_seen_down.clone();
        publishers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let started = Instant::now();
                let resp = client
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({"event_type": "outage.test", "payload": {"w": w, "n": n}}))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "no request hangs while the database is away"
                );
                let body: Value = resp.json().await.unwrap();
                if status == 202 {
                    acked
                        .lock()
                        .unwrap()
                        .push(body["id"].as_str().unwrap().to_string());
                } else {
                    assert_eq!(body["error"]["code"], "unavailable", "{body}");
                    if w == 0 {
                        let health = client.get(format!("{base}/health")).send().await.unwrap();
                        if health.status().as_u16() == 503 {
                            let h: Value = health.json().await.unwrap();
                            assert_eq!(h["store"]["reachable"], false);
                            health_seen_down.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                }
                statuses.lock().unwrap().push(status);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    outage.await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for p in publishers {
        p.await.unwrap();
    }
    let statuses = statuses.lock().unwrap().clone();
    assert!(
        statuses.iter().all(|s| *s == 202 || *s == 503),
        "only 202 or 503, never 500: {statuses:?}"
    );
    assert!(statuses.contains(&503), "the outage was noticed");
    assert!(
        health_seen_down.load(std::sync::atomic::Ordering::SeqCst),
        "/health reported the store down"
    );
    assert!(
        statuses.last() == Some(&202),
        "publishing works again after the outage"
    );
    let acked = acked.lock().unwrap().clone();
    wait_all_received(rx, &acked, Duration::from_secs(30)).await;
    let (status, health) = app.get("/health").await;
    assert_eq!(status.as_u16(), 200, "{health}");
    println!(
        "{} acknowledged, {} answered 503 during the outage, all delivered",
        acked.len(),
        statuses.iter().filter(|s| **s == 503).count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_loses_nothing_acknowledged() {
    let Some(db) = test_database().await else {
        return;
    };
    let proxy = PgProxy::start(server_addr(&db.url)).await;
    let url = proxy.url_for(&db.url);
    let app = TestApp::spawn_with(|c| {
        c.database_url = Some(url);
        c.db_timeout_ms = 1000;
    })
    .await;
    let rx = TestReceiver::start(Reply::status(204)).await;
    app.endpoint(json!({"url": rx.url("/outage")})).await;
    let outage = async {
        proxy.down();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        proxy.up();
    };
    publish_through_an_outage(&app, &rx, outage).await;
}

/// The PostgreSQL cluster's `pg_ctlcluster` name (`<version> main`), when this machine manages it that way.
fn local_cluster() -> Option<String> {
    let version = std::fs::read_dir("/etc/postgresql")
        .ok()?
        .flatten()
        .next()?
        .file_name();
    Some(version.to_string_lossy().into_owned())
}

fn pg_ctlcluster(version: &str, action: &str) {
    let status = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, "main", action])
        .status()
        .expect("run pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {action} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_answers_503_and_loses_nothing_acknowledged() {
    let Some(db) = test_database_exclusive().await else {
        return;
    };
    let Some(version) = local_cluster().filter(|_| server_addr(&db.url).ip().is_loopback()) else {
        assert!(
            !crate::helpers::postgres_required(),
            "CI restarts the local PostgreSQL with pg_ctlcluster"
        );
        eprintln!(
            "skipping the PostgreSQL restart test: no local cluster managed by pg_ctlcluster"
        );
        return;
    };
    let url = db.url.clone();
    let app = TestApp::spawn_with(|c| {
        c.database_url = Some(url);
        c.db_timeout_ms = 1000;
    })
    .await;
    let rx = TestReceiver::start(Reply::status(204)).await;
    app.endpoint(json!({"url": rx.url("/restart")})).await;
    let restart = async {
        let v = version.clone();
        tokio::task::spawn_blocking(move || pg_ctlcluster(&v, "stop"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        tokio::task::spawn_blocking(move || pg_ctlcluster(&version, "start"))
            .await
            .unwrap();
    };
    publish_through_an_outage(&app, &rx, restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_on_one_node_is_answered_when_another_node_completes_the_job() {
    let Some(a) = TestApp::spawn_on(crate::helpers::Backend::Postgres, |_| {}).await else {
        return;
    };
    let url = a.database_url();
    let b = TestApp::spawn_with(|c| c.database_url = url).await;
    let worker = TestReceiver::start(Reply::status(204)).await;
    let (status, _) = a
        .call(
            reqwest::Method::PUT,
            "/v1/routes/w",
            Some(json!({"kind": "notify", "url": worker.url("/w")})),
        )
        .await;
    assert_eq!(status.as_u16(), 201);
    let (_, job) = a.post("/v1/jobs", json!({"route": "w"})).await;
    let id = job["id"].as_str().unwrap().to_string();
    let poll_url = a.url(&format!("/v1/jobs/{id}?wait=20"));
    let poll = tokio::spawn(async move {
        let started = Instant::now();
        let resp = Client::new()
            .get(poll_url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        (started, Instant::now(), resp.json::<Value>().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let completed_at = Instant::now();
    let (status, _) = b
        .post(
            &format!("/v1/jobs/{id}/complete"),
            json!({"result": "done on b"}),
        )
        .await;
    assert_eq!(status.as_u16(), 200);
    let (_, answered_at, job) = poll.await.unwrap();
    assert_eq!(job["result"], "done on b");
    let lag = answered_at.duration_since(completed_at);
    assert!(
        lag < Duration::from_millis(1000),
        "node A heard of the completion through PostgreSQL ({lag:?})"
    );
}

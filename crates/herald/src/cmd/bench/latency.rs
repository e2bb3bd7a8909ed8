//! The `latency` scenario: publish at a fixed rate with the send time (unix µs) in the payload, and let a lean
//! receiver inside the bench process record arrival minus send time for every delivery.
//!
//! The receiver runs in the bench process (not the server's), so what it measures is the whole trip: API call,
//! durable write, engine pickup and the outgoing HTTP request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Router;
use serde_json::{json, Value};

use super::load::{self, Counters};
use super::processes::TempDir;
use super::report::{percentile, Latency, Paced, Results};
use super::scenarios::Ctx;

/// Now, in microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Latencies seen so far, in milliseconds, and how many requests arrived in all.
#[derive(Default)]
pub struct Arrivals {
    /// Publish-to-receive latencies of the requests that carried `data.sent_us`, ms.
    pub samples: Mutex<Vec<f64>>,
    /// Every request received.
    pub total: AtomicU64,
}

/// Shared by the receiver and the scenario.
pub type Samples = Arc<Arrivals>;

/// Every POST: read `data.sent_us` from the envelope, record the latency, answer 204.
async fn arrive(State(arrivals): State<Samples>, body: Bytes) -> StatusCode {
    let now = now_us();
    arrivals.total.fetch_add(1, Ordering::Relaxed);
    let sent = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["data"]["sent_us"].as_u64());
    if let Some(sent) = sent {
        let ms = now.saturating_sub(sent) as f64 / 1000.0;
        arrivals.samples.lock().expect("samples lock").push(ms);
    }
    StatusCode::NO_CONTENT
}

/// Start the in-process receiver on an ephemeral loopback port; returns its base URL.
pub async fn start_receiver(
    samples: Samples,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let app = Router::new().fallback(arrive).with_state(samples);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}"), task))
}

/// `latency` (the paced scenario): p50/p95/p99 of publish-to-receive at `ctx.rate` events/s for
/// `ctx.duration`, the delivery rate from the first publish to the last arrival, and the lag (how long after
/// the last publish the last delivery arrived: near zero while delivery keeps up).
pub async fn latency(ctx: &Ctx, results: &mut Results) -> anyhow::Result<()> {
    let samples: Samples = Arc::default();
    let (receiver, receiver_task) = start_receiver(samples.clone()).await?;
    let dir = TempDir::new("latency")?;
    let server = ctx.server(&dir, "all").await?;
    ctx.endpoint(&server, &format!("{receiver}/latency"), ctx.max_in_flight)
        .await?;

    let total = (ctx.rate as f64 * ctx.duration.as_secs_f64()).round() as u64;
    let bar = ctx.bar("latency", Some(total));
    bar.set_message(format!("{} events/s", ctx.rate));
    let client = ctx.api(&server)?;
    let counters = Arc::new(Counters::default());
    let progress = bar.clone();
    let answers: Arc<Mutex<Vec<f64>>> = Arc::default();
    let answered = answers.clone();
    let started = Instant::now();
    let out = load::fixed_rate(ctx.rate, ctx.duration, counters, move |i| {
        let client = client.clone();
        let answered = answered.clone();
        progress.set_position(i);
        async move {
            // The send time is taken when the request is about to go out, not when it was scheduled.
            let sent = Instant::now();
            let payload = json!({ "n": i, "sent_us": now_us() });
            let ok = load::publish_ok(&client, "bench.latency", &payload).await;
            let ms = sent.elapsed().as_secs_f64() * 1000.0;
            answered.lock().expect("answers lock").push(ms);
            ok
        }
    })
    .await;
    let published = Instant::now();
    bar.set_message("waiting for the last deliveries");
    let deadline = published + Duration::from_secs(60);
    while (samples.samples.lock().expect("samples lock").len() as u64) < out.ok {
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let drained = Instant::now();
    bar.finish_and_clear();
    results.note_rss(server.peak_rss_mb());
    receiver_task.abort();
    if out.errors > 0 {
        bail!("{} of {} publishes failed", out.errors, out.errors + out.ok);
    }
    let mut seen = std::mem::take(&mut *samples.samples.lock().expect("samples lock"));
    if (seen.len() as u64) < out.ok {
        bail!(
            "only {} of {} events arrived within 60 s",
            seen.len(),
            out.ok
        );
    }
    seen.sort_by(f64::total_cmp);
    let p = |q| percentile(&seen, q).unwrap_or(0.0);
    results.latency_ms = Some(Latency {
        p50: p(50.0),
        p95: p(95.0),
        p99: p(99.0),
    });
    let mut answers = std::mem::take(&mut *answers.lock().expect("answers lock"));
    answers.sort_by(f64::total_cmp);
    let a = |q| percentile(&answers, q).unwrap_or(0.0);
    results.paced = Some(Paced {
        delivered_per_s: out.ok as f64 / (drained - started).as_secs_f64(),
        lag_ms: (drained - published).as_secs_f64() * 1000.0,
        publish_p50: a(50.0),
        publish_p99: a(99.0),
    });
    Ok(())
}

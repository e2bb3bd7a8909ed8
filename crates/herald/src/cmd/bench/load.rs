//! The load generator: a keep-alive `reqwest` client driven by N concurrent tasks (closed loop, for
//! throughput) or by a fixed-rate ticker (open loop, for latency).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use herald_api::client::{Client, RequestOptions};
use herald_api::endpoints::EndpointInput;
use herald_api::events::PublishInput;
use serde_json::Value;

/// A keep-alive HTTP/1.1 client sized for `concurrency` connections, with the bench's bearer token.
pub fn client(concurrency: usize, token: &str) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse()?,
    );
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(concurrency.max(1))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// When a closed-loop run stops.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this many requests.
    Count(u64),
    /// After this long (requests in flight finish).
    After(Duration),
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests that failed or answered otherwise.
    pub errors: u64,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
}

impl Outcome {
    /// Successful requests per second.
    pub fn per_s(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Counters shared with a progress display.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests answered 2xx so far.
    pub ok: AtomicU64,
    /// Failed requests so far.
    pub errors: AtomicU64,
}

/// Run `request(i)` for i = 0, 1, … from `concurrency` tasks until `stop`. Each call resolves to whether the
/// request succeeded.
pub async fn closed_loop<F, Fut>(
    concurrency: usize,
    stop: Stop,
    counters: Arc<Counters>,
    request: F,
) -> Outcome
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (request, next, counters) = (request.clone(), next.clone(), counters.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let more = match stop {
                        Stop::Count(n) => i < n,
                        Stop::After(d) => start.elapsed() < d,
                    };
                    if !more {
                        break;
                    }
                    let counter = if request(i).await {
                        &counters.ok
                    } else {
                        &counters.errors
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    Outcome {
        ok: counters.ok.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    }
}

/// Start `request(i)` at a fixed `rate` per second for `duration` without waiting for answers (open loop), then
/// wait for all of them.
pub async fn fixed_rate<F, Fut>(
    rate: u32,
    duration: Duration,
    counters: Arc<Counters>,
    request: F,
) -> Outcome
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let total = (rate as f64 * duration.as_secs_f64()).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        // Sleep until this request's slot: no drift, no burst-compensation beyond what has fallen behind.
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let fut = request(i);
        let counters = counters.clone();
        tasks.push(tokio::spawn(async move {
            let counter = if fut.await {
                &counters.ok
            } else {
                &counters.errors
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Outcome {
        ok: counters.ok.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    }
}

/// Publish one event through the typed API client; whether Herald accepted it.
pub async fn publish_ok(client: &Client, event_type: &str, payload: &Value) -> bool {
    let Ok(payload) = serde_json::value::to_raw_value(payload) else {
        return false;
    };
    let input = PublishInput {
        event_type: event_type.to_string(),
        payload,
        idempotency_key: None,
    };
    client
        .publish(&input, &RequestOptions::default())
        .await
        .is_ok()
}

/// Create an endpoint delivering to `url` (default settings unless `max_in_flight`); its id.
pub async fn create_endpoint(
    client: &Client,
    url: &str,
    max_in_flight: Option<u32>,
) -> anyhow::Result<String> {
    let input = EndpointInput {
        url: Some(url.to_string()),
        max_in_flight,
        ..EndpointInput::default()
    };
    let endpoint = client
        .create_endpoint(&input)
        .await
        .map_err(|e| anyhow!("creating an endpoint for {url}: {e}"))?;
    Ok(endpoint.id)
}

/// POST JSON and return whether the answer was 2xx.
pub async fn post_ok(client: &reqwest::Client, url: &str, body: &Value) -> bool {
    match client.post(url).json(body).send().await {
        Ok(resp) => {
            let ok = resp.status().is_success();
            // Read the body so the connection goes back to the pool.
            let _ = resp.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

/// GET JSON (any 2xx).
pub async fn get_json(client: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let resp = client.get(url).send().await?;
    let status = resp.status();
    if !status.is_success() {
        bail!("GET {url} answered {status}");
    }
    Ok(resp.json().await?)
}

//! `herald receiver`: a webhook receiver for trying Herald out and testing failure handling (seed 003).
//!
//! Accepts `POST` on any path; fails a chosen percentage of requests with 500; can delay every answer; verifies
//! Standard Webhooks signatures when given the secret (401 when they do not match); counts duplicates by
//! `webhook-id`; serves its counters at `GET /stats` and the last deliveries at `GET /received`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::get;
use axum::{Json, Router};
use herald_core::signing::{verify, Secret};
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// Deliveries kept for `GET /received`.
const KEPT: usize = 1000;
/// Signature timestamps accepted this far from now (Standard Webhooks' recommendation).
const TOLERANCE_SECS: i64 = 300;

/// How the receiver behaves.
#[derive(Debug, Clone, Default)]
pub struct ReceiverConfig {
    /// Percentage (0-100) of requests answered 500.
    pub failure_rate: u8,
    /// Delay before every answer.
    pub delay: Duration,
    /// Verify signatures with this secret.
    pub secret: Option<Secret>,
    /// Print one line per delivery.
    pub print: bool,
}

/// Counters served at `GET /stats`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Requests received.
    pub received: u64,
    /// Distinct `webhook-id`s.
    pub unique: u64,
    /// Requests whose `webhook-id` was seen before.
    pub duplicates: u64,
    /// Requests answered 500 on purpose.
    pub failed_on_purpose: u64,
    /// Requests refused for a bad or missing signature.
    pub invalid_signatures: u64,
}

/// One received delivery, as served at `GET /received`.
#[derive(Debug, Clone, Serialize)]
pub struct Received {
    /// Request path.
    pub path: String,
    /// `webhook-id` header.
    pub webhook_id: Option<String>,
    /// `x-correlation-id` header.
    pub correlation_id: Option<String>,
    /// Whether the signature verified (None without a secret).
    pub signature_valid: Option<bool>,
    /// Body, as JSON when it parses.
    pub body: Value,
    /// Status answered.
    pub status: u16,
}

#[derive(Default)]
struct Seen {
    stats: ReceiverStats,
    ids: HashMap<String, u32>,
    recent: VecDeque<Received>,
}

#[derive(Clone)]
struct ReceiverState {
    config: Arc<ReceiverConfig>,
    seen: Arc<Mutex<Seen>>,
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn check_signature(secret: &Secret, headers: &HeaderMap, body: &[u8]) -> bool {
    let (Some(id), Some(ts), Some(sig)) = (
        header(headers, "webhook-id"),
        header(headers, "webhook-timestamp").and_then(|t| t.parse::<i64>().ok()),
        header(headers, "webhook-signature"),
    ) else {
        return false;
    };
    let now = crate::app::now_ms() / 1000;
    verify(secret, &id, ts, body, &sig, now, TOLERANCE_SECS).is_ok()
}

async fn receive(
    State(state): State<ReceiverState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let config = &state.config;
    if !config.delay.is_zero() {
        tokio::time::sleep(config.delay).await;
    }
    let signature_valid = config
        .secret
        .as_ref()
        .map(|s| check_signature(s, &headers, &body));
    let fail = config.failure_rate > 0 && rand::rng().random_range(0..100u8) < config.failure_rate;
    let status = match (signature_valid, fail) {
        (Some(false), _) => StatusCode::UNAUTHORIZED,
        (_, true) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::NO_CONTENT,
    };
    let webhook_id = header(&headers, "webhook-id");
    let mut seen = state.seen.lock().expect("receiver lock");
    seen.stats.received += 1;
    match status {
        StatusCode::UNAUTHORIZED => seen.stats.invalid_signatures += 1,
        StatusCode::INTERNAL_SERVER_ERROR => seen.stats.failed_on_purpose += 1,
        _ => {}
    }
    let mut duplicate = false;
    if let Some(id) = &webhook_id {
        let count = seen.ids.entry(id.clone()).or_insert(0);
        *count += 1;
        duplicate = *count > 1;
        if duplicate {
            seen.stats.duplicates += 1;
        } else {
            seen.stats.unique += 1;
        }
    }
    if config.print {
        println!(
            "{} {} {} webhook-id={} bytes={}{}{}",
            herald_core::time::format_rfc3339_ms(crate::app::now_ms()),
            status.as_u16(),
            uri.path(),
            webhook_id.as_deref().unwrap_or("-"),
            body.len(),
            match signature_valid {
                Some(true) => " signature=ok",
                Some(false) => " signature=INVALID",
                None => "",
            },
            if duplicate { " DUPLICATE" } else { "" },
        );
    }
    if seen.recent.len() == KEPT {
        seen.recent.pop_front();
    }
    seen.recent.push_back(Received {
        path: uri.path().to_string(),
        webhook_id,
        correlation_id: header(&headers, "x-correlation-id"),
        signature_valid,
        body: serde_json::from_slice(&body)
            .unwrap_or_else(|_| json!(String::from_utf8_lossy(&body))),
        status: status.as_u16(),
    });
    status
}

async fn stats(State(state): State<ReceiverState>) -> Json<ReceiverStats> {
    Json(state.seen.lock().expect("receiver lock").stats.clone())
}

async fn received(State(state): State<ReceiverState>) -> Json<Value> {
    let seen = state.seen.lock().expect("receiver lock");
    Json(json!({ "data": seen.recent.iter().collect::<Vec<_>>() }))
}

/// The receiver's routes.
pub fn router(config: ReceiverConfig) -> Router {
    let state = ReceiverState {
        config: Arc::new(config),
        seen: Default::default(),
    };
    Router::new()
        .route("/stats", get(stats))
        .route("/received", get(received))
        .fallback(receive)
        .with_state(state)
}

/// Serve the receiver on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    config: ReceiverConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Bind `127.0.0.1:port` (0 = any free port).
pub async fn bind(port: u16) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

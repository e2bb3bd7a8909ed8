//! One attempt of one claimed delivery: sign, send, let the retry policy decide, hand the result to the recorder.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit};

use herald_core::retry::{AttemptOutcome, Decision, ErrorKind, RetryContext};
use herald_core::signing::{signature_header, Secret};
use herald_store::{AttemptRecord, AttemptResult, ClaimedDelivery, NextState};

use super::client::{DeliveryClient, Outgoing, Sent};
use super::limits::Limits;
use crate::app::now_ms;
use crate::auth_client::{ServiceAuth, ServiceAuthenticator};
use crate::random::jitter_sample;

/// What every attempt task shares.
pub struct AttemptContext {
    /// The HTTP client.
    pub client: DeliveryClient,
    /// Per-key bookkeeping.
    pub limits: Limits,
    /// Where results go to be recorded.
    pub results: mpsc::UnboundedSender<AttemptResult>,
    /// Notified whenever an attempt finishes (a slot is free).
    pub slot_freed: Notify,
    /// Lease owner.
    pub owner: String,
    /// Service-user credentials for deliveries that carry `auth`.
    pub authenticator: ServiceAuthenticator,
}

/// Headers of one attempt: identity, time, signature, correlation, then the endpoint's own.
fn headers(
    d: &ClaimedDelivery,
    timestamp_secs: i64,
    body: &[u8],
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::with_capacity(4 + d.headers.len());
    let mut push = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            out.push((n, v));
        }
    };
    push("webhook-id", &d.event_id);
    push("webhook-timestamp", &timestamp_secs.to_string());
    let secrets: Vec<Secret> = d
        .secrets
        .iter()
        .filter_map(|s| Secret::parse(s).ok())
        .collect();
    if !secrets.is_empty() {
        let refs: Vec<&Secret> = secrets.iter().collect();
        push(
            "webhook-signature",
            &signature_header(&refs, &d.event_id, timestamp_secs, body),
        );
    }
    push("x-correlation-id", &d.correlation_id);
    for (name, value) in &d.headers {
        push(name, value);
    }
    out
}

/// Run one attempt to completion. Holds `permit` (global concurrency) until the result is handed over.
pub async fn run(ctx: Arc<AttemptContext>, mut d: ClaimedDelivery, permit: OwnedSemaphorePermit) {
    if let Some(rate) = d.rate_limit_per_s {
        if let Some(start) = ctx.limits.pace(&d.dispatch_key, rate) {
            tokio::time::sleep_until(start.into()).await;
        }
    }
    let started_ms = now_ms();
    let clock = Instant::now();
    // The attempt owns the claimed delivery: hand its body to the request without copying it.
    let body = Bytes::from(std::mem::take(&mut d.body));
    let mut out_headers = headers(&d, started_ms / 1000, &body);
    let auth: Option<ServiceAuth> = d.auth.as_deref().and_then(|a| serde_json::from_str(a).ok());
    let mut refused = None;
    if let Some(auth) = &auth {
        match ctx.authenticator.authorization(auth).await {
            Ok(value) => out_headers.push((hyper::header::AUTHORIZATION, value)),
            Err(e) => {
                tracing::warn!(correlation_id = %d.correlation_id, delivery_id = %d.id, error = %e,
                    "cannot get service-user credentials");
                refused = Some(Sent {
                    outcome: AttemptOutcome::Error(ErrorKind::Connect),
                    response_body: Some(e.to_string()),
                });
            }
        }
    }
    let sent = match refused {
        Some(failed) => failed,
        None => {
            ctx.client
                .send(Outgoing {
                    url: &d.url,
                    headers: out_headers,
                    body,
                    timeout: std::time::Duration::from_millis(u64::from(d.timeout_ms)),
                })
                .await
        }
    };
    if let (Some(auth), AttemptOutcome::Response { status: 401, .. }) = (&auth, &sent.outcome) {
        ctx.authenticator.invalidate(auth);
    }
    let duration_ms = clock.elapsed().as_millis().min(u128::from(u32::MAX)) as u32;
    let finished_ms = now_ms();
    let number = d.attempt_count + 1;
    let decision = d.retry_policy.decide(
        &RetryContext {
            attempt_number: number.saturating_sub(d.cycle_base).max(1),
            first_attempt_ms: d.cycle_started_ms,
            now_ms: finished_ms,
            prior_4xx: d.count_4xx,
        },
        &sent.outcome,
        jitter_sample(),
    );
    let next = match decision {
        Decision::Delivered => NextState::Delivered,
        Decision::RetryAt(at) => NextState::RetryAt(at),
        Decision::Fail => NextState::Failed,
    };
    let (status_code, error) = match &sent.outcome {
        AttemptOutcome::Response { status, .. } => (Some(*status), None),
        AttemptOutcome::Error(kind) => (None, Some(kind.as_str().to_string())),
    };
    log_attempt(&d, number, status_code, error.as_deref(), next);
    let result = AttemptResult {
        delivery_id: d.id.clone(),
        owner: ctx.owner.clone(),
        attempt: AttemptRecord {
            number,
            started_ms,
            duration_ms,
            status_code,
            error,
            response_body: sent.response_body,
        },
        was_4xx: status_code.is_some_and(|s| (400..500).contains(&s)),
        next,
        now_ms: finished_ms,
    };
    // The recorder outlives every attempt task; a send error means the node is shutting down, and the lease
    // expiry will hand the delivery to a worker again.
    let _ = ctx.results.send(result);
    ctx.limits.release(&d.dispatch_key);
    drop(permit);
    ctx.slot_freed.notify_one();
}

fn log_attempt(
    d: &ClaimedDelivery,
    number: u32,
    status: Option<u16>,
    error: Option<&str>,
    next: NextState,
) {
    match next {
        NextState::Delivered => tracing::debug!(
            correlation_id = %d.correlation_id, delivery_id = %d.id, attempt = number, status,
            "delivered"
        ),
        NextState::RetryAt(at) => tracing::info!(
            correlation_id = %d.correlation_id, delivery_id = %d.id, attempt = number, status, error,
            retry_in_ms = at - now_ms(), "attempt failed; retrying"
        ),
        NextState::Failed => tracing::warn!(
            correlation_id = %d.correlation_id, delivery_id = %d.id, attempt = number, status, error,
            "delivery failed for good; moved to the dead-letter set"
        ),
    }
}

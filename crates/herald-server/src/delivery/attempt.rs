//! One attempt of one claimed delivery: sign, send, let the retry policy decide, hand the result to the recorder.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit};

use herald_store::Store;

use herald_core::breaker::{classify, HealthPolicy};
use herald_core::retry::{AttemptOutcome, Decision, ErrorKind, RetryContext};
use herald_core::signing::{signature_header, Secret};
use herald_core::trace::TraceParent;
use herald_store::{AttemptRecord, AttemptResult, ClaimedDelivery, HealthReport, NextState};

use super::client::{DeliveryClient, Outgoing, Sent};
use super::limits::{Limits, Turns};
use crate::app::now_ms;
use crate::auth_client::{ServiceAuth, ServiceAuthenticator};
use crate::failpoint;
use crate::metrics::AttemptEnd;
use crate::random::{self, jitter_sample};

/// How long a delivery whose attempt panicked waits before it is due again.
const AFTER_PANIC_MS: i64 = 2_000;

/// What every attempt task shares.
pub struct AttemptContext {
    /// The HTTP client.
    pub client: DeliveryClient,
    /// Per-key bookkeeping: requests in flight and leased deliveries waiting for their turn.
    pub limits: Limits<Leased>,
    /// Where results go to be recorded (bounded: a full queue makes attempts wait).
    pub results: mpsc::Sender<AttemptResult>,
    /// Notified whenever an attempt finishes (a slot is free).
    pub slot_freed: Notify,
    /// This node's owner id; each claim leases under `<owner>.<n>`.
    pub owner: String,
    /// Service-user credentials for deliveries that carry `auth`.
    pub authenticator: ServiceAuthenticator,
    /// The store, to give a lease back when an attempt dies.
    pub store: Arc<dyn Store>,
    /// Where attempts are counted.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// How endpoint health is judged, sent with every result that counts towards it.
    pub health: HealthPolicy,
    /// Spans for attempts, claims and record batches.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// Keys the next claim visits first: an endpoint that just took a delivery may have more.
    pub hints: Arc<super::hints::Hints>,
    /// Results sent to the recorder and not yet taken into a batch: their requests are done, but their
    /// leases still count in the store until the batch is written.
    pub unrecorded: AtomicUsize,
}

/// A leased delivery, with what its attempt needs: the owner id it was claimed under and its slot of
/// the global concurrency.
pub struct Leased {
    pub lease_owner: Arc<str>,
    pub delivery: ClaimedDelivery,
    pub permit: OwnedSemaphorePermit,
}

/// Start an attempt for each delivery whose turn has come; give back the leases of those handed back
/// (they are due again at once, for whichever claim takes them next).
pub fn launch(ctx: &Arc<AttemptContext>, turns: Turns<Leased>) {
    for leased in turns.start {
        tokio::spawn(run(
            ctx.clone(),
            leased.lease_owner,
            leased.delivery,
            leased.permit,
        ));
    }
    if turns.handed_back.is_empty() {
        return;
    }
    let mut by_owner: std::collections::HashMap<Arc<str>, Vec<String>> = Default::default();
    for leased in turns.handed_back {
        by_owner
            .entry(leased.lease_owner)
            .or_default()
            .push(leased.delivery.id);
    }
    ctx.slot_freed.notify_one();
    let store = ctx.store.clone();
    tokio::spawn(async move {
        for (owner, ids) in by_owner {
            tracing::debug!(owner = %owner, deliveries = ids.len(),
                "giving back leases that waited for their endpoint's turn");
            give_back(store.as_ref(), &owner, &ids).await;
        }
    });
}

/// Release `ids` leased under `owner`, retrying while the store is away (a lease left to expire would
/// hold its delivery back for the whole lease); after a minute of failures the leases are left to expire.
async fn give_back(store: &dyn Store, owner: &str, ids: &[String]) {
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    let mut backoff = std::time::Duration::from_millis(50);
    loop {
        match store.release_leases(owner, ids, now_ms()).await {
            Ok(_) => return,
            Err(e) if Instant::now() + backoff > deadline => {
                tracing::warn!(error = %e, deliveries = ids.len(), "cannot give back leases; they will expire");
                return;
            }
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
}

/// Holds an attempt's slot (its global permit and its endpoint's count). Finished normally, it frees them;
/// dropped while unfinished (the attempt panicked), it frees them too and gives the delivery's lease back,
/// due shortly, so the delivery is retried instead of waiting for the lease to expire.
struct Slot {
    ctx: Arc<AttemptContext>,
    dispatch_key: String,
    delivery_id: String,
    lease_owner: Arc<str>,
    permit: Option<OwnedSemaphorePermit>,
    finished: bool,
    /// Whether the request failed (anything but delivered); a panicked attempt counts as failed.
    failed: bool,
}

impl Slot {
    fn finish(mut self, failed: bool) {
        self.finished = true;
        self.failed = failed;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let turns = self.ctx.limits.finish(&self.dispatch_key, self.failed);
        drop(self.permit.take());
        if tokio::runtime::Handle::try_current().is_ok() {
            launch(&self.ctx, turns);
        }
        self.ctx.slot_freed.notify_one();
        if self.finished {
            return;
        }
        tracing::error!(delivery_id = %self.delivery_id, "an attempt ended abnormally; its delivery will be retried");
        let (store, owner) = (self.ctx.store.clone(), self.lease_owner.clone());
        let id = self.delivery_id.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let due = now_ms() + AFTER_PANIC_MS;
                if let Err(e) = store.release_leases(&owner, &[id], due).await {
                    tracing::warn!(error = %e, "cannot give back the lease of a failed attempt; it will expire");
                }
            });
        }
    }
}

/// Headers of one attempt: identity, time, signature, correlation, trace, then the endpoint's own.
fn headers(
    d: &ClaimedDelivery,
    trace: Option<&TraceParent>,
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
    if let Some(trace) = trace {
        push("traceparent", &trace.to_string());
    }
    for (name, value) in &d.headers {
        push(name, value);
    }
    out
}

/// Run one attempt to completion. Holds `permit` (global concurrency) until the result is handed over.
/// `lease_owner` is the owner id the delivery was claimed under.
pub async fn run(
    ctx: Arc<AttemptContext>,
    lease_owner: Arc<str>,
    mut d: ClaimedDelivery,
    permit: OwnedSemaphorePermit,
) {
    let slot = Slot {
        ctx: ctx.clone(),
        dispatch_key: d.dispatch_key.clone(),
        delivery_id: d.id.clone(),
        lease_owner: lease_owner.clone(),
        permit: Some(permit),
        finished: false,
        failed: true,
    };
    failpoint::check(failpoint::points::ATTEMPT, &d.url);
    if let Some(rate) = d.rate_limit_per_s {
        if let Some(start) = ctx.limits.pace(&d.dispatch_key, rate) {
            tokio::time::sleep_until(start.into()).await;
        }
    }
    let started_ms = now_ms();
    let clock = Instant::now();
    // The attempt owns the claimed delivery: hand its body to the request without copying it.
    let body = Bytes::from(std::mem::take(&mut d.body));
    // The attempt is a span of the publisher's trace: same trace id, a span id of its own (the exported
    // span's, when spans are exported).
    let parent = d.traceparent.as_deref().and_then(TraceParent::parse);
    let mut span = ctx.telemetry.span("attempt", parent.as_ref());
    let trace = span
        .traceparent()
        .or_else(|| parent.map(|tp| tp.child(random::span_id())));
    let mut out_headers = headers(&d, trace.as_ref(), started_ms / 1000, &body);
    // Credentials that cannot be read or obtained stop the request: it is never sent without them.
    let mut refused = None;
    let auth: Option<ServiceAuth> = match d.auth.as_deref().map(serde_json::from_str) {
        None => None,
        Some(Ok(auth)) => Some(auth),
        Some(Err(e)) => {
            refused = Some(format!(
                "the stored service credentials are unreadable: {e}"
            ));
            None
        }
    };
    if let Some(auth) = &auth {
        match ctx.authenticator.authorization(auth).await {
            Ok(value) => out_headers.push((hyper::header::AUTHORIZATION, value)),
            Err(e) => refused = Some(e.to_string()),
        }
    }
    let refused = refused.map(|reason| {
        tracing::warn!(correlation_id = %d.correlation_id, delivery_id = %d.id, error = %reason,
            "cannot get service-user credentials");
        Sent {
            outcome: AttemptOutcome::Error(ErrorKind::Connect),
            response_body: Some(reason),
        }
    });
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
    let (next, end) = match decision {
        Decision::Delivered => (NextState::Delivered, AttemptEnd::Delivered),
        Decision::RetryAt(at) => (NextState::RetryAt(at), AttemptEnd::Retrying),
        Decision::Fail => (NextState::Failed, AttemptEnd::Failed),
    };
    ctx.metrics.attempt(end, f64::from(duration_ms) / 1000.0);
    let (status_code, error) = match &sent.outcome {
        AttemptOutcome::Response { status, .. } => (Some(*status), None),
        AttemptOutcome::Error(kind) => (None, Some(kind.as_str().to_string())),
    };
    log_attempt(
        &d,
        trace.as_ref(),
        number,
        status_code,
        error.as_deref(),
        next,
    );
    if ctx.telemetry.enabled() {
        span.text("herald.delivery_id", &d.id);
        span.count("herald.attempt", number as usize);
        if let Some(code) = status_code {
            span.count("http.response.status_code", usize::from(code));
        }
        if let Some(e) = &error {
            span.text("error.type", e);
        }
    }
    drop(span);
    let result = AttemptResult {
        delivery_id: d.id.clone(),
        owner: lease_owner.to_string(),
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
        health: health_report(&d, status_code, &ctx.health),
    };
    // The recorder outlives every attempt task; a send error means the node is shutting down, and the lease
    // expiry will hand the delivery to a worker again.
    ctx.unrecorded.fetch_add(1, Ordering::Relaxed);
    if ctx.results.send(result).await.is_err() {
        ctx.unrecorded.fetch_sub(1, Ordering::Relaxed);
    }
    if next == NextState::Delivered {
        // Only endpoints that answer are hinted: one in an outage has its next work scheduled later.
        ctx.hints.add([d.dispatch_key.as_str()]);
    }
    slot.finish(next != NextState::Delivered);
}

/// What the attempt says about its endpoint, for the breaker: nothing for direct deliveries (they have no
/// endpoint) and for operational events (so a failing endpoint's alerts cannot feed its own breaker).
fn health_report(
    d: &ClaimedDelivery,
    status_code: Option<u16>,
    policy: &HealthPolicy,
) -> Option<HealthReport> {
    if d.operational {
        return None;
    }
    d.endpoint_id.as_ref().map(|endpoint_id| HealthReport {
        endpoint_id: endpoint_id.clone(),
        signal: classify(status_code),
        policy: *policy,
    })
}

fn log_attempt(
    d: &ClaimedDelivery,
    trace: Option<&TraceParent>,
    number: u32,
    status: Option<u16>,
    error: Option<&str>,
    next: NextState,
) {
    let trace_id = trace.map(TraceParent::trace_id_hex);
    match next {
        NextState::Delivered => tracing::debug!(
            correlation_id = %d.correlation_id, trace_id = trace_id.as_deref(), delivery_id = %d.id, attempt = number, status,
            "delivered"
        ),
        NextState::RetryAt(at) => tracing::info!(
            correlation_id = %d.correlation_id, trace_id = trace_id.as_deref(), delivery_id = %d.id, attempt = number, status, error,
            retry_in_ms = at - now_ms(), "attempt failed; retrying"
        ),
        NextState::Failed => tracing::warn!(
            correlation_id = %d.correlation_id, trace_id = trace_id.as_deref(), delivery_id = %d.id, attempt = number, status, error,
            "delivery failed for good; moved to the dead-letter set"
        ),
    }
}

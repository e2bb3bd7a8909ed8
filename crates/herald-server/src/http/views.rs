//! JSON shapes of records as the API shows them (times as RFC 3339).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use herald_api::common::Page;
use herald_api::deliveries::{Attempt, Delivery, DeliveryDetail};
use herald_api::endpoints::{Circuit, CircuitState, Endpoint};
use herald_api::events::Event;
use herald_core::breaker::{BreakerHealth, CircuitState as CoreCircuitState};
use herald_core::ids::is_valid_id;
use herald_core::time::format_rfc3339_ms;
use herald_store::{AttemptRecord, DeliveryRecord, EndpointRecord, EventRecord};
use serde_json::Value;

use super::error::ApiError;

/// RFC 3339 of a millisecond timestamp.
pub fn time(ms: i64) -> String {
    format_rfc3339_ms(ms)
}

/// An endpoint; the secret only when `with_secret`.
pub fn endpoint(ep: &EndpointRecord, with_secret: bool) -> Endpoint {
    Endpoint {
        id: ep.id.clone(),
        url: ep.url.clone(),
        event_types: ep.event_types.clone(),
        headers: ep.headers.clone(),
        retry_policy: ep.retry_policy.clone(),
        timeout_ms: ep.timeout_ms,
        rate_limit_per_s: ep.rate_limit_per_s,
        max_in_flight: ep.max_in_flight,
        disabled: ep.disabled,
        description: ep.description.clone(),
        metadata: ep.metadata.clone(),
        created_at: time(ep.created_ms),
        updated_at: time(ep.updated_ms),
        secret: with_secret.then(|| ep.secret.clone()),
        circuit: None,
    }
}

/// An endpoint's circuit breaker at `now_ms` (`None`: no failure since its last success).
pub fn circuit(health: Option<&BreakerHealth>, now_ms: i64) -> Circuit {
    let healthy = BreakerHealth::default();
    let h = health.unwrap_or(&healthy);
    Circuit {
        state: match h.state(now_ms) {
            CoreCircuitState::Closed => CircuitState::Closed,
            CoreCircuitState::Open => CircuitState::Open,
            CoreCircuitState::HalfOpen => CircuitState::HalfOpen,
        },
        consecutive_failures: h.failures,
        failing_since: h.failing_since_ms.map(time),
        opened_at: h.open.then_some(h.opened_ms).flatten().map(time),
        next_probe_at: h.open.then_some(h.probe_ms).flatten().map(time),
        last_error: h.last_error.clone(),
    }
}

/// An event with its payload.
pub fn event(e: &EventRecord) -> Event {
    Event {
        id: e.id.clone(),
        event_type: e.event_type.clone(),
        payload: serde_json::from_str(&e.payload).unwrap_or(Value::Null),
        idempotency_key: e.idempotency_key.clone(),
        correlation_id: e.correlation_id.clone(),
        traceparent: e.traceparent.clone(),
        created_at: time(e.created_ms),
    }
}

/// A delivery (without attempts).
pub fn delivery(d: &DeliveryRecord) -> Delivery {
    Delivery {
        id: d.id.clone(),
        event_id: d.event_id.clone(),
        endpoint_id: d.endpoint_id.clone(),
        url: d.url.clone(),
        status: d.status,
        attempt_count: d.attempt_count,
        next_attempt_at: d.next_attempt_ms.map(time),
        last_status_code: d.last_status_code,
        last_error: d.last_error.clone(),
        correlation_id: d.correlation_id.clone(),
        reference_id: d.reference_id.clone(),
        created_at: time(d.created_ms),
        updated_at: time(d.updated_ms),
    }
}

/// One attempt.
pub fn attempt(a: &AttemptRecord) -> Attempt {
    Attempt {
        number: a.number,
        started_at: time(a.started_ms),
        duration_ms: a.duration_ms,
        status_code: a.status_code,
        error: a.error.clone(),
        response_body: a.response_body.clone(),
    }
}

/// A delivery with its attempts.
pub fn delivery_with_attempts(d: &DeliveryRecord, attempts: &[AttemptRecord]) -> DeliveryDetail {
    DeliveryDetail {
        delivery: delivery(d),
        attempts: attempts.iter().map(attempt).collect(),
    }
}

/// `{"data": [...], "next_cursor": ...}`.
pub fn page<T>(data: Vec<T>, next_after: Option<String>) -> Page<T> {
    Page {
        data,
        next_cursor: next_after.map(|id| encode_cursor(&id)),
    }
}

/// Opaque cursor for an id.
pub fn encode_cursor(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

/// The id inside a cursor; 400 unless it is a well-formed id with `prefix`.
pub fn decode_cursor(cursor: &str, prefix: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad_request("invalid_cursor", "cursor is not one this API returned");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let id = String::from_utf8(bytes).map_err(|_| bad())?;
    if is_valid_id(prefix, &id) {
        Ok(id)
    } else {
        Err(bad())
    }
}

/// The page a listing query asks for: its `limit` (see [`limit`]) and its `cursor` (an id with `prefix`).
pub fn page_of(
    limit_param: Option<usize>,
    cursor: Option<&str>,
    prefix: &str,
) -> Result<herald_store::Page, ApiError> {
    Ok(herald_store::Page {
        limit: limit(limit_param)?,
        after: cursor.map(|c| decode_cursor(c, prefix)).transpose()?,
        offset: 0,
    })
}

/// Page size from `limit`: default 50, 1..=250.
pub fn limit(requested: Option<usize>) -> Result<usize, ApiError> {
    match requested {
        None => Ok(50),
        Some(n) if (1..=250).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(
            "invalid_limit",
            "limit must be between 1 and 250",
        )),
    }
}

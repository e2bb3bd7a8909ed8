//! Endpoint health, shared by both stores: folding recorded attempts into each endpoint's circuit breaker
//! (kept in `dispatch_keys`), and the operational events its changes publish.
//!
//! Only results that moved their delivery on are folded in, so writing a batch of results twice (after a
//! failed commit) never counts an attempt twice, and a result from a lost lease does not count at all.

use std::collections::{BTreeMap, HashMap};

use herald_core::breaker::{BreakerHealth, HealthPolicy, Transition};
use herald_core::failure_rate::FailureWindow;
use herald_core::time::format_rfc3339_ms;
use serde_json::json;

use crate::error::{StoreError, StoreResult};
use crate::model::*;

/// A dispatch key's breaker as read from its row (the columns of [`crate::sql::DISPATCH_KEY_COLUMNS`]).
pub struct KeyRow {
    /// The dispatch key.
    pub key: String,
    /// `failures`.
    pub failures: i64,
    /// `circuit`: `closed` or `open`.
    pub circuit: String,
    /// `opened_ms`.
    pub opened_ms: Option<i64>,
    /// `probe_ms`.
    pub probe_ms: Option<i64>,
    /// `cooldown_ms`.
    pub cooldown_ms: i64,
    /// `failing_since_ms`.
    pub failing_since_ms: Option<i64>,
    /// `last_error`.
    pub last_error: Option<String>,
    /// `changed_ms`.
    pub changed_ms: Option<i64>,
    /// `window_start_ms`, `window_attempts`, `window_failures`, `prev_attempts`, `prev_failures`.
    pub window: [i64; 5],
    /// `degraded` (0 or 1).
    pub degraded: i64,
    /// `disabled_ms`.
    pub disabled_ms: Option<i64>,
}

impl KeyRow {
    /// The breaker this row holds.
    pub fn into_health(self) -> StoreResult<(String, BreakerHealth)> {
        let open = match self.circuit.as_str() {
            "open" => true,
            "closed" => false,
            other => {
                return Err(StoreError::Internal(format!(
                    "dispatch key {}: unknown circuit state {other:?}",
                    self.key
                )))
            }
        };
        let count = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
        let [start_ms, attempts, failures, prev_attempts, prev_failures] = self.window;
        let health = BreakerHealth {
            failures: count(self.failures),
            open,
            opened_ms: self.opened_ms,
            probe_ms: self.probe_ms,
            cooldown_ms: self.cooldown_ms,
            failing_since_ms: self.failing_since_ms,
            last_error: self.last_error,
            changed_ms: self.changed_ms,
            window: FailureWindow {
                start_ms,
                attempts: count(attempts),
                failures: count(failures),
                prev_attempts: count(prev_attempts),
                prev_failures: count(prev_failures),
            },
            degraded: self.degraded != 0,
            disabled_ms: self.disabled_ms,
        };
        Ok((self.key, health))
    }
}

/// [`crate::sql::DISPATCH_KEY_COLUMNS`] qualified with the `dk` alias.
pub fn qualified_columns() -> String {
    crate::sql::DISPATCH_KEY_COLUMNS
        .split(", ")
        .map(|c| format!("dk.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stored `circuit` text of a breaker.
pub fn circuit_text(health: &BreakerHealth) -> &'static str {
    if health.open {
        "open"
    } else {
        "closed"
    }
}

/// What recording a batch did to one endpoint's health.
#[derive(Debug)]
pub struct KeyChange {
    /// The endpoint.
    pub endpoint_id: String,
    /// Its breaker after the batch.
    pub health: BreakerHealth,
    /// Health changes worth an operational event, in order.
    pub transitions: Vec<Transition>,
    /// Deliveries the batch moved into the dead-letter set.
    pub failed: Vec<FailedDelivery>,
    /// When the last result that moved it was recorded.
    pub now_ms: i64,
    /// The policy it was judged by (the last result's).
    pub policy: HealthPolicy,
}

/// Results by endpoint, each with its health report.
pub type Grouped<'a> = BTreeMap<&'a str, Vec<(&'a AttemptResult, &'a HealthReport)>>;

/// A delivery that entered the dead-letter set, for `delivery.failed`.
#[derive(Debug)]
pub struct FailedDelivery {
    /// The delivery.
    pub delivery_id: String,
    /// Attempts made in all.
    pub attempts: u32,
    /// The last attempt's status, if it got an answer.
    pub status_code: Option<u16>,
    /// The last attempt's error or status, as text.
    pub last_error: Option<String>,
}

/// The results that count towards endpoint health, by endpoint, in the order given: those with a
/// [`HealthReport`] whose delivery the batch moved on (`advanced`).
pub fn reports(results: &[AttemptResult], advanced: impl Fn(&str) -> bool) -> Grouped<'_> {
    let mut out: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for r in results {
        if let Some(h) = &r.health {
            if advanced(&r.delivery_id) {
                out.entry(h.endpoint_id.as_str()).or_default().push((r, h));
            }
        }
    }
    out
}

/// Fold each endpoint's results into its breaker (`current`: the stored ones; a missing row is a healthy
/// breaker). Returns only the breakers that changed.
pub fn fold(grouped: &Grouped<'_>, mut current: HashMap<String, BreakerHealth>) -> Vec<KeyChange> {
    let mut changes = Vec::new();
    for (endpoint_id, results) in grouped {
        let before = current.remove(*endpoint_id).unwrap_or_default();
        let mut health = before.clone();
        let mut transitions = Vec::new();
        let mut failed = Vec::new();
        let (mut now_ms, mut policy) = (0, HealthPolicy::default());
        for (result, report) in results {
            let error = failure_text(&result.attempt);
            now_ms = result.now_ms;
            policy = report.policy;
            health.observe(
                report.signal,
                error.as_deref(),
                result.now_ms,
                &report.policy,
                &mut transitions,
            );
            if result.next == NextState::Failed {
                failed.push(FailedDelivery {
                    delivery_id: result.delivery_id.clone(),
                    attempts: result.attempt.number,
                    status_code: result.attempt.status_code,
                    last_error: error,
                });
            }
        }
        transitions.retain(|t| *t != Transition::Reopened);
        if health != before {
            changes.push(KeyChange {
                endpoint_id: endpoint_id.to_string(),
                health,
                transitions,
                failed,
                now_ms,
                policy,
            });
        }
    }
    changes
}

/// The values of [`crate::sql::UPSERT_DISPATCH_KEY`] (`$2`…`$16`) for a key's state, as integers and text.
pub struct KeyValues {
    /// `failures`.
    pub failures: i64,
    /// `circuit`.
    pub circuit: &'static str,
    /// `window_start_ms`, `window_attempts`, `window_failures`, `prev_attempts`, `prev_failures`.
    pub window: [i64; 5],
    /// `degraded`.
    pub degraded: i64,
}

impl KeyValues {
    /// The stored form of `h`.
    pub fn of(h: &BreakerHealth) -> KeyValues {
        let w = &h.window;
        KeyValues {
            failures: i64::from(h.failures),
            circuit: circuit_text(h),
            window: [
                w.start_ms,
                i64::from(w.attempts),
                i64::from(w.failures),
                i64::from(w.prev_attempts),
                i64::from(w.prev_failures),
            ],
            degraded: i64::from(h.degraded),
        }
    }
}

/// How a failed attempt is described in the breaker and its events: its error, or its status.
fn failure_text(attempt: &AttemptRecord) -> Option<String> {
    attempt
        .error
        .clone()
        .or_else(|| attempt.status_code.map(|c| format!("HTTP {c}")))
}

/// The operational event a health change publishes into the endpoint's tenant: `endpoint.failing` (the
/// breaker opened), `endpoint.recovered` (it closed), `endpoint.degraded` (the failure rate rose above the
/// policy's) or `endpoint.disabled` (it has only failed for too long and was disabled).
pub fn health_event(
    transition: Transition,
    change: &KeyChange,
    tenant_id: &str,
    url: &str,
) -> Option<NewEvent> {
    let policy_window_ms = change.policy.window_ms;
    let h = &change.health;
    let at = |ms: Option<i64>| ms.map(format_rfc3339_ms);
    let (event_type, payload) = match transition {
        Transition::Opened => (
            "endpoint.failing",
            json!({
                "endpoint_id": change.endpoint_id,
                "url": url,
                "consecutive_failures": h.failures,
                "last_error": h.last_error,
                "failing_since": at(h.failing_since_ms),
                "opened_at": at(h.opened_ms),
                "next_probe_at": at(h.probe_ms),
            }),
        ),
        Transition::Closed => (
            "endpoint.recovered",
            json!({
                "endpoint_id": change.endpoint_id,
                "url": url,
                "opened_at": at(h.opened_ms),
                "recovered_at": at(h.changed_ms),
            }),
        ),
        Transition::Degraded => {
            let (attempts, failures) = h.window.estimate(change.now_ms, policy_window_ms);
            (
                "endpoint.degraded",
                json!({
                    "endpoint_id": change.endpoint_id,
                    "url": url,
                    "failure_rate": if attempts > 0.0 { failures / attempts } else { 0.0 },
                    "attempts": attempts.round() as u64,
                    "failures": failures.round() as u64,
                    "window_ms": policy_window_ms,
                    "last_error": h.last_error,
                }),
            )
        }
        Transition::Disabled => (
            "endpoint.disabled",
            json!({
                "endpoint_id": change.endpoint_id,
                "url": url,
                "failing_since": at(h.failing_since_ms),
                "consecutive_failures": h.failures,
                "last_error": h.last_error,
                "disabled_at": at(h.disabled_ms),
            }),
        ),
        Transition::Reopened => return None,
    };
    Some(operational(change, tenant_id, event_type, payload))
}

/// `delivery.failed`: a delivery to the endpoint entered the dead-letter set.
pub fn delivery_failed_event(
    failed: &FailedDelivery,
    change: &KeyChange,
    tenant_id: &str,
    url: &str,
    event: (&str, &str),
) -> NewEvent {
    let payload = json!({
        "delivery_id": failed.delivery_id,
        "endpoint_id": change.endpoint_id,
        "url": url,
        "event_id": event.0,
        "event_type": event.1,
        "attempts": failed.attempts,
        "last_status_code": failed.status_code,
        "last_error": failed.last_error,
    });
    operational(change, tenant_id, "delivery.failed", payload)
}

fn operational(
    change: &KeyChange,
    tenant_id: &str,
    event_type: &str,
    payload: serde_json::Value,
) -> NewEvent {
    NewEvent {
        tenant_id: tenant_id.to_string(),
        event_type: event_type.to_string(),
        payload: payload.to_string(),
        idempotency_key: None,
        correlation_id: format!("herald.{}.{}", change.endpoint_id, change.now_ms),
        traceparent: None,
        now_ms: change.now_ms,
    }
}

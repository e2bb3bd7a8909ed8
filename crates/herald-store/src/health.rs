//! Endpoint health, shared by both stores: folding recorded attempts into each endpoint's circuit breaker
//! (kept in `dispatch_keys`), and the operational events its changes publish.
//!
//! Only results that moved their delivery on are folded in, so writing a batch of results twice (after a
//! failed commit) never counts an attempt twice, and a result from a lost lease does not count at all.

use std::collections::{BTreeMap, HashMap};

use herald_core::breaker::{BreakerHealth, Transition};
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
        let health = BreakerHealth {
            failures: u32::try_from(self.failures.max(0)).unwrap_or(u32::MAX),
            open,
            opened_ms: self.opened_ms,
            probe_ms: self.probe_ms,
            cooldown_ms: self.cooldown_ms,
            failing_since_ms: self.failing_since_ms,
            last_error: self.last_error,
            changed_ms: self.changed_ms,
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

/// What recording a batch did to one endpoint's breaker.
#[derive(Debug)]
pub struct KeyChange {
    /// The endpoint.
    pub endpoint_id: String,
    /// Its breaker after the batch.
    pub health: BreakerHealth,
    /// Breaker moves worth an operational event, in order.
    pub transitions: Vec<Transition>,
    /// When the last result that moved it was recorded.
    pub now_ms: i64,
}

/// Results by endpoint, each with its health report.
pub type Grouped<'a> = BTreeMap<&'a str, Vec<(&'a AttemptResult, &'a HealthReport)>>;

/// The results that count towards endpoint health, by endpoint, in the order given: those with a
/// [`HealthReport`] whose delivery the batch moved on (`advanced`).
pub fn reports(
    results: &[AttemptResult],
    advanced: impl Fn(&str) -> bool,
) -> Grouped<'_> {
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
pub fn fold(
    grouped: &Grouped<'_>,
    mut current: HashMap<String, BreakerHealth>,
) -> Vec<KeyChange> {
    let mut changes = Vec::new();
    for (endpoint_id, results) in grouped {
        let before = current.remove(*endpoint_id).unwrap_or_default();
        let mut health = before.clone();
        let mut transitions = Vec::new();
        let mut now_ms = 0;
        for (result, report) in results {
            let error = failure_text(&result.attempt);
            now_ms = result.now_ms;
            if let Some(t) = health.observe(
                report.signal,
                error.as_deref(),
                result.now_ms,
                &report.policy,
            ) {
                if t != Transition::Reopened {
                    transitions.push(t);
                }
            }
        }
        if health != before {
            changes.push(KeyChange {
                endpoint_id: endpoint_id.to_string(),
                health,
                transitions,
                now_ms,
            });
        }
    }
    changes
}

/// How a failed attempt is described in the breaker and its events: its error, or its status.
fn failure_text(attempt: &AttemptRecord) -> Option<String> {
    attempt
        .error
        .clone()
        .or_else(|| attempt.status_code.map(|c| format!("HTTP {c}")))
}

/// The operational event a breaker move publishes into the endpoint's tenant: `endpoint.failing` when it
/// opened, `endpoint.recovered` when it closed.
pub fn breaker_event(
    transition: Transition,
    change: &KeyChange,
    tenant_id: &str,
    url: &str,
) -> Option<NewEvent> {
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
        Transition::Reopened => return None,
    };
    Some(NewEvent {
        tenant_id: tenant_id.to_string(),
        event_type: event_type.to_string(),
        payload: payload.to_string(),
        idempotency_key: None,
        correlation_id: format!("herald.{}.{}", change.endpoint_id, change.now_ms),
        now_ms: change.now_ms,
    })
}

//! `/v1/endpoints`: subscriptions, their circuit breakers and the replay and recover answers.

use std::collections::BTreeMap;

use herald_core::retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// Fields a client sets on create (`url` required) and on patch (each optional; absent ones keep their
/// value).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    /// Target URL (http or https); checked against the node's URL policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Event type filters: exact names, `prefix.*` or `*` (default `["*"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    /// Signing secret (`whsec_` + base64 of 24-64 bytes); generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Extra request headers (at most 32; not the ones Herald sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// How failed deliveries are retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// Per-attempt timeout, 1-300000 ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// Most attempts started per second, across the cluster (at least 1; absent: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_s: Option<u32>,
    /// Most attempts in flight at once, across the cluster, 1-1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// A disabled endpoint receives nothing new; enabling it resets its circuit breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Free text, at most 1024 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON object of at most 16 KiB, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// An endpoint as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Endpoint {
    /// `ep_…`
    pub id: String,
    /// Target URL.
    pub url: String,
    /// Event type filters.
    pub event_types: Vec<String>,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
    /// Retry policy.
    pub retry_policy: RetryPolicy,
    /// Per-attempt timeout in ms.
    pub timeout_ms: u32,
    /// Attempts per second across the cluster; `null`: no limit.
    pub rate_limit_per_s: Option<u32>,
    /// Attempts in flight across the cluster.
    pub max_in_flight: u32,
    /// Whether the endpoint is disabled (by a client, or by Herald after failing too long).
    pub disabled: bool,
    /// Free text.
    pub description: Option<String>,
    /// Client metadata.
    pub metadata: Value,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// The signing secret: only in the answers of create and rotate-secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The circuit breaker: in the answers of get and list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit: Option<Circuit>,
}

/// State of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Deliveries flow.
    Closed,
    /// Deliveries wait until the next probe.
    Open,
    /// One probe may go; its outcome closes or reopens the circuit.
    HalfOpen,
}

/// An endpoint's circuit breaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Circuit {
    /// Closed, open or half-open.
    pub state: CircuitState,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// When the current run of failures began (RFC 3339).
    pub failing_since: Option<String>,
    /// When the circuit opened, while it is open.
    pub opened_at: Option<String>,
    /// When the next probe may go, while it is open.
    pub next_probe_at: Option<String>,
    /// The last failure's error.
    pub last_error: Option<String>,
}

/// Query of `GET /v1/endpoints`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EndpointListQuery {
    /// Only endpoints whose filters match this event type.
    pub event_type: Option<String>,
    /// Page size, 1-250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Query of the replay and recover routes.
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SinceQuery {
    /// RFC 3339 time.
    pub since: String,
}

/// Answer of `POST /v1/endpoints/{id}/replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Replayed {
    /// New deliveries created.
    pub replayed: u64,
}

/// Answer of `POST /v1/endpoints/{id}/recover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Recovered {
    /// Failed deliveries queued again.
    pub recovered: u64,
}

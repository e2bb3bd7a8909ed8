//! `/v1/deliveries`: one message to one URL, its attempts (the delivery log) and the operator's actions.

use std::collections::BTreeMap;

use herald_core::retry::RetryPolicy;
use herald_core::status::DeliveryStatus;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

/// A delivery (without its attempts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// `dlv_…`
    pub id: String,
    /// The event it carries (for a direct delivery, its own message id): the `webhook-id` receivers see.
    pub event_id: String,
    /// Its endpoint (`null` for a direct delivery).
    pub endpoint_id: Option<String>,
    /// Target URL.
    pub url: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempt_count: u32,
    /// When the next attempt is due (RFC 3339), while one is planned.
    pub next_attempt_at: Option<String>,
    /// Status code of the last attempt, when it had an answer.
    pub last_status_code: Option<u16>,
    /// Error of the last attempt, when it failed.
    pub last_error: Option<String>,
    /// Correlation id (`x-correlation-id`).
    pub correlation_id: String,
    /// The client's reference of a direct delivery.
    pub reference_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// One attempt: a line of the delivery log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    /// 1-based.
    pub number: u32,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// How long it took.
    pub duration_ms: u32,
    /// The receiver's status code, when it answered.
    pub status_code: Option<u16>,
    /// Why it failed without an answer, or the failing status.
    pub error: Option<String>,
    /// The first bytes of the receiver's answer.
    pub response_body: Option<String>,
}

/// A delivery with every attempt (`GET /v1/deliveries/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryDetail {
    /// The delivery.
    #[serde(flatten)]
    pub delivery: Delivery,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
}

/// Body of `POST /v1/deliveries`: one message to one URL, with no endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectInput {
    /// Target URL.
    pub url: String,
    /// Any JSON value (kept as sent, never re-encoded), sent as the body.
    #[schema(value_type = serde_json::Value)]
    pub payload: Box<RawValue>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Signing secret; unsigned when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// How failures are retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// The client's own reference, 1-200 characters, to find it by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
    /// Per-attempt timeout, 1-300000 ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
}

/// Filters of the delivery listing, bulk delete and cleanup.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// pending, in_progress, retrying, delivered, failed or cancelled.
    pub status: Option<String>,
    /// Only this endpoint's.
    pub endpoint_id: Option<String>,
    /// Only this event's.
    pub event_id: Option<String>,
    /// Only this correlation id's.
    pub correlation_id: Option<String>,
    /// Only this reference's.
    pub reference_id: Option<String>,
    /// Page size, 1-250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Cleanup: only deliveries that last changed at least this many days ago.
    pub older_than_days: Option<u32>,
}

/// Query of an endpoint's delivery log (`GET /v1/endpoints/{id}/attempts`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryLogQuery {
    /// Only deliveries with this status: pending, in_progress, retrying, delivered, failed or cancelled.
    pub status: Option<String>,
    /// Deliveries per page, 1-250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

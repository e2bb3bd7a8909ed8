//! `/v1/events`: publish an event to every matching endpoint, and read it back.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use utoipa::ToSchema;

/// Body of `POST /v1/events`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishInput {
    /// Dotted event type, such as `invoice.paid`.
    pub event_type: String,
    /// Any JSON value (kept as sent, never re-encoded), delivered as given.
    #[schema(value_type = serde_json::Value)]
    pub payload: Box<RawValue>,
    /// Publishing again with the same key within 24 h answers the first event (header
    /// `Idempotency-Key` does the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// A delivery an event fanned out to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryRef {
    /// `dlv_…`
    pub id: String,
    /// Its endpoint (`null` for a direct delivery).
    pub endpoint_id: Option<String>,
}

/// Answer of `POST /v1/events` (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublishReceipt {
    /// `evt_…`: stable, the receivers' deduplication key (`webhook-id`).
    pub id: String,
    /// The event type.
    pub event_type: String,
    /// The request's `x-correlation-id`, or a new one.
    pub correlation_id: String,
    /// One delivery per matching enabled endpoint.
    pub deliveries: Vec<DeliveryRef>,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// `evt_…`
    pub id: String,
    /// The event type.
    pub event_type: String,
    /// The payload as published.
    pub payload: Value,
    /// The idempotency key it was published with.
    pub idempotency_key: Option<String>,
    /// Correlation id, sent to receivers as `x-correlation-id`.
    pub correlation_id: String,
    /// W3C trace context its deliveries continue.
    pub traceparent: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

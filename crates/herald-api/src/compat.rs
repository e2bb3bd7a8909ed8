//! The seed compatibility routes: the broker of seed 002 (`/api/v0/…`) and the webhook status API of seed
//! 003 (`/test-webhook`, `/webhook-status…`, `/webhook-cleanup`). Their field names are the seeds'.

use herald_core::status::DeliveryStatus;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::events::DeliveryRef;

/// Body of `POST /api/v0/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Registration {
    /// The event name.
    pub event_name: String,
    /// Where its events go.
    pub webhook_url: String,
}

/// A registration (an endpoint subscribed to one event name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    /// `ep_…`
    pub id: String,
    /// The event name.
    pub event_name: String,
    /// Where its events go.
    pub webhook_url: String,
}

/// Query of `GET /api/v0/webhooks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RegistrationPageQuery {
    /// 1-250 (default 20).
    #[param(minimum = 1, maximum = 250)]
    pub page_size: Option<usize>,
    /// Registrations to skip (default 0).
    pub offset: Option<u64>,
}

/// Answer of `GET /api/v0/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistrationPage {
    /// The registrations of this page.
    pub data: Vec<Registered>,
    /// The page size used.
    pub page_size: usize,
    /// The offset used.
    pub offset: u64,
    /// Offset of the next page; `null` on the last.
    pub next_offset: Option<u64>,
}

/// A URL an event name fans out to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscriber {
    /// `ep_…`
    pub id: String,
    /// Where its events go.
    pub webhook_url: String,
}

/// Answer of `GET /api/v0/webhooks/{eventName}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscribers {
    /// The event name.
    pub event_name: String,
    /// Every enabled registration's URL.
    pub webhooks: Vec<Subscriber>,
}

/// Answer of `POST /api/v0/trigger-event/{eventName}` (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Triggered {
    /// The event name.
    pub event_name: String,
    /// `evt_…`
    pub event_id: String,
    /// Correlation id.
    pub correlation_id: String,
    /// Deliveries queued.
    pub queued: usize,
    /// The deliveries.
    pub deliveries: Vec<DeliveryRef>,
}

/// Query of `POST /test-webhook`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TestWebhookQuery {
    /// Where the test webhook goes (required).
    pub webhook_url: Option<String>,
}

/// Answer of `POST /test-webhook`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TestWebhookQueued {
    /// Always `webhook_queued`.
    pub status: String,
    /// `TEST-…`
    pub reference_id: String,
    /// The delivery id.
    pub task_id: String,
    /// `{reference_id}_{task_id}`.
    pub webhook_id: String,
    /// A sentence for people.
    pub message: String,
}

/// A webhook's status (seed 003's audit record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookStatus {
    /// `{reference_id}_{task_id}`, or the task id.
    pub webhook_id: String,
    /// The client's reference.
    pub reference_id: Option<String>,
    /// The delivery id.
    pub task_id: String,
    /// Target URL.
    pub url: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Status code of the last attempt.
    pub last_status_code: Option<u16>,
    /// Error of the last attempt.
    pub last_error: Option<String>,
    /// When the next retry is due (RFC 3339).
    pub next_retry_at: Option<String>,
    /// Correlation id.
    pub correlation_id: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// Filters of the status listing, bulk delete and cleanup.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookStatusQuery {
    /// Only this reference's.
    pub reference_id: Option<String>,
    /// pending, in_progress, retrying, delivered, failed or cancelled.
    pub status: Option<String>,
    /// Page number from 1 (at most 10000).
    pub page: Option<u64>,
    /// 1-250 (default 20).
    #[param(minimum = 1, maximum = 250)]
    pub page_size: Option<usize>,
    /// Cleanup: only those that last changed at least this many days ago.
    pub older_than_days: Option<u32>,
}

/// Answer of `GET /webhook-statuses`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookStatusPage {
    /// This page.
    pub items: Vec<WebhookStatus>,
    /// Page number.
    pub page: u64,
    /// Page size.
    pub page_size: usize,
    /// Matching webhooks in all.
    pub total: u64,
}

/// Answer of `DELETE /webhook-status/{webhook_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeleted {
    /// Always `true`.
    pub deleted: bool,
    /// The webhook removed.
    pub webhook_id: String,
}

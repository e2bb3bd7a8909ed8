//! Records the store keeps and the inputs that create or change them.
//!
//! Times are unix milliseconds (`*_ms`). JSON payloads are kept as the exact text the client sent.

use std::collections::BTreeMap;

use herald_core::breaker::{BreakerHealth, HealthPolicy, Signal};
use herald_core::retry::RetryPolicy;
use herald_core::status::DeliveryStatus;
use serde::Serialize;

/// A tenant: the unit of isolation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantRecord {
    /// Tenant id (`default`, or one an admin chose).
    pub id: String,
    /// When it was created.
    pub created_ms: i64,
}

/// An API token of a tenant. Only its SHA-256 is stored; the token itself is shown once, when made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// `tok_` and the first 20 hex digits of the hash.
    pub id: String,
    /// The tenant it acts for.
    pub tenant_id: String,
    /// Hex SHA-256 of the token.
    pub token_sha256: String,
    /// What the token is for, as its creator named it.
    pub name: Option<String>,
    /// When it was made.
    pub created_ms: i64,
    /// When it was revoked; a revoked token authenticates nothing.
    pub revoked_ms: Option<i64>,
}

impl TokenRecord {
    /// The first token of a new tenant, named `initial`.
    pub fn initial(tenant_id: &str, token_sha256: &str, now_ms: i64) -> TokenRecord {
        TokenRecord {
            id: TokenRecord::id_for(token_sha256),
            tenant_id: tenant_id.to_string(),
            token_sha256: token_sha256.to_string(),
            name: Some("initial".into()),
            created_ms: now_ms,
            revoked_ms: None,
        }
    }

    /// The id of the token whose hash is `token_sha256`.
    pub fn id_for(token_sha256: &str) -> String {
        format!("tok_{}", &token_sha256[..token_sha256.len().min(20)])
    }
}

/// A subscription: where events of some types are delivered, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointRecord {
    /// `ep_…`
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Target URL (already validated).
    pub url: String,
    /// Type filters; empty or `*` means all.
    pub event_types: Vec<String>,
    /// Current signing secret (`whsec_…`).
    pub secret: String,
    /// The secret before the last rotation, still signing until `previous_secret_expires_ms`.
    pub previous_secret: Option<String>,
    /// When the previous secret stops signing.
    pub previous_secret_expires_ms: Option<i64>,
    /// Extra headers sent with every delivery.
    pub headers: BTreeMap<String, String>,
    /// Retry policy for deliveries to this endpoint.
    pub retry_policy: RetryPolicy,
    /// Per-attempt timeout.
    pub timeout_ms: u32,
    /// Optional cap on requests per second.
    pub rate_limit_per_s: Option<u32>,
    /// Most requests in flight to this endpoint at once.
    pub max_in_flight: u32,
    /// Disabled endpoints receive no new deliveries.
    pub disabled: bool,
    /// Free text for operators.
    pub description: Option<String>,
    /// Free JSON object for the client.
    pub metadata: serde_json::Value,
    /// Creation time.
    pub created_ms: i64,
    /// Last change.
    pub updated_ms: i64,
}

/// A published event (or the message behind a direct delivery).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// `evt_…`; also the `webhook-id` of every delivery of it.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// What produced it.
    pub kind: EventKind,
    /// Event type (`direct` for direct deliveries).
    pub event_type: String,
    /// Payload JSON exactly as accepted.
    pub payload: String,
    /// Client-chosen key for safe retries of the publish call.
    pub idempotency_key: Option<String>,
    /// Correlation id carried to every delivery and log line.
    pub correlation_id: String,
    /// W3C `traceparent` of the request that published it: its attempts continue that trace.
    pub traceparent: Option<String>,
    /// When it was accepted.
    pub created_ms: i64,
}

/// Where an event came from; it decides the body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Published through `/v1/events`: delivered inside the envelope.
    Event,
    /// A direct delivery: the payload is sent as given.
    Direct,
    /// Published by Herald itself about an endpoint (`endpoint.failing`, …): delivered inside the envelope
    /// like any event, but its deliveries never count towards an endpoint's health, so they cannot raise
    /// operational events of their own.
    Operational,
}

impl EventKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Event => "event",
            EventKind::Direct => "direct",
            EventKind::Operational => "operational",
        }
    }

    /// Parse the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "event" => Some(EventKind::Event),
            "direct" => Some(EventKind::Direct),
            "operational" => Some(EventKind::Operational),
            _ => None,
        }
    }
}

/// One payload on its way to one URL.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    /// `dlv_…`
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// The event it carries.
    pub event_id: String,
    /// The endpoint, for fanned-out deliveries.
    pub endpoint_id: Option<String>,
    /// Target URL (the endpoint's at creation time, or the direct URL).
    pub url: String,
    /// Lifecycle state.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempt_count: u32,
    /// When the next attempt is due (pending or retrying only).
    pub next_attempt_ms: Option<i64>,
    /// Status code of the last attempt, if it got a response.
    pub last_status_code: Option<u16>,
    /// Error kind or message of the last failed attempt.
    pub last_error: Option<String>,
    /// Correlation id.
    pub correlation_id: String,
    /// Client reference (direct deliveries, compatibility routes).
    pub reference_id: Option<String>,
    /// Creation time.
    pub created_ms: i64,
    /// Last change.
    pub updated_ms: i64,
}

/// One HTTP try of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    /// 1-based attempt number.
    pub number: u32,
    /// When the request started.
    pub started_ms: i64,
    /// How long until the response (or error).
    pub duration_ms: u32,
    /// Response status, if any.
    pub status_code: Option<u16>,
    /// Error kind (`timeout`, `connect`, …) when no usable response came back.
    pub error: Option<String>,
    /// First 4 KiB of the response body.
    pub response_body: Option<String>,
}

/// Input of [`crate::Store::publish`].
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Owning tenant.
    pub tenant_id: String,
    /// Validated event type.
    pub event_type: String,
    /// Payload JSON text (already validated as JSON).
    pub payload: String,
    /// Optional idempotency key.
    pub idempotency_key: Option<String>,
    /// Correlation id (taken from the request or generated).
    pub correlation_id: String,
    /// W3C `traceparent` to continue (validated by the caller).
    pub traceparent: Option<String>,
    /// Acceptance time.
    pub now_ms: i64,
}

/// What a publish created, or what an earlier publish with the same idempotency key created.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The event.
    pub event: EventRecord,
    /// One per matching enabled endpoint.
    pub deliveries: Vec<DeliveryRef>,
    /// True when this answer is the replay of an earlier publish.
    pub replayed: bool,
}

/// A delivery id and the endpoint it goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryRef {
    /// `dlv_…`
    pub id: String,
    /// Target endpoint.
    pub endpoint_id: Option<String>,
}

/// Input of [`crate::Store::create_direct_delivery`].
#[derive(Debug, Clone)]
pub struct NewDirectDelivery {
    /// Owning tenant.
    pub tenant_id: String,
    /// Validated target URL.
    pub url: String,
    /// Payload JSON text, sent as given.
    pub payload: String,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
    /// Signing secret, if the client wants signatures.
    pub secret: Option<String>,
    /// Retry policy.
    pub retry_policy: RetryPolicy,
    /// Per-attempt timeout.
    pub timeout_ms: u32,
    /// Client reference.
    pub reference_id: Option<String>,
    /// Correlation id.
    pub correlation_id: String,
    /// W3C `traceparent` to continue (validated by the caller).
    pub traceparent: Option<String>,
    /// Service-user authentication for the call, as JSON.
    pub auth: Option<String>,
    /// Use this id for the message (`webhook-id`) instead of a new one: the body already names it.
    pub message_id: Option<String>,
    /// Acceptance time.
    pub now_ms: i64,
}

/// Everything a worker needs to send one claimed delivery, read in the claim itself.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// `dlv_…`
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// `webhook-id` header value.
    pub event_id: String,
    /// Endpoint, if fanned out.
    pub endpoint_id: Option<String>,
    /// Key that per-endpoint concurrency limits count against.
    pub dispatch_key: String,
    /// Current target URL.
    pub url: String,
    /// Request body, ready to send.
    pub body: String,
    /// Secrets to sign with (current first); empty means unsigned.
    pub secrets: Vec<String>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Retry policy in force.
    pub retry_policy: RetryPolicy,
    /// Per-attempt timeout.
    pub timeout_ms: u32,
    /// Most requests in flight for this dispatch key.
    pub max_in_flight: u32,
    /// Optional requests-per-second cap for this dispatch key.
    pub rate_limit_per_s: Option<u32>,
    /// Attempts made before this one.
    pub attempt_count: u32,
    /// 4xx answers received in the current retry cycle.
    pub count_4xx: u32,
    /// Attempts made before the current retry cycle (an operator retry starts a new cycle).
    pub cycle_base: u32,
    /// When the current retry cycle started (creation, or the operator retry).
    pub cycle_started_ms: i64,
    /// Correlation id.
    pub correlation_id: String,
    /// Service-user authentication for the call, as JSON.
    pub auth: Option<String>,
    /// The trace its attempts continue (W3C `traceparent`), if the publisher sent one or one was made.
    pub traceparent: Option<String>,
    /// It carries an operational event: its attempts do not count towards the endpoint's health.
    pub operational: bool,
}

/// Where a delivery goes after an attempt (decided by the retry policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextState {
    /// Got a 2xx.
    Delivered,
    /// Try again at this time.
    RetryAt(i64),
    /// Gave up: the delivery joins the dead-letter set.
    Failed,
}

/// The result of one attempt, to be recorded.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    /// Delivery attempted.
    pub delivery_id: String,
    /// Lease owner that made the attempt; a result from a lost lease changes no state.
    pub owner: String,
    /// The attempt itself.
    pub attempt: AttemptRecord,
    /// Whether the answer was a 4xx (counted against `retries_4xx`).
    pub was_4xx: bool,
    /// Next state.
    pub next: NextState,
    /// When the result was recorded.
    pub now_ms: i64,
    /// What the attempt says about its endpoint's health (`None`: it does not count, as for direct
    /// deliveries and operational events).
    pub health: Option<HealthReport>,
}

/// One attempt's word on its endpoint's health, folded into the endpoint's circuit breaker when the result is
/// recorded.
#[derive(Debug, Clone)]
pub struct HealthReport {
    /// The endpoint (its dispatch key).
    pub endpoint_id: String,
    /// Success, failure, or neither.
    pub signal: Signal,
    /// The rules it is judged by.
    pub policy: HealthPolicy,
}

/// An endpoint's circuit breaker as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointCircuit {
    /// The endpoint.
    pub endpoint_id: String,
    /// Its breaker.
    pub health: BreakerHealth,
}

/// How many endpoint breakers are not closed, across tenants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CircuitCounts {
    /// Open: waiting for the next probe.
    pub open: u64,
    /// Half-open: a probe may be in flight.
    pub half_open: u64,
}

/// Work-claim request from a worker.
#[derive(Debug, Clone, Default)]
pub struct ClaimRequest {
    /// Lease owner: this claim's own id, `<node>.<n>`.
    pub owner: String,
    /// The claiming node's id. Leases whose owner is neither `node` nor `<node>.<n>` are its peers'
    /// ([`Claim::peer_leases`]).
    pub node: String,
    /// Current time.
    pub now_ms: i64,
    /// Lease length beyond each delivery's own timeout.
    pub lease_ms: i64,
    /// Most deliveries to hand out.
    pub limit: usize,
    /// Where the round robin over dispatch keys resumes: keys after this one are served first ("" starts
    /// from the first key). Pass the previous claim's [`Claim::next_key`].
    pub after_key: String,
    /// Limit for direct deliveries, which have no endpoint setting.
    pub default_max_in_flight: u32,
    /// How many leases of a key the node may hold, as a multiple of the requests of it the node may have
    /// in flight (see [`crate::claiming::lease_room`]); 1 leases only what can be sent at once. The
    /// leases beyond are the key's next requests, ready to start as responses come back.
    pub lease_window: u32,
    /// Most leases the claim may take beyond what their keys can send at once (the part of a lease
    /// window past a window of 1), across its keys in walk order: the room the node has for leases
    /// waiting their turn. Leases past that room would be handed back as soon as they were taken.
    pub most_ahead: usize,
    /// Keys given a lease window of 1 whatever `lease_window` says: those whose latest request from this
    /// node failed, so that what their failures do to their circuit breaker is recorded before more of
    /// their requests are sent.
    pub narrow_keys: std::sync::Arc<std::collections::HashSet<String>>,
    /// Keys that may have just got due work or free slots (a publish to them, a result recorded for
    /// them): the claim visits them in its first step, after the keys its walk read, whether or not
    /// the walk would reach them in this claim. A key whose work is not due (a retry waiting, another
    /// node's leases) stays in the walk, so a walk over thousands of such keys does not hold back the
    /// keys that have work now. Hinted keys never move where the round robin resumes; a key the walk
    /// visits too is visited once. At most [`crate::claiming::WALK_STEP`] are read.
    pub hinted_keys: Vec<String>,
}

impl ClaimRequest {
    /// The lease window for `key`.
    pub fn window_for(&self, key: &str) -> u32 {
        if self.narrow_keys.contains(key) {
            1
        } else {
            self.lease_window
        }
    }
}

/// What a claim leased, and where the next one should resume.
#[derive(Debug, Default)]
pub struct Claim {
    /// The leased deliveries, grouped by dispatch key.
    pub deliveries: Vec<ClaimedDelivery>,
    /// The round robin's position for the next claim's [`ClaimRequest::after_key`].
    pub next_key: String,
    /// Due work was left that this claim could not take (its limit ran out, or it did not visit every key):
    /// claim again as soon as there is room.
    pub more: bool,
    /// For each dispatch key the claim looked at whose unexpired leases are partly held by other nodes:
    /// how many they hold. This node may have at most `max_in_flight` minus that many requests of the key
    /// in flight (see [`crate::claiming::lease_room`]).
    pub peer_leases: std::collections::HashMap<String, u32>,
}

/// Counts for `/health` and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Pending or retrying and due now.
    pub due: u64,
    /// Leased to a worker.
    pub in_flight: u64,
    /// Waiting for a later retry.
    pub scheduled: u64,
    /// In the dead-letter set.
    pub failed: u64,
}

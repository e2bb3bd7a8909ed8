//! `/health`: what an operator or a load balancer reads.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Answer of `GET /health` (200 ok, 503 degraded or unavailable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, `degraded` (the engine stopped) or `unavailable` (the store does not answer).
    pub status: String,
    /// The store.
    pub store: StoreHealth,
    /// Deliveries by state, when the store answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueCounts>,
    /// Circuit breakers not closed, when the store answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breakers: Option<CircuitBreakerCounts>,
    /// The delivery engine, on a delivering node.
    pub workers: Option<Workers>,
    /// Long polls held, when the store answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<JobsHealth>,
    /// `all`, `api` or `worker`, when the store answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The store's part of `/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreHealth {
    /// `sqlite` or `postgres`.
    pub kind: String,
    /// Whether it answered.
    pub reachable: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Deliveries by state, across tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QueueCounts {
    /// Pending or retrying and due now.
    pub due: u64,
    /// Leased to a worker.
    pub in_flight: u64,
    /// Waiting for a later retry.
    pub scheduled: u64,
    /// In the dead-letter set.
    pub failed: u64,
}

/// Circuit breakers not closed, across tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CircuitBreakerCounts {
    /// Open: waiting for the next probe.
    pub open: u64,
    /// Half-open: a probe may be in flight.
    pub half_open: u64,
}

/// The delivery engine of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Workers {
    /// Whether it runs.
    pub running: bool,
    /// Times its supervisor restarted it.
    pub restarts: u64,
    /// Attempts in flight.
    pub in_flight: u64,
    /// Most attempts in flight at once.
    pub capacity: u64,
}

/// Jobs' part of `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobsHealth {
    /// Long polls held by this node.
    pub long_polls: u64,
}

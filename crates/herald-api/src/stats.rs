//! `/v1/stats`: delivery statistics over time, for charts and the dashboard's overview.

use herald_core::status::DeliveryStatus;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Query of `GET /v1/stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Start (RFC 3339); default an hour before `until`. At most 31 days before `until`.
    pub since: Option<String>,
    /// End, excluded (RFC 3339); default now.
    pub until: Option<String>,
    /// Bucket width in seconds, a multiple of 60 from 60 to 86400 (default 60); at most 1,500 buckets.
    #[param(minimum = 60, maximum = 86400)]
    pub bucket: Option<u32>,
    /// Only this endpoint's attempts.
    pub endpoint_id: Option<String>,
}

/// Attempts over one bucket of time (or the whole range).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttemptCounts {
    /// Attempts that got a 2xx.
    pub delivered: u64,
    /// Failed attempts after which another was planned.
    pub retried: u64,
    /// Failed attempts after which the delivery gave up (dead letters).
    pub failed: u64,
    /// Share of attempts that delivered (`null` without attempts).
    pub success_rate: Option<f64>,
    /// Mean attempt duration (`null` without attempts).
    pub mean_ms: Option<f64>,
    /// Median attempt duration: the upper bound of its histogram bucket (`null` without attempts or when
    /// past the last bound, 10 s).
    pub p50_ms: Option<u32>,
    /// 90th percentile, likewise.
    pub p90_ms: Option<u32>,
    /// 99th percentile, likewise.
    pub p99_ms: Option<u32>,
}

/// One bucket of the series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatsBucket {
    /// Start of the bucket (RFC 3339).
    pub start: String,
    /// Its attempts.
    #[serde(flatten)]
    pub counts: AttemptCounts,
}

/// How many of the tenant's deliveries have one status (counted up to 100,000).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatusCount {
    /// The status.
    pub status: DeliveryStatus,
    /// How many.
    pub count: u64,
    /// True when there are more than `count`.
    pub more: bool,
}

/// The oldest delivery still waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OldestOutstanding {
    /// `dlv_…`
    pub delivery_id: String,
    /// pending, in_progress or retrying.
    pub status: DeliveryStatus,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// How long it has waited, in seconds.
    pub age_secs: u64,
}

/// Answer of `GET /v1/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// Start of the range (RFC 3339), rounded down to the minute.
    pub since: String,
    /// End of the range, excluded (RFC 3339).
    pub until: String,
    /// Bucket width in seconds.
    pub bucket_secs: u32,
    /// The endpoint the attempts are limited to, if any.
    pub endpoint_id: Option<String>,
    /// Attempts over the whole range.
    pub totals: AttemptCounts,
    /// Buckets with attempts, in time order (buckets without any are left out).
    pub buckets: Vec<StatsBucket>,
    /// The tenant's deliveries not yet done and its dead letters, now (whatever the range).
    pub outstanding: Vec<StatusCount>,
    /// The tenant's oldest delivery still waiting, now.
    pub oldest_outstanding: Option<OldestOutstanding>,
}

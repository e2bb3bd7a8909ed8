//! `/v1/jobs`: asynchronous operations, their long poll and their webhooks.

use herald_core::status::JobStatus;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// Where a result too large to inline can be downloaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResultIndirect {
    /// Pre-signed, expiring download URL; it serves the gzip bytes.
    pub url: String,
    /// When `url` stops working (RFC 3339, whole seconds).
    pub expires_at: String,
    /// Size of the uncompressed data in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the uncompressed data.
    pub sha256: String,
    /// Encoding of the bytes `url` serves: always `gzip`.
    pub content_encoding: String,
}

/// A job as clients see it: API answers and the `data` of job webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// `job_…`
    pub id: String,
    /// The route its work went to.
    pub route: String,
    /// Where it stands.
    pub status: JobStatus,
    /// The last progress report.
    pub progress: Option<Value>,
    /// Correlation id (`x-correlation-id`).
    pub correlation_id: String,
    /// The result, when it succeeded and the result is inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Where the result is, when it was too large to inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_indirect: Option<ResultIndirect>,
    /// The error, when it failed or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// The body of a job webhook (fixed): the delivery envelope with the job as `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobWebhook {
    /// Message id, the receivers' deduplication key.
    pub id: String,
    /// `job.progress`, `job.succeeded` or `job.failed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339.
    pub timestamp: String,
    /// The job.
    pub data: Job,
}

/// Body of `POST /v1/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobInput {
    /// The route its work goes to.
    pub route: String,
    /// Any JSON value, handed to the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    pub payload: Option<Box<serde_json::value::RawValue>>,
    /// Where job webhooks go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Also send a webhook for each progress report.
    #[serde(
        default,
        rename = "progressReports",
        skip_serializing_if = "Option::is_none"
    )]
    pub progress_reports: Option<bool>,
    /// `long`: hold the request until the job ends (or the wait expires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<String>,
}

/// Query of `GET /v1/jobs/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Long-poll up to this many seconds (at most 120) for the job to end.
    pub wait: Option<u64>,
}

/// Query of `GET /v1/jobs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListQuery {
    /// accepted, running, succeeded, failed or cancelled.
    pub status: Option<String>,
    /// Only this route's.
    pub route: Option<String>,
    /// Page size, 1-250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Body of `POST /v1/jobs/{id}/progress`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressInput {
    /// Any JSON value.
    pub progress: Value,
}

/// Body of `POST /v1/jobs/{id}/complete`: exactly one of `result` and `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteInput {
    /// The job's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why the job failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

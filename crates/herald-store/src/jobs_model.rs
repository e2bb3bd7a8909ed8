//! Records of asynchronous jobs (seeds 000 and 001) and the routes that say where their work goes.

use herald_core::status::JobStatus;

use crate::model::NewDirectDelivery;

/// Where a job's work goes.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteRecord {
    /// Owning tenant.
    pub tenant_id: String,
    /// Route name (path segment of `/async/{route}/…`).
    pub name: String,
    /// `proxy` (Herald calls the upstream and turns its answer into the result) or `notify` (Herald hands the
    /// job to a worker URL, which reports back).
    pub kind: RouteKind,
    /// Upstream or worker URL.
    pub url: String,
    /// Timeout of the upstream call (proxy routes).
    pub timeout_ms: u32,
    /// Secret signing Herald's calls for this route (worker notifications, callbacks).
    pub secret: String,
    /// Service-user authentication for outbound calls, as JSON.
    pub auth: Option<String>,
    /// Retry policy of notifications and callbacks, as JSON.
    pub retry_policy: String,
    /// Creation time.
    pub created_ms: i64,
    /// Last change.
    pub updated_ms: i64,
}

/// The two kinds of route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// Seed 001's gateway: call the upstream, deliver its answer to the callback.
    Proxy,
    /// Seed 000's pipeline: notify a worker, which reports progress and completion.
    Notify,
}

impl RouteKind {
    /// Stored and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Proxy => "proxy",
            RouteKind::Notify => "notify",
        }
    }

    /// Parse the stored or API name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "proxy" => Some(RouteKind::Proxy),
            "notify" => Some(RouteKind::Notify),
            _ => None,
        }
    }
}

/// An asynchronous operation whose outcome reaches the client by long poll and/or webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// `job_…`
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Route name.
    pub route: String,
    /// Lifecycle state.
    pub status: JobStatus,
    /// Last progress value (JSON text).
    pub progress: Option<String>,
    /// Request payload (JSON text).
    pub payload: Option<String>,
    /// Result (JSON text), unless it was offloaded.
    pub result: Option<String>,
    /// Error (JSON text).
    pub error: Option<String>,
    /// Offloaded result: `{"key","size","sha256"}` (JSON text).
    pub result_blob: Option<String>,
    /// Where completion (and progress) webhooks go.
    pub webhook_url: Option<String>,
    /// Send a webhook on every progress change.
    pub progress_reports: bool,
    /// Correlation id of every call made for the job.
    pub correlation_id: String,
    /// W3C `traceparent` of the request that started it: every call Herald makes for it continues the trace.
    pub traceparent: Option<String>,
    /// While the initiating request long-polls: until when. A completion before then is answered by that
    /// long poll instead of a webhook.
    pub waiter_until_ms: Option<i64>,
    /// After this time an unfinished proxy job is considered interrupted.
    pub deadline_ms: Option<i64>,
    /// Creation time.
    pub created_ms: i64,
    /// Last change.
    pub updated_ms: i64,
}

/// How a job ends.
#[derive(Debug, Clone)]
pub struct JobCompletion {
    /// Owning tenant.
    pub tenant_id: String,
    /// Job id.
    pub id: String,
    /// `succeeded` or `failed`.
    pub status: JobStatus,
    /// Result JSON, when kept inline.
    pub result: Option<String>,
    /// Error JSON.
    pub error: Option<String>,
    /// Offloaded result reference JSON.
    pub result_blob: Option<String>,
    /// The completion webhook, sent unless the initiating long poll is still waiting.
    pub webhook: Option<NewDirectDelivery>,
    /// Time of completion.
    pub now_ms: i64,
}

/// What a completion did.
#[derive(Debug, Clone, PartialEq)]
pub struct Completed {
    /// The job as it now stands.
    pub job: JobRecord,
    /// Whether the completion webhook was queued (false when the long poll answered instead, or none was
    /// asked for).
    pub webhook_queued: bool,
}

/// Which jobs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Status equals.
    pub status: Option<JobStatus>,
    /// Route name equals.
    pub route: Option<String>,
}

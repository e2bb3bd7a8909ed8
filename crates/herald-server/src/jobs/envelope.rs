//! The fixed job webhook body (SPEC §5): the §2 envelope with `type` `job.progress`, `job.succeeded` or
//! `job.failed` (or `job.cancelled`) and `data` = the job.

use herald_api::jobs::{Job, JobWebhook};
use herald_core::status::JobStatus;
use herald_core::time::format_rfc3339_ms;
use herald_store::JobRecord;
use serde_json::Value;

use crate::blobs::ResultIndirect;

fn parsed(text: &Option<String>) -> Option<Value> {
    text.as_deref()
        .map(|t| serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())))
}

/// The job as clients see it (API answers and webhook `data`).
pub fn job_view(job: &JobRecord, indirect: Option<&ResultIndirect>) -> Job {
    Job {
        id: job.id.clone(),
        route: job.route.clone(),
        status: job.status,
        progress: parsed(&job.progress),
        correlation_id: job.correlation_id.clone(),
        result: parsed(&job.result),
        result_indirect: indirect.cloned(),
        error: parsed(&job.error),
    }
}

/// Webhook type for a job's state: progress while unfinished, else its outcome.
pub fn webhook_type(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Succeeded => "job.succeeded",
        JobStatus::Failed => "job.failed",
        JobStatus::Cancelled => "job.cancelled",
        JobStatus::Accepted | JobStatus::Running => "job.progress",
    }
}

/// The webhook body for `job` with message id `id`.
pub fn webhook_body(
    id: &str,
    job: &JobRecord,
    indirect: Option<&ResultIndirect>,
    now_ms: i64,
) -> String {
    let body = JobWebhook {
        id: id.to_string(),
        kind: webhook_type(job.status).to_string(),
        timestamp: format_rfc3339_ms(now_ms),
        data: job_view(job, indirect),
    };
    serde_json::to_string(&body).expect("plain data serializes")
}

/// The message id of a job's completion webhook: fixed per job, so queuing it twice is detected.
pub fn completion_message_id(job_id: &str) -> String {
    format!("{job_id}.completed")
}

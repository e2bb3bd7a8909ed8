//! How jobs end: a worker's or an upstream's outcome (with large results offloaded), and a cancel. Each
//! ending and its webhook are one commit.

use herald_core::status::JobStatus;
use herald_store::error::StoreResult;
use herald_store::{Completed, JobCompletion, JobRecord, StoreError};
use serde_json::json;

use super::envelope::{completion_message_id, webhook_body};
use super::result::{JobOutcome, ResultJson};
use super::service::JobService;
use crate::app::now_ms;
use crate::blobs::ResultIndirect;

impl JobService {
    /// End a job with `outcome` (result or error); results over the threshold are compressed into the blob
    /// store as they are written out, never assembled as one string first.
    pub async fn complete(
        &self,
        tenant_id: &str,
        id: &str,
        outcome: JobOutcome,
    ) -> StoreResult<Completed> {
        let job = self.store.get_job(tenant_id, id).await?;
        if job.status.is_final() {
            return Err(StoreError::Conflict(format!(
                "job already {}",
                job.status.as_str()
            )));
        }
        let now = now_ms();
        let mut done = job.clone();
        let mut indirect = None;
        match outcome {
            Ok(result) if result.len() > self.offload_threshold => {
                done.status = JobStatus::Succeeded;
                match self.offload(id, &result, now).await {
                    Ok(stored) => {
                        let reference = json!({"key": format!("jobs/{id}"), "size": stored.size, "sha256": stored.sha256});
                        done.result_blob = Some(reference.to_string());
                        indirect = Some(stored);
                    }
                    Err(e) => {
                        tracing::warn!(job_id = %id, correlation_id = %job.correlation_id, error = %e, "offload failed; keeping the result inline");
                        done.result = Some(result.into_string());
                    }
                }
            }
            Ok(result) => {
                done.status = JobStatus::Succeeded;
                done.result = Some(result.into_string());
            }
            Err(error) => {
                done.status = JobStatus::Failed;
                done.error = Some(error.into_string());
            }
        }
        self.finish(&job, done, indirect, now).await
    }

    /// `POST /v1/jobs/{id}/cancel`: end an unfinished job as cancelled. A proxy call running on this node
    /// is abandoned (its connection dropped); one on another node finds the job ended and its answer is
    /// discarded. The callback hears `job.cancelled`, like any other ending. Conflict if it already ended.
    pub async fn cancel(&self, tenant_id: &str, id: &str) -> StoreResult<JobRecord> {
        let job = self.store.get_job(tenant_id, id).await?;
        if job.status.is_final() {
            return Err(StoreError::Conflict(format!(
                "job already {}",
                job.status.as_str()
            )));
        }
        let mut done = job.clone();
        done.status = JobStatus::Cancelled;
        done.error = Some(
            json!({"kind": "cancelled", "message": "the job was cancelled through the API"})
                .to_string(),
        );
        let completed = self.finish(&job, done, None, now_ms()).await?;
        if let Some(call) = self.proxy_calls.lock().expect("proxy calls").remove(id) {
            call.abort();
        }
        Ok(completed.job)
    }

    /// Store a job's ending (`done`), queue its webhook in the same commit, and tell whoever waits.
    async fn finish(
        &self,
        job: &JobRecord,
        done: JobRecord,
        indirect: Option<ResultIndirect>,
        now: i64,
    ) -> StoreResult<Completed> {
        let (tenant_id, id) = (job.tenant_id.as_str(), job.id.as_str());
        let webhook = match &job.webhook_url {
            Some(url) => {
                let route = self.store.get_route(tenant_id, &job.route).await.ok();
                let message_id = completion_message_id(id);
                let body = webhook_body(&message_id, &done, indirect.as_ref(), now);
                Some(self.outbound(job, route.as_ref(), url, body, Some(message_id)))
            }
            None => None,
        };
        let completed = self
            .store
            .complete_job(JobCompletion {
                tenant_id: tenant_id.to_string(),
                id: id.to_string(),
                status: done.status,
                result: done.result,
                error: done.error,
                result_blob: done.result_blob,
                webhook,
                now_ms: now,
            })
            .await?;
        tracing::info!(job_id = %id, correlation_id = %job.correlation_id, status = completed.job.status.as_str(),
            webhook = completed.webhook_queued, "job ended");
        // Only proxy jobs have a deadline (set when they are created).
        let mode = if job.deadline_ms.is_some() {
            "proxy"
        } else {
            "notify"
        };
        self.metrics.job_ended(
            mode,
            completed.job.status.as_str(),
            (now - job.created_ms).max(0) as f64 / 1000.0,
        );
        self.waiters.changed(id);
        if completed.webhook_queued {
            self.work_ready.notify_one();
        }
        Ok(completed)
    }

    /// Compress `result` (off the async runtime) and store it as the job's blob.
    async fn offload(
        &self,
        id: &str,
        result: &ResultJson,
        now: i64,
    ) -> anyhow::Result<crate::blobs::ResultIndirect> {
        let result = result.clone();
        let compressed = tokio::task::spawn_blocking(move || {
            let mut compressor = crate::blobs::Compressor::new(result.len());
            result.write_to(&mut compressor)?;
            compressor.finish()
        })
        .await??;
        self.blobs
            .put_compressed(&format!("jobs/{id}"), compressed, now)
            .await
    }
}

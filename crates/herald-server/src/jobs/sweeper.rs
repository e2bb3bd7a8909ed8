//! Background upkeep of jobs: interrupted proxy calls and retention.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::result::ResultJson;
use super::JobService;
use crate::app::now_ms;

impl JobService {
    /// Every `every`: fail jobs whose proxy call was interrupted (the node died mid-call) so their clients hear
    /// of it, and purge finished jobs (and their offloaded results) past retention.
    pub async fn sweep(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            self.fail_overdue().await;
            self.purge_expired().await;
        }
    }

    async fn fail_overdue(&self) {
        let overdue = match self.store.overdue_jobs(now_ms(), 100).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for interrupted jobs");
                return;
            }
        };
        for job in overdue {
            let error = json!({"kind": "interrupted", "message": "the upstream call was interrupted; the outcome is unknown"});
            if let Err(e) = self
                .complete(&job.tenant_id, &job.id, Err(ResultJson::of(&error)))
                .await
            {
                tracing::debug!(job_id = %job.id, error = %e, "interrupted job already ended");
            }
        }
    }

    async fn purge_expired(&self) {
        let purged = match self
            .store
            .purge_jobs(now_ms() - self.retention_ms, 500)
            .await
        {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot purge finished jobs");
                return;
            }
        };
        for job in &purged {
            let key = job
                .result_blob
                .as_deref()
                .and_then(|b| serde_json::from_str::<Value>(b).ok());
            if let Some(key) = key.as_ref().and_then(|k| k["key"].as_str()) {
                if let Err(e) = self.blobs.delete(key).await {
                    tracing::warn!(job_id = %job.id, error = %e, "cannot delete an expired offloaded result");
                }
            }
        }
        if !purged.is_empty() {
            tracing::info!(purged = purged.len(), "purged finished jobs past retention");
        }
    }
}

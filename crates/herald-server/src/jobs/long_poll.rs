//! Long polls on jobs, and the creator's claim on the completion (seed 000's rule).

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_store::error::StoreResult;
use herald_store::{JobRecord, StoreError};

use super::envelope::{completion_message_id, webhook_body};
use super::JobService;
use crate::app::now_ms;

/// Re-read a waited-on job this often, to see changes made by other nodes.
const WAIT_POLL: Duration = Duration::from_secs(2);

impl JobService {
    /// Wait until the job ends or `wait` passes; answer with the job as it stands.
    pub async fn wait(&self, tenant_id: &str, id: &str, wait: Duration) -> StoreResult<JobRecord> {
        let deadline = Instant::now() + wait;
        let registration = self.waiters.register(id);
        loop {
            let changed = registration.notify.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let job = self.store.get_job(tenant_id, id).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            if job.status.is_final() || left.is_zero() {
                return Ok(job);
            }
            let _ = tokio::time::timeout(left.min(WAIT_POLL), changed).await;
        }
    }

    /// The creating request's long poll. If it ends without the final status, it first gives up its claim on
    /// the completion, so the webhook is sent; if the client goes away meanwhile, the claim is released and a
    /// completion it would have answered is sent as a webhook.
    pub async fn wait_as_creator(
        self: &Arc<Self>,
        job: &JobRecord,
        wait: Duration,
    ) -> StoreResult<JobRecord> {
        let mut guard = CreatorWait {
            service: self.clone(),
            tenant_id: job.tenant_id.clone(),
            id: job.id.clone(),
            armed: true,
        };
        let seen = self.wait(&job.tenant_id, &job.id, wait).await?;
        if seen.status.is_final() {
            guard.armed = false;
            return Ok(seen);
        }
        self.store
            .set_job_waiter(&job.tenant_id, &job.id, None)
            .await?;
        guard.armed = false;
        self.store.get_job(&job.tenant_id, &job.id).await
    }

    /// After the creator's client disconnected: release its claim and make sure a completion reaches the webhook.
    async fn release_creator(&self, tenant_id: &str, id: &str) -> StoreResult<()> {
        self.store.set_job_waiter(tenant_id, id, None).await?;
        let job = self.store.get_job(tenant_id, id).await?;
        if let (true, Some(url)) = (job.status.is_final(), job.webhook_url.as_deref()) {
            let route = self.store.get_route(tenant_id, &job.route).await.ok();
            let indirect = self.indirect(&job).await;
            let message_id = completion_message_id(&job.id);
            let body = webhook_body(&message_id, &job, indirect.as_ref(), now_ms());
            let webhook = self.outbound(&job, route.as_ref(), url, body, Some(message_id));
            match self.store.create_direct_delivery(webhook).await {
                Ok(_) => self.work_ready.notify_one(),
                Err(StoreError::Conflict(_)) => {} // already queued by the completion
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Releases the creator's long-poll claim if its request goes away before finishing.
struct CreatorWait {
    service: Arc<JobService>,
    tenant_id: String,
    id: String,
    armed: bool,
}

impl Drop for CreatorWait {
    fn drop(&mut self) {
        if self.armed {
            let (service, tenant_id, id) = (
                self.service.clone(),
                self.tenant_id.clone(),
                self.id.clone(),
            );
            tokio::spawn(async move {
                if let Err(e) = service.release_creator(&tenant_id, &id).await {
                    tracing::warn!(job_id = %id, error = %e, "cannot release a long poll's claim");
                }
            });
        }
    }
}

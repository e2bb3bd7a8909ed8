//! [`JobService`]: creating jobs, long-polling them, progress, completion (with offload), and the proxy call.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use herald_core::ids::encode_id;
use herald_core::retry::RetryPolicy;
use herald_core::status::JobStatus;
use herald_store::error::StoreResult;
use herald_store::{JobRecord, NewDirectDelivery, RouteKind, RouteRecord, Store, StoreError};
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::envelope::{job_view, webhook_body};
use super::upstream::{UpstreamClient, UpstreamRequest};
use super::waiters::Waiters;
use crate::app::now_ms;
use crate::auth_client::ServiceAuthenticator;
use crate::blobs::{BlobStore, ResultIndirect};

/// Grace after a proxy call's timeout before the job counts as interrupted.
pub(super) const PROXY_GRACE_MS: i64 = 30_000;
/// How many results of the largest size may be received at once.
const RESULT_BUDGET_FACTOR: usize = 4;

/// A job to create.
pub struct NewJob {
    /// Owning tenant.
    pub tenant_id: String,
    /// The route it goes through.
    pub route: RouteRecord,
    /// Request payload (JSON text).
    pub payload: Option<String>,
    /// Completion (and progress) webhook.
    pub webhook_url: Option<String>,
    /// Send a webhook on every progress change.
    pub progress_reports: bool,
    /// Correlation id.
    pub correlation_id: String,
    /// W3C trace context every call Herald makes for the job continues.
    pub traceparent: String,
    /// The creating request long-polls this long.
    pub wait: Option<Duration>,
    /// For proxy routes: the request to forward.
    pub upstream: Option<UpstreamRequest>,
}

/// How a node's jobs behave.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Results larger than this (bytes of JSON) are offloaded to the blob store.
    pub offload_threshold: usize,
    /// Largest result a worker may report or an upstream may answer.
    pub max_result_bytes: usize,
    /// Attempt timeout of the webhooks a job sends.
    pub callback_timeout_ms: u32,
    /// How long finished jobs are kept.
    pub retention_ms: i64,
}

/// Jobs on one node.
pub struct JobService {
    pub(super) store: Arc<dyn Store>,
    pub(super) waiters: Waiters,
    pub(super) upstream: UpstreamClient,
    pub(super) authenticator: ServiceAuthenticator,
    pub(super) blobs: Arc<dyn BlobStore>,
    pub(super) offload_threshold: usize,
    pub(super) work_ready: Arc<Notify>,
    pub(super) callback_timeout_ms: u32,
    pub(super) retention_ms: i64,
    max_result_bytes: usize,
    pub(super) metrics: Arc<crate::metrics::Metrics>,
    /// KiB of large results being received at once, across requests: bounds the memory they take.
    result_budget: Arc<tokio::sync::Semaphore>,
    /// The proxy calls running on this node, by job id: a cancel abandons its job's call.
    pub(super) proxy_calls: std::sync::Mutex<HashMap<String, tokio::task::AbortHandle>>,
}

fn random() -> u128 {
    rand::rng().random()
}

/// The route's retry policy, or seed 001's (1 s doubling to 1 h, 12 h) if it is unreadable.
fn route_policy(route: Option<&RouteRecord>) -> RetryPolicy {
    route
        .and_then(|r| serde_json::from_str(&r.retry_policy).ok())
        .unwrap_or_else(RetryPolicy::seed_001)
}

impl JobService {
    /// A job service over `store`, offloading large results to `blobs`; its upstream calls and token
    /// fetches go through `outbound`.
    pub fn new(
        store: Arc<dyn Store>,
        outbound: &crate::outbound::Outbound,
        blobs: Arc<dyn BlobStore>,
        work_ready: Arc<Notify>,
        settings: JobSettings,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> JobService {
        // Four results of the largest size at once; more wait for room.
        let budget_kib = (settings.max_result_bytes / 1024).max(1) * RESULT_BUDGET_FACTOR;
        JobService {
            store,
            waiters: Waiters::default(),
            upstream: UpstreamClient::new(outbound, settings.max_result_bytes),
            authenticator: ServiceAuthenticator::new(outbound),
            blobs,
            offload_threshold: settings.offload_threshold,
            work_ready,
            callback_timeout_ms: settings.callback_timeout_ms,
            retention_ms: settings.retention_ms,
            max_result_bytes: settings.max_result_bytes,
            metrics,
            result_budget: Arc::new(tokio::sync::Semaphore::new(budget_kib)),
            proxy_calls: Default::default(),
        }
    }

    /// Largest result a worker may report.
    pub fn max_result_bytes(&self) -> usize {
        self.max_result_bytes
    }

    /// The shared budget (in KiB) that large results being received take from while they are read.
    pub fn result_budget(&self) -> Arc<tokio::sync::Semaphore> {
        self.result_budget.clone()
    }

    /// Wake this node's long polls on `job_id` (it changed, here or on another node).
    pub fn job_changed(&self, job_id: &str) {
        self.waiters.changed(job_id);
    }

    /// Requests long-polling right now.
    pub fn waiting(&self) -> usize {
        self.waiters.count()
    }

    /// The authenticator shared with the delivery engine.
    pub fn authenticator(&self) -> ServiceAuthenticator {
        self.authenticator.clone()
    }

    /// A delivery from Herald on the job's behalf: signed with the route's secret, retried by its policy,
    /// authenticated as its service user.
    pub(super) fn outbound(
        &self,
        job: &JobRecord,
        route: Option<&RouteRecord>,
        url: &str,
        body: String,
        message_id: Option<String>,
    ) -> NewDirectDelivery {
        NewDirectDelivery {
            tenant_id: job.tenant_id.clone(),
            url: url.to_string(),
            payload: body,
            headers: BTreeMap::new(),
            secret: route.map(|r| r.secret.clone()),
            retry_policy: route_policy(route),
            timeout_ms: self.callback_timeout_ms,
            reference_id: Some(job.id.clone()),
            correlation_id: job.correlation_id.clone(),
            traceparent: job.traceparent.clone(),
            auth: route.and_then(|r| r.auth.clone()),
            message_id,
            now_ms: now_ms(),
        }
    }

    /// Store a job (and its worker notification on a notify route); start the proxy call on a proxy route.
    pub async fn create(self: &Arc<Self>, new: NewJob) -> StoreResult<JobRecord> {
        let now = now_ms();
        let job = JobRecord {
            id: encode_id("job", now as u64, random()),
            tenant_id: new.tenant_id,
            route: new.route.name.clone(),
            status: JobStatus::Accepted,
            progress: None,
            payload: new.payload,
            result: None,
            error: None,
            result_blob: None,
            webhook_url: new.webhook_url,
            progress_reports: new.progress_reports,
            correlation_id: new.correlation_id,
            traceparent: Some(new.traceparent),
            waiter_until_ms: new.wait.map(|w| now + w.as_millis() as i64),
            // A proxy call's deadline is in the commit that creates the job: if this node dies before the
            // call starts, the sweeper still fails the job as interrupted and the callback hears of it.
            deadline_ms: new
                .upstream
                .is_some()
                .then(|| now + i64::from(new.route.timeout_ms) + PROXY_GRACE_MS),
            created_ms: now,
            updated_ms: now,
        };
        let first = (new.route.kind == RouteKind::Notify).then(|| {
            let payload: Value = job.payload.as_deref().and_then(|p| serde_json::from_str(p).ok()).unwrap_or(Value::Null);
            let body = json!({"job_id": job.id, "route": job.route, "payload": payload, "correlation_id": job.correlation_id});
            self.outbound(&job, Some(&new.route), &new.route.url, body.to_string(), None)
        });
        let notifies = first.is_some();
        self.store.create_job(&job, first).await?;
        if notifies {
            self.work_ready.notify_one();
        }
        if let Some(request) = new.upstream {
            let call = tokio::spawn(self.clone().run_proxy(job.clone(), new.route, request));
            let mut calls = self.proxy_calls.lock().expect("proxy calls");
            calls.retain(|_, c| !c.is_finished());
            calls.insert(job.id.clone(), call.abort_handle());
        }
        Ok(job)
    }

    /// Record a progress value. A webhook goes out (with `progressReports`) only when the value changed.
    pub async fn progress(
        &self,
        tenant_id: &str,
        id: &str,
        value: &Value,
    ) -> StoreResult<JobRecord> {
        let text = value.to_string();
        for _ in 0..5 {
            let job = self.store.get_job(tenant_id, id).await?;
            if job.status.is_final() {
                return Err(StoreError::Conflict(format!(
                    "job already {}",
                    job.status.as_str()
                )));
            }
            if job.progress.as_deref() == Some(text.as_str()) {
                return Ok(job);
            }
            let webhook = match (&job.webhook_url, job.progress_reports) {
                (Some(url), true) => {
                    let route = self.store.get_route(tenant_id, &job.route).await.ok();
                    let mut next = job.clone();
                    next.progress = Some(text.clone());
                    next.status = JobStatus::Running;
                    let message_id = encode_id("evt", now_ms() as u64, random());
                    let body = webhook_body(&message_id, &next, None, now_ms());
                    Some(self.outbound(&job, route.as_ref(), url, body, Some(message_id)))
                }
                _ => None,
            };
            let queued = webhook.is_some();
            let (updated, changed) = self
                .store
                .set_job_progress(
                    tenant_id,
                    id,
                    job.progress.as_deref(),
                    &text,
                    webhook,
                    now_ms(),
                )
                .await?;
            if changed {
                self.waiters.changed(id);
                if queued {
                    self.work_ready.notify_one();
                }
                return Ok(updated);
            }
        }
        Err(StoreError::Conflict(
            "progress is changing too fast; retry".into(),
        ))
    }

    /// The download link of an offloaded result, fresh for this read.
    pub async fn indirect(&self, job: &JobRecord) -> Option<ResultIndirect> {
        let reference: Value = serde_json::from_str(job.result_blob.as_deref()?).ok()?;
        let (key, size, sha) = (
            reference["key"].as_str()?,
            reference["size"].as_u64()?,
            reference["sha256"].as_str()?,
        );
        match self.blobs.url_for(key, size, sha, now_ms()).await {
            Ok(indirect) => Some(indirect),
            Err(e) => {
                tracing::warn!(job_id = %job.id, error = %e, "cannot sign the result download URL");
                None
            }
        }
    }

    /// The job as the API shows it.
    pub async fn view(&self, job: &JobRecord) -> herald_api::jobs::Job {
        job_view(job, self.indirect(job).await.as_ref())
    }
}

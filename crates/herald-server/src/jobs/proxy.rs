//! The gateway's proxy call (seed 001): forward the request upstream, as the route's service user, and end
//! the job with whatever came back.

use std::sync::Arc;
use std::time::Duration;

use herald_core::trace::TraceParent;
use herald_store::{JobRecord, RouteRecord};
use hyper::header::{HeaderName, HeaderValue};
use serde_json::json;

use super::result::ResultJson;
use super::service::{JobService, PROXY_GRACE_MS};
use super::upstream::UpstreamRequest;
use crate::app::now_ms;
use crate::auth_client::ServiceAuth;
use crate::random;

impl JobService {
    /// The gateway's upstream call; its answer (or failure) becomes the job's outcome.
    pub(super) async fn run_proxy(
        self: Arc<Self>,
        job: JobRecord,
        route: RouteRecord,
        request: UpstreamRequest,
    ) {
        let timeout = Duration::from_millis(u64::from(route.timeout_ms));
        let deadline = now_ms() + route.timeout_ms as i64 + PROXY_GRACE_MS;
        if let Err(e) = self
            .store
            .start_job(&job.tenant_id, &job.id, deadline, now_ms())
            .await
        {
            tracing::warn!(job_id = %job.id, error = %e, "cannot start the proxy call");
            return;
        }
        let mut extra = Vec::new();
        if let Ok(v) = HeaderValue::from_str(&job.correlation_id) {
            extra.push((HeaderName::from_static("x-correlation-id"), v));
        }
        if let Some(v) = job
            .traceparent
            .as_deref()
            .and_then(TraceParent::parse)
            .and_then(|tp| HeaderValue::from_str(&tp.child(random::span_id()).to_string()).ok())
        {
            extra.push((HeaderName::from_static("traceparent"), v));
        }
        if let Some(v) = job
            .webhook_url
            .as_deref()
            .and_then(|u| HeaderValue::from_str(u).ok())
        {
            extra.push((HeaderName::from_static("callback-url"), v));
        }
        let auth: Option<Result<ServiceAuth, _>> = route
            .auth
            .as_deref()
            .map(serde_json::from_str::<ServiceAuth>);
        let auth = match auth {
            None => None,
            Some(Ok(auth)) => Some(auth),
            Some(Err(e)) => {
                let error = json!({"kind": "auth", "message": format!("the route's service credentials are unreadable: {e}")});
                if let Err(e) = self
                    .complete(&job.tenant_id, &job.id, Err(ResultJson::of(&error)))
                    .await
                {
                    tracing::warn!(job_id = %job.id, error = %e, "cannot record the proxy outcome");
                }
                return;
            }
        };
        let (status, outcome) = match &auth {
            Some(auth) => match self.authenticator.authorization(auth).await {
                Ok(value) => {
                    extra.push((hyper::header::AUTHORIZATION, value));
                    self.upstream.call(request, extra, timeout).await
                }
                Err(e) => (
                    None,
                    Err(ResultJson::of(
                        &json!({"kind": "auth", "message": format!("cannot authenticate to the upstream: {e}")}),
                    )),
                ),
            },
            None => self.upstream.call(request, extra, timeout).await,
        };
        if let (Some(auth), Some(401)) = (&auth, status) {
            self.authenticator.invalidate(auth);
        }
        if let Err(e) = self.complete(&job.tenant_id, &job.id, outcome).await {
            tracing::warn!(job_id = %job.id, correlation_id = %job.correlation_id, error = %e, "cannot record the proxy outcome");
        }
    }
}

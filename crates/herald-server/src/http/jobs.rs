//! `/v1/jobs` and the async gateway `/async/{route}/{rest}` (seeds 000 and 001).

use std::str::FromStr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Json;
use bytes::BytesMut;
use herald_api::common::Page;
use herald_api::jobs::{CompleteInput, Job, JobInput, JobListQuery, ProgressInput, WaitQuery};
use herald_core::status::JobStatus;
use herald_store::{JobFilter, JobRecord, RouteKind};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::auth::Caller;
use super::endpoints::check_url;
use super::error::{ApiError, ApiResult};
use super::events::{accept_trace, correlation_id};
use super::extract::{parse_free_form_json, JsonBody, PathParams, QueryParams, RawBody};
use super::views;
use crate::app::{now_ms, AppState};
use crate::jobs::upstream::{forwardable, upstream_url, UpstreamRequest};
use crate::jobs::{NewJob, ResultJson};

/// Default long-poll wait.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// Longest long-poll wait.
const MAX_WAIT_SECS: u64 = 120;

/// `Prefer: wait=N` (RFC 7240), capped.
fn prefer_wait(headers: &HeaderMap) -> Option<Duration> {
    let prefer = headers.get("prefer")?.to_str().ok()?;
    prefer
        .split([',', ';'])
        .filter_map(|p| p.trim().strip_prefix("wait="))
        .find_map(|n| n.trim().parse::<u64>().ok())
        .map(|n| Duration::from_secs(n.min(MAX_WAIT_SECS)))
}

fn callback_header(headers: &HeaderMap) -> ApiResult<Option<String>> {
    headers
        .get("callback-url")
        .map(|v| {
            v.to_str().map(str::to_string).map_err(|_| {
                ApiError::bad_request("invalid_callback_url", "callback-url is not text")
            })
        })
        .transpose()
}

/// 202 while the job runs, 200 once it ended.
fn status_of(job: &JobRecord) -> StatusCode {
    if job.status.is_final() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    }
}

/// Create a job and, when asked, long-poll it as its creator.
async fn create_and_answer(state: &AppState, new: NewJob) -> ApiResult<(StatusCode, Json<Job>)> {
    let wait = new.wait;
    let job = state.jobs.create(new).await?;
    let job = match wait {
        Some(wait) => state.jobs.wait_as_creator(&job, wait).await?,
        None => job,
    };
    Ok((status_of(&job), Json(state.jobs.view(&job).await)))
}

/// `POST /v1/jobs`: 202 at once, or held while `poll: "long"` / `Prefer: wait=N`.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = JobInput,
    params(("Prefer" = Option<String>, Header, description = "`wait=N`: hold the request up to N seconds (at most 120)"),
        ("callback-url" = Option<String>, Header, description = "Where job webhooks go, when the body has no `webhook`"),
        ("x-correlation-id" = Option<String>, Header, description = "Carried everywhere; made when absent")),
    responses((status = 202, description = "Accepted; still running", body = Job),
        (status = 200, description = "Ended while the request was held", body = Job)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(input): JsonBody<JobInput>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let route = state
        .store
        .get_route(&caller.tenant_id, &input.route)
        .await
        .map_err(|e| match e {
            herald_store::StoreError::NotFound(_) => {
                ApiError::invalid("route", format!("no route named {}", input.route))
            }
            other => other.into(),
        })?;
    let webhook = match input.webhook.or(callback_header(&headers)?) {
        Some(url) => Some(check_url(&state, "webhook", &url)?.into_string()),
        None => None,
    };
    let wait = match input.poll.as_deref() {
        Some("long") => Some(prefer_wait(&headers).unwrap_or(DEFAULT_WAIT)),
        Some(other) => {
            return Err(ApiError::invalid(
                "poll",
                format!("poll must be \"long\", not {other:?}"),
            ))
        }
        None => prefer_wait(&headers),
    };
    let payload = input.payload.map(|p| p.get().to_string());
    let upstream = (route.kind == RouteKind::Proxy).then(|| UpstreamRequest {
        method: Method::POST,
        url: route.url.clone(),
        headers: {
            let mut h = hyper::HeaderMap::new();
            h.insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            h
        },
        body: Bytes::from(payload.clone().unwrap_or_else(|| "null".into())),
    });
    let (_span, trace) = accept_trace(&state, "job", &headers);
    let new = NewJob {
        tenant_id: caller.tenant_id,
        route,
        payload,
        webhook_url: webhook,
        progress_reports: input.progress_reports.unwrap_or(false),
        correlation_id: correlation_id(&headers, now_ms())?,
        traceparent: trace,
        wait,
        upstream,
    };
    create_and_answer(&state, new).await
}

/// `GET /v1/jobs/{id}?wait=N`: long-polls up to N seconds (at most 120) for the job to end.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "`job_…`"), WaitQuery),
    responses((status = 200, description = "Ended", body = Job), (status = 202, description = "Still running", body = Job)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<WaitQuery>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let job = match q.wait {
        Some(secs) if secs > 0 => {
            state
                .jobs
                .wait(
                    &caller.tenant_id,
                    &id,
                    Duration::from_secs(secs.min(MAX_WAIT_SECS)),
                )
                .await?
        }
        _ => state.store.get_job(&caller.tenant_id, &id).await?,
    };
    Ok((status_of(&job), Json(state.jobs.view(&job).await)))
}

/// `GET /v1/jobs?status=&route=&limit=&cursor=`: the tenant's jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobListQuery),
    responses((status = 200, description = "A page of jobs, newest first", body = Page<Job>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<JobListQuery>,
) -> ApiResult<Json<Page<Job>>> {
    let status = q
        .status
        .as_deref()
        .map(|s| {
            JobStatus::from_str(s).map_err(|_| {
                ApiError::invalid(
                    "status",
                    "status must be accepted, running, succeeded, failed or cancelled",
                )
            })
        })
        .transpose()?;
    let page = views::page_of(q.limit, q.cursor.as_deref(), "job")?;
    let filter = JobFilter {
        status,
        route: q.route,
    };
    let listing = state
        .store
        .list_jobs(&caller.tenant_id, &filter, &page)
        .await?;
    let mut data = Vec::with_capacity(listing.items.len());
    for job in &listing.items {
        data.push(state.jobs.view(job).await);
    }
    Ok(Json(views::page(data, listing.next_after)))
}

/// `POST /v1/jobs/{id}/progress {"progress"}` (the worker reports).
#[utoipa::path(post, path = "/v1/jobs/{id}/progress", tag = "jobs", params(("id" = String, Path, description = "`job_…`")), request_body = ProgressInput,
    responses((status = 200, description = "The job with its progress", body = Job)))]
pub async fn progress(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    JsonBody(input): JsonBody<ProgressInput>,
) -> ApiResult<Json<Job>> {
    let job = state
        .jobs
        .progress(&caller.tenant_id, &id, &input.progress)
        .await?;
    Ok(Json(state.jobs.view(&job).await))
}

/// Body of the completion route: exactly one of `result` and `error`, kept as the worker wrote them
/// (its schema is [`herald_api::jobs::CompleteInput`]; this form borrows from the body, unparsed).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteBody<'a> {
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

/// `POST /v1/jobs/{id}/complete {"result"} | {"error"}`: up to `max_result_bytes` (larger than other
/// bodies), read into one buffer under the node's result budget; the result is offloaded from that buffer
/// without being copied or parsed into a tree.
#[utoipa::path(post, path = "/v1/jobs/{id}/complete", tag = "jobs", params(("id" = String, Path, description = "`job_…`")), request_body = CompleteInput,
    responses((status = 200, description = "The job as it ended", body = Job)))]
pub async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Job>> {
    // The budget's share stays taken until the result is stored and the request answered.
    let (bytes, _room) = read_result(&state, &headers, body).await?;
    let input: CompleteBody = parse_free_form_json(&bytes)?;
    let outcome = match (input.result, input.error) {
        (Some(result), None) => Ok(ResultJson::Raw(bytes.slice_ref(result.get().as_bytes()))),
        (None, Some(error)) => Err(ResultJson::Raw(bytes.slice_ref(error.get().as_bytes()))),
        _ => {
            return Err(ApiError::invalid(
                "result",
                "give exactly one of result and error",
            ))
        }
    };
    let completed = state.jobs.complete(&caller.tenant_id, &id, outcome).await?;
    Ok(Json(state.jobs.view(&completed.job).await))
}

/// `POST /v1/jobs/{id}/cancel`: end an unfinished job as cancelled (see [`crate::jobs::JobService::cancel`]).
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path, description = "`job_…`")),
    responses((status = 200, description = "Cancelled; the callback hears `job.cancelled`", body = Job)))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Job>> {
    let job = state.jobs.cancel(&caller.tenant_id, &id).await?;
    Ok(Json(state.jobs.view(&job).await))
}

/// How long a large result may wait for room in the node's result budget.
const RESULT_BUDGET_WAIT: Duration = Duration::from_secs(30);

/// Read a completion body of at most `max_result_bytes`. It first takes its size (its `content-length`,
/// else the maximum) from the node's result budget and hands that share back with the body, so many large
/// results at once wait (then 503) instead of exhausting memory.
async fn read_result(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<(Bytes, tokio::sync::OwnedSemaphorePermit)> {
    let max = state.jobs.max_result_bytes();
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(ApiError::PayloadTooLarge(max));
    }
    let expected = declared.map_or(max, |n| n as usize);
    let kib = u32::try_from(expected.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    let room = tokio::time::timeout(
        RESULT_BUDGET_WAIT,
        state.jobs.result_budget().acquire_many_owned(kib),
    )
    .await
    .map_err(|_| ApiError::Unavailable("too many large results are being received; retry".into()))?
    .map_err(|_| ApiError::Unavailable("the node is shutting down".into()))?;
    let mut buffer = BytesMut::with_capacity(expected.min(max));
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request("unreadable_body", e.to_string()))?;
        if let Some(data) = frame.data_ref() {
            if buffer.len() + data.len() > max {
                return Err(ApiError::PayloadTooLarge(max));
            }
            buffer.extend_from_slice(data);
        }
    }
    Ok((buffer.freeze(), room))
}

/// `ANY /async/{route}/{*rest}` with a `callback-url` header: the seed 001 gateway. Answers 202 with the job;
/// the upstream's answer is delivered to the callback.
#[utoipa::path(method(get, post, put, patch, delete), path = "/async/{route}/{rest}", tag = "jobs",
    params(("route" = String, Path, description = "A proxy route"), ("callback-url" = String, Header, description = "Where the upstream's answer goes"), ("x-correlation-id" = Option<String>, Header, description = "Carried upstream and to the callback"),
        ("rest" = String, Path, description = "The rest of the upstream path (may hold slashes)")),
    request_body(content = Option<serde_json::Value>, description = "Forwarded upstream as sent"),
    responses((status = 202, description = "Accepted; the upstream's answer goes to the callback", body = Job)))]
pub async fn gateway(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(params): PathParams<Vec<(String, String)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let route_name = params
        .iter()
        .find(|(k, _)| k == "route")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    // The rest of the path as sent (still percent-encoded), so that encoded slashes and dots can be seen.
    let raw_rest = uri.path().splitn(4, '/').nth(3).unwrap_or("");
    let callback = callback_header(&headers)?.ok_or_else(|| {
        ApiError::bad_request(
            "missing_callback_url",
            "asynchronous calls need a callback-url header saying where the result goes",
        )
    })?;
    let callback = check_url(&state, "callback-url", &callback)?.into_string();
    let route = state
        .store
        .get_route(&caller.tenant_id, &route_name)
        .await?;
    if route.kind != RouteKind::Proxy {
        return Err(ApiError::bad_request(
            "not_a_proxy_route",
            format!(
                "route {route_name} is a {} route; /async needs a proxy route",
                route.kind.as_str()
            ),
        ));
    }
    let url = upstream_url(&route.url, raw_rest, uri.query())
        .map_err(|m| ApiError::invalid("path", m))?;
    let payload = serde_json::from_slice::<Value>(&body)
        .ok()
        .map(|v| v.to_string());
    let (_span, trace) = accept_trace(&state, "job", &headers);
    let new = NewJob {
        tenant_id: caller.tenant_id,
        payload,
        webhook_url: Some(callback),
        progress_reports: false,
        correlation_id: correlation_id(&headers, now_ms())?,
        traceparent: trace,
        wait: None,
        upstream: Some(UpstreamRequest {
            method,
            url,
            headers: forwardable(&headers),
            body,
        }),
        route,
    };
    let (_, body) = create_and_answer(&state, new).await?;
    Ok((StatusCode::ACCEPTED, body))
}

/// `ANY /async/{route}`: the gateway without a further path (served by [`gateway`]; this function only
/// carries its documentation).
#[utoipa::path(method(get, post, put, patch, delete), path = "/async/{route}", tag = "jobs",
    params(("route" = String, Path, description = "A proxy route"), ("callback-url" = String, Header, description = "Where the upstream's answer goes"), ("x-correlation-id" = Option<String>, Header, description = "Carried upstream and to the callback")),
    request_body(content = Option<serde_json::Value>, description = "Forwarded upstream as sent"),
    responses((status = 202, description = "Accepted; the upstream's answer goes to the callback", body = Job)))]
#[allow(dead_code)]
pub(super) fn gateway_root() {}

//! Seed 003's webhook status API, served by direct deliveries: `webhook_id` is `{reference_id}_{task_id}` where
//! the task id is the delivery id; `test-webhook` queues a delivery with the seed's bounded retry policy.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use herald_api::common::Deleted;
use herald_api::compat::{
    TestWebhookQuery, TestWebhookQueued, WebhookDeleted, WebhookStatus, WebhookStatusPage,
    WebhookStatusQuery,
};
use herald_core::retry::RetryPolicy;
use herald_store::{DeliveryFilter, DeliveryRecord, Page};
use serde_json::{json, Value};

use super::auth::Caller;
use super::deliveries::{cleanup_finished, create_direct, parse_status, DirectRequest};
use super::error::{ApiError, ApiResult};
use super::events::{accept_trace, correlation_id};
use super::extract::{parse_json, PathParams, QueryParams, RawBody};
use super::views::time;
use crate::app::{now_ms, AppState};
use crate::random;

fn webhook_id(d: &DeliveryRecord) -> String {
    match &d.reference_id {
        Some(r) => format!("{r}_{}", d.id),
        None => d.id.clone(),
    }
}

/// The delivery id inside a webhook id (`{reference_id}_dlv_…` or a bare `dlv_…`).
fn delivery_id(webhook_id: &str) -> &str {
    match webhook_id.rfind("dlv_") {
        Some(i) => &webhook_id[i..],
        None => webhook_id,
    }
}

fn view(d: &DeliveryRecord) -> WebhookStatus {
    WebhookStatus {
        webhook_id: webhook_id(d),
        reference_id: d.reference_id.clone(),
        task_id: d.id.clone(),
        url: d.url.clone(),
        status: d.status,
        attempts: d.attempt_count,
        last_status_code: d.last_status_code,
        last_error: d.last_error.clone(),
        next_retry_at: d.next_attempt_ms.map(time),
        correlation_id: d.correlation_id.clone(),
        created_at: time(d.created_ms),
        updated_at: time(d.updated_ms),
    }
}

/// `POST /test-webhook?webhook_url=` (body = payload).
#[utoipa::path(post, path = "/test-webhook", tag = "seed 003: webhook status", params(TestWebhookQuery),
    request_body(content = Option<serde_json::Value>, description = "The payload (empty: `{}`)"),
    responses((status = 200, description = "Queued with seed 003's bounded retries", body = TestWebhookQueued)))]
pub async fn test_webhook(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(q): QueryParams<TestWebhookQuery>,
    RawBody(body): RawBody,
) -> ApiResult<Json<TestWebhookQueued>> {
    let url = q
        .webhook_url
        .ok_or_else(|| ApiError::invalid("webhook_url", "webhook_url is required"))?;
    let payload: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_json(&body)?
    };
    let reference_id = format!("TEST-{}", random::short_hex());
    let (_span, trace) = accept_trace(&state, "direct_delivery", &headers);
    let request = DirectRequest {
        url,
        payload: payload.to_string(),
        headers: Default::default(),
        secret: None,
        retry_policy: RetryPolicy::seed_003(),
        reference_id: Some(reference_id.clone()),
        timeout_ms: None,
        correlation_id: correlation_id(&headers, now_ms())?,
        traceparent: trace,
    };
    let delivery = create_direct(&state, &caller.tenant_id, request)
        .await
        .map_err(|e| match e {
            ApiError::Validation { field, message } if field == "url" => ApiError::Validation {
                field: "webhook_url".into(),
                message,
            },
            other => other,
        })?;
    Ok(Json(TestWebhookQueued {
        status: "webhook_queued".into(),
        webhook_id: webhook_id(&delivery),
        reference_id,
        task_id: delivery.id,
        message: "Test webhook queued for delivery".into(),
    }))
}

/// `GET /webhook-status/{webhook_id}`
#[utoipa::path(get, path = "/webhook-status/{webhook_id}", tag = "seed 003: webhook status", params(("webhook_id" = String, Path, description = "`{reference_id}_{task_id}`, or the task id")),
    responses((status = 200, description = "The webhook's status", body = WebhookStatus)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<WebhookStatus>> {
    let d = state
        .store
        .get_delivery(&caller.tenant_id, delivery_id(&id))
        .await?;
    if webhook_id(&d) != id && d.id != id {
        return Err(ApiError::NotFound("webhook"));
    }
    Ok(Json(view(&d)))
}

/// `DELETE /webhook-status/{webhook_id}`
#[utoipa::path(delete, path = "/webhook-status/{webhook_id}", tag = "seed 003: webhook status", params(("webhook_id" = String, Path, description = "`{reference_id}_{task_id}`, or the task id")),
    responses((status = 200, description = "Deleted", body = WebhookDeleted)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<WebhookDeleted>> {
    let d = state
        .store
        .get_delivery(&caller.tenant_id, delivery_id(&id))
        .await?;
    if webhook_id(&d) != id && d.id != id {
        return Err(ApiError::NotFound("webhook"));
    }
    state
        .store
        .delete_delivery(&caller.tenant_id, &d.id)
        .await?;
    Ok(Json(WebhookDeleted {
        deleted: true,
        webhook_id: id,
    }))
}

/// The store filter of a status query (400 on an unknown status).
fn filter_of(q: &WebhookStatusQuery) -> ApiResult<DeliveryFilter> {
    Ok(DeliveryFilter {
        status: parse_status(q.status.as_deref())?,
        reference_id: q.reference_id.clone().filter(|r| !r.is_empty()),
        ..DeliveryFilter::default()
    })
}

/// Highest page number of the offset listing: an offset scan past that is the cursor API's job.
const MAX_PAGE: u64 = 10_000;

/// `GET /webhook-statuses?reference_id=&status=&page=&page_size=` (pages count from 1).
#[utoipa::path(get, path = "/webhook-statuses", tag = "seed 003: webhook status", params(WebhookStatusQuery),
    responses((status = 200, description = "A page of statuses", body = WebhookStatusPage)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<WebhookStatusQuery>,
) -> ApiResult<Json<WebhookStatusPage>> {
    let page_no = q.page.unwrap_or(1).max(1);
    if page_no > MAX_PAGE {
        return Err(ApiError::bad_request(
            "invalid_page",
            format!("page must be at most {MAX_PAGE}; list with /v1/deliveries and its cursor to go further"),
        ));
    }
    let page_size = q.page_size.unwrap_or(20);
    if !(1..=250).contains(&page_size) {
        return Err(ApiError::bad_request(
            "invalid_page_size",
            "page_size must be between 1 and 250",
        ));
    }
    let filter = filter_of(&q)?;
    let page = Page {
        limit: page_size,
        after: None,
        offset: (page_no - 1) * page_size as u64,
    };
    let listing = state
        .store
        .list_deliveries(&caller.tenant_id, &filter, &page)
        .await?;
    let total = state
        .store
        .count_deliveries(&caller.tenant_id, &filter)
        .await?;
    Ok(Json(WebhookStatusPage {
        items: listing.items.iter().map(view).collect(),
        page: page_no,
        page_size,
        total,
    }))
}

/// `DELETE /webhook-statuses?reference_id=&status=`
#[utoipa::path(delete, path = "/webhook-statuses", tag = "seed 003: webhook status", params(WebhookStatusQuery),
    responses((status = 200, description = "How many were deleted", body = Deleted)))]
pub async fn delete_many(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<WebhookStatusQuery>,
) -> ApiResult<Json<Deleted>> {
    let filter = filter_of(&q)?;
    if filter.is_empty() {
        return Err(ApiError::invalid(
            "reference_id",
            "give reference_id or status",
        ));
    }
    let deleted = state
        .store
        .delete_deliveries(&caller.tenant_id, &filter)
        .await?;
    Ok(Json(Deleted { deleted }))
}

/// `POST /webhook-cleanup?status=&older_than_days=&reference_id=`
#[utoipa::path(post, path = "/webhook-cleanup", tag = "seed 003: webhook status", params(WebhookStatusQuery),
    responses((status = 200, description = "How many finished webhooks were deleted", body = Deleted)))]
pub async fn cleanup(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<WebhookStatusQuery>,
) -> ApiResult<(StatusCode, Json<Deleted>)> {
    let filter = filter_of(&q)?;
    let deleted = cleanup_finished(
        &state,
        &caller.tenant_id,
        filter.status,
        filter.reference_id,
        q.older_than_days.unwrap_or(30),
    )
    .await?;
    Ok((StatusCode::OK, Json(Deleted { deleted })))
}

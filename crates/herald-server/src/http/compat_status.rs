//! Seed 003's webhook status API, served by direct deliveries: `webhook_id` is `{reference_id}_{task_id}` where
//! the task id is the delivery id; `test-webhook` queues a delivery with the seed's bounded retry policy.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use herald_core::retry::RetryPolicy;
use herald_store::{DeliveryFilter, DeliveryRecord, Page};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::deliveries::{cleanup_finished, create_direct, parse_status, DirectRequest};
use super::error::{ApiError, ApiResult};
use super::events::{accept_trace, correlation_id};
use super::extract::{parse_json, PathParams, QueryParams, RawBody};
use super::views::time;
use crate::app::{now_ms, AppState};
use crate::random;

/// Query of `POST /test-webhook`.
#[derive(Debug, Deserialize)]
pub struct TestQuery {
    webhook_url: Option<String>,
}

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

fn view(d: &DeliveryRecord) -> Value {
    json!({
        "webhook_id": webhook_id(d),
        "reference_id": d.reference_id,
        "task_id": d.id,
        "url": d.url,
        "status": d.status.as_str(),
        "attempts": d.attempt_count,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "next_retry_at": d.next_attempt_ms.map(time),
        "correlation_id": d.correlation_id,
        "created_at": time(d.created_ms),
        "updated_at": time(d.updated_ms),
    })
}

/// `POST /test-webhook?webhook_url=` (body = payload).
pub async fn test_webhook(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(q): QueryParams<TestQuery>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({
        "status": "webhook_queued",
        "reference_id": reference_id,
        "task_id": delivery.id,
        "webhook_id": webhook_id(&delivery),
        "message": "Test webhook queued for delivery",
    })))
}

/// `GET /webhook-status/{webhook_id}`
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Value>> {
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
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({ "deleted": true, "webhook_id": id })))
}

/// Filters of the list, bulk delete and cleanup routes.
#[derive(Debug, Deserialize)]
pub struct StatusQuery {
    reference_id: Option<String>,
    status: Option<String>,
    page: Option<u64>,
    page_size: Option<usize>,
    older_than_days: Option<u32>,
}

impl StatusQuery {
    fn filter(&self) -> ApiResult<DeliveryFilter> {
        Ok(DeliveryFilter {
            status: parse_status(self.status.as_deref())?,
            reference_id: self.reference_id.clone().filter(|r| !r.is_empty()),
            ..DeliveryFilter::default()
        })
    }
}

/// Highest page number of the offset listing: an offset scan past that is the cursor API's job.
const MAX_PAGE: u64 = 10_000;

/// `GET /webhook-statuses?reference_id=&status=&page=&page_size=` (pages count from 1).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<StatusQuery>,
) -> ApiResult<Json<Value>> {
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
    let filter = q.filter()?;
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
    let items: Vec<Value> = listing.items.iter().map(view).collect();
    Ok(Json(
        json!({ "items": items, "page": page_no, "page_size": page_size, "total": total }),
    ))
}

/// `DELETE /webhook-statuses?reference_id=&status=`
pub async fn delete_many(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<StatusQuery>,
) -> ApiResult<Json<Value>> {
    let filter = q.filter()?;
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
    Ok(Json(json!({ "deleted": deleted })))
}

/// `POST /webhook-cleanup?status=&older_than_days=&reference_id=`
pub async fn cleanup(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<StatusQuery>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let filter = q.filter()?;
    let deleted = cleanup_finished(
        &state,
        &caller.tenant_id,
        filter.status,
        filter.reference_id,
        q.older_than_days.unwrap_or(30),
    )
    .await?;
    Ok((StatusCode::OK, Json(json!({ "deleted": deleted }))))
}

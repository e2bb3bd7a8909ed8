//! `/v1/deliveries`: direct one-off deliveries, the status API (get with attempts, list with filters), and the
//! operator's retry, cancel, delete, bulk delete and cleanup.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use herald_api::common::{Deleted, Page};
use herald_api::deliveries::{Delivery, DeliveryDetail, DeliveryQuery, DirectInput};
use herald_core::retry::RetryPolicy;
use herald_core::signing::Secret;
use herald_core::status::DeliveryStatus;
use herald_store::{DeliveryFilter, DeliveryRecord, NewDirectDelivery};

use super::auth::Caller;
use super::endpoints::{check_headers, check_policy, check_url};
use super::error::{ApiError, ApiResult};
use super::events::{accept_trace, correlation_id};
use super::extract::{JsonBody, PathParams, QueryParams};
use super::views;
use crate::app::{now_ms, AppState};

/// What a direct delivery needs once its input is checked; shared with the compatibility routes.
pub struct DirectRequest {
    /// Target URL as given.
    pub url: String,
    /// Payload JSON text.
    pub payload: String,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
    /// Signing secret.
    pub secret: Option<String>,
    /// Retry policy.
    pub retry_policy: RetryPolicy,
    /// Client reference.
    pub reference_id: Option<String>,
    /// Per-attempt timeout.
    pub timeout_ms: Option<u32>,
    /// Correlation id.
    pub correlation_id: String,
    /// W3C trace context the attempts continue.
    pub traceparent: String,
}

/// Validate and store a direct delivery, then wake the engine.
pub async fn create_direct(
    state: &AppState,
    tenant_id: &str,
    req: DirectRequest,
) -> ApiResult<DeliveryRecord> {
    let url = check_url(state, "url", &req.url)?;
    check_headers(&req.headers)?;
    check_policy(&req.retry_policy)?;
    if let Some(secret) = &req.secret {
        Secret::parse(secret).map_err(|e| ApiError::invalid("secret", e.to_string()))?;
    }
    if matches!(&req.reference_id, Some(r) if r.is_empty() || r.len() > 200) {
        return Err(ApiError::invalid(
            "reference_id",
            "reference_id must be 1-200 characters",
        ));
    }
    let timeout_ms = req
        .timeout_ms
        .unwrap_or(state.config.delivery.default_timeout_ms);
    if !(1..=300_000).contains(&timeout_ms) {
        return Err(ApiError::invalid(
            "timeout_ms",
            "timeout_ms must be between 1 and 300000",
        ));
    }
    let delivery = state
        .store
        .create_direct_delivery(NewDirectDelivery {
            tenant_id: tenant_id.to_string(),
            url: url.into_string(),
            payload: req.payload,
            headers: req.headers,
            secret: req.secret,
            retry_policy: req.retry_policy,
            timeout_ms,
            reference_id: req.reference_id,
            correlation_id: req.correlation_id,
            traceparent: Some(req.traceparent),
            auth: None,
            message_id: None,
            now_ms: now_ms(),
        })
        .await?;
    state.work_ready.notify_one();
    Ok(delivery)
}

/// `POST /v1/deliveries`
#[utoipa::path(post, path = "/v1/deliveries", tag = "deliveries", request_body = DirectInput,
    params(("x-correlation-id" = Option<String>, Header, description = "Carried to the receiver; made when absent")),
    responses((status = 202, description = "Stored and queued", body = Delivery)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(input): JsonBody<DirectInput>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let (_span, trace) = accept_trace(&state, "direct_delivery", &headers);
    let request = DirectRequest {
        url: input.url,
        payload: input.payload.get().to_string(),
        headers: input.headers.unwrap_or_default(),
        secret: input.secret,
        retry_policy: input.retry_policy.unwrap_or_default(),
        reference_id: input.reference_id,
        timeout_ms: input.timeout_ms,
        correlation_id: correlation_id(&headers, now_ms())?,
        traceparent: trace,
    };
    let delivery = create_direct(&state, &caller.tenant_id, request).await?;
    Ok((StatusCode::ACCEPTED, Json(views::delivery(&delivery))))
}

/// `GET /v1/deliveries/{id}`: the delivery and every attempt.
#[utoipa::path(get, path = "/v1/deliveries/{id}", tag = "deliveries", params(("id" = String, Path, description = "`dlv_…`")),
    responses((status = 200, description = "The delivery and every attempt (its delivery log)", body = DeliveryDetail)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<DeliveryDetail>> {
    let delivery = state.store.get_delivery(&caller.tenant_id, &id).await?;
    let attempts = state.store.list_attempts(&caller.tenant_id, &id).await?;
    Ok(Json(views::delivery_with_attempts(&delivery, &attempts)))
}

/// Parse a `status` query value (400 on an unknown one).
pub fn parse_status(status: Option<&str>) -> ApiResult<Option<DeliveryStatus>> {
    status
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<DeliveryStatus>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_status",
                    "status must be one of pending, in_progress, retrying, delivered, failed, cancelled",
                )
            })
        })
        .transpose()
}

/// The store filter of a delivery query (400 on an unknown status).
fn filter_of(q: &DeliveryQuery) -> ApiResult<DeliveryFilter> {
    Ok(DeliveryFilter {
        status: parse_status(q.status.as_deref())?,
        endpoint_id: q.endpoint_id.clone(),
        event_id: q.event_id.clone(),
        correlation_id: q.correlation_id.clone(),
        reference_id: q.reference_id.clone(),
        ..DeliveryFilter::default()
    })
}

/// `GET /v1/deliveries`
#[utoipa::path(get, path = "/v1/deliveries", tag = "deliveries", params(DeliveryQuery),
    responses((status = 200, description = "A page of deliveries, newest first", body = Page<Delivery>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<DeliveryQuery>,
) -> ApiResult<Json<Page<Delivery>>> {
    let page = views::page_of(q.limit, q.cursor.as_deref(), "dlv")?;
    let listing = state
        .store
        .list_deliveries(&caller.tenant_id, &filter_of(&q)?, &page)
        .await?;
    let data = listing.items.iter().map(views::delivery).collect();
    Ok(Json(views::page(data, listing.next_after)))
}

/// `POST /v1/deliveries/{id}/retry`
#[utoipa::path(post, path = "/v1/deliveries/{id}/retry", tag = "deliveries", params(("id" = String, Path, description = "`dlv_…`")),
    responses((status = 200, description = "Queued again with a fresh retry cycle", body = Delivery)))]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Delivery>> {
    let delivery = state
        .store
        .retry_delivery(&caller.tenant_id, &id, now_ms())
        .await?;
    state.work_ready.notify_one();
    Ok(Json(views::delivery(&delivery)))
}

/// `POST /v1/deliveries/{id}/cancel`
#[utoipa::path(post, path = "/v1/deliveries/{id}/cancel", tag = "deliveries", params(("id" = String, Path, description = "`dlv_…`")),
    responses((status = 200, description = "Cancelled", body = Delivery)))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Delivery>> {
    let delivery = state
        .store
        .cancel_delivery(&caller.tenant_id, &id, now_ms())
        .await?;
    Ok(Json(views::delivery(&delivery)))
}

/// `DELETE /v1/deliveries/{id}`
#[utoipa::path(delete, path = "/v1/deliveries/{id}", tag = "deliveries", params(("id" = String, Path, description = "`dlv_…`")),
    responses((status = 204, description = "Deleted with its attempts")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_delivery(&caller.tenant_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/deliveries?status=&reference_id=`: refuses an empty filter rather than deleting everything.
#[utoipa::path(delete, path = "/v1/deliveries", tag = "deliveries", params(DeliveryQuery),
    responses((status = 200, description = "How many were deleted", body = Deleted)))]
pub async fn delete_many(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<DeliveryQuery>,
) -> ApiResult<Json<Deleted>> {
    let filter = filter_of(&q)?;
    if filter.is_empty() {
        return Err(ApiError::invalid(
            "status",
            "give status, reference_id or another filter",
        ));
    }
    let deleted = state
        .store
        .delete_deliveries(&caller.tenant_id, &filter)
        .await?;
    Ok(Json(Deleted { deleted }))
}

/// Delete finished deliveries matching `filter` that last changed more than `older_than_days` ago.
pub async fn cleanup_finished(
    state: &AppState,
    tenant_id: &str,
    status: Option<DeliveryStatus>,
    reference_id: Option<String>,
    older_than_days: u32,
) -> ApiResult<u64> {
    if matches!(status, Some(s) if !s.is_final()) {
        return Err(ApiError::invalid(
            "status",
            "cleanup removes only delivered, failed or cancelled deliveries",
        ));
    }
    let filter = DeliveryFilter {
        status,
        reference_id,
        updated_before_ms: Some(now_ms() - i64::from(older_than_days) * 86_400_000),
        finished_only: true,
        ..DeliveryFilter::default()
    };
    Ok(state.store.delete_deliveries(tenant_id, &filter).await?)
}

/// `POST /v1/deliveries/cleanup?status=&older_than_days=&reference_id=`
#[utoipa::path(post, path = "/v1/deliveries/cleanup", tag = "deliveries", params(DeliveryQuery),
    responses((status = 200, description = "How many finished deliveries were deleted", body = Deleted)))]
pub async fn cleanup(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<DeliveryQuery>,
) -> ApiResult<Json<Deleted>> {
    let status = parse_status(q.status.as_deref())?;
    let deleted = cleanup_finished(
        &state,
        &caller.tenant_id,
        status,
        q.reference_id,
        q.older_than_days.unwrap_or(0),
    )
    .await?;
    Ok(Json(Deleted { deleted }))
}

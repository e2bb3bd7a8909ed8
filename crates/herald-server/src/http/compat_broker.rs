//! Seed 002's broker API, served by the same endpoints and events as `/v1`:
//! a registration is an endpoint subscribed to one event name; a trigger publishes that event.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use herald_store::{EndpointFilter, EndpointRecord, Page};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::endpoints::{check_url, new_endpoint};
use super::error::{ApiError, ApiResult};
use super::events::{accept_trace, correlation_id, publish_event};
use super::extract::{parse_json, JsonBody, PathParams, QueryParams, RawBody};
use crate::app::{now_ms, AppState};

/// Body of `POST /api/v0/webhooks`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Registration {
    event_name: String,
    webhook_url: String,
}

fn view(ep: &EndpointRecord) -> Value {
    json!({
        "id": ep.id,
        "eventName": ep.event_types.first().cloned().unwrap_or_else(|| "*".into()),
        "webhookUrl": ep.url,
    })
}

/// The tenant's endpoints subscribed to exactly `event_name` (a registration), first match.
async fn registration(
    state: &AppState,
    tenant: &str,
    event_name: &str,
    url: &str,
) -> ApiResult<Option<EndpointRecord>> {
    let filter = EndpointFilter {
        event_type: Some(event_name.to_string()),
    };
    let mut page = Page::first(250);
    loop {
        let listing = state.store.list_endpoints(tenant, &filter, &page).await?;
        if let Some(ep) = listing
            .items
            .iter()
            .find(|ep| ep.url == url && ep.event_types == [event_name])
        {
            return Ok(Some(ep.clone()));
        }
        match listing.next_after {
            Some(after) => page.after = Some(after),
            None => return Ok(None),
        }
    }
}

/// `POST /api/v0/webhooks`: register (event name, URL); registering the same pair again is a no-op (200).
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<Registration>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    herald_core::event_type::EventType::parse(&input.event_name)
        .map_err(|e| ApiError::invalid("eventName", e.to_string()))?;
    let url = check_url(&state, "webhookUrl", &input.webhook_url)?.into_string();
    if let Some(existing) = registration(&state, &caller.tenant_id, &input.event_name, &url).await?
    {
        return Ok((StatusCode::OK, Json(view(&existing))));
    }
    let mut ep = new_endpoint(&state, &caller.tenant_id, now_ms());
    ep.url = url;
    ep.event_types = vec![input.event_name];
    state.store.create_endpoint(&ep).await?;
    Ok((StatusCode::CREATED, Json(view(&ep))))
}

/// Query of the list route.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    page_size: Option<usize>,
    offset: Option<u64>,
}

/// `GET /api/v0/webhooks?page_size=&offset=`
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<Value>> {
    let page_size = q.page_size.unwrap_or(20);
    if !(1..=250).contains(&page_size) {
        return Err(ApiError::bad_request(
            "invalid_page_size",
            "page_size must be between 1 and 250",
        ));
    }
    let offset = q.offset.unwrap_or(0);
    let page = Page {
        limit: page_size,
        after: None,
        offset,
    };
    let listing = state
        .store
        .list_endpoints(&caller.tenant_id, &EndpointFilter::default(), &page)
        .await?;
    let next_offset = listing
        .next_after
        .as_ref()
        .map(|_| offset + page_size as u64);
    let data: Vec<Value> = listing.items.iter().map(view).collect();
    Ok(Json(
        json!({ "data": data, "page_size": page_size, "offset": offset, "next_offset": next_offset }),
    ))
}

/// `GET /api/v0/webhooks/{eventName}`: every URL an event name fans out to.
pub async fn by_event(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(event_name): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let filter = EndpointFilter {
        event_type: Some(event_name.clone()),
    };
    let mut page = Page::first(250);
    let mut urls = Vec::new();
    loop {
        let listing = state
            .store
            .list_endpoints(&caller.tenant_id, &filter, &page)
            .await?;
        urls.extend(
            listing
                .items
                .iter()
                .filter(|ep| !ep.disabled)
                .map(|ep| json!({"id": ep.id, "webhookUrl": ep.url})),
        );
        match listing.next_after {
            Some(after) => page.after = Some(after),
            None => break,
        }
    }
    Ok(Json(json!({ "eventName": event_name, "webhooks": urls })))
}

/// `POST /api/v0/trigger-event/{eventName}` (body = payload): publish and fan out, durably.
pub async fn trigger(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(event_name): PathParams<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let payload: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_json(&body)?
    };
    let correlation = correlation_id(&headers, now_ms())?;
    let (_span, trace) = accept_trace(&state, "publish", &headers);
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let published = publish_event(
        &state,
        &caller.tenant_id,
        &event_name,
        payload.to_string(),
        key,
        correlation,
        trace,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "eventName": event_name,
            "eventId": published.event.id,
            "correlationId": published.event.correlation_id,
            "queued": published.deliveries.len(),
            "deliveries": published.deliveries,
        })),
    ))
}

//! Seed 002's broker API, served by the same endpoints and events as `/v1`:
//! a registration is an endpoint subscribed to one event name; a trigger publishes that event.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use herald_api::compat::{
    Registered, Registration, RegistrationPage, RegistrationPageQuery, Subscriber, Subscribers,
    Triggered,
};
use herald_store::{EndpointFilter, EndpointRecord, Page};
use serde_json::{json, Value};

use super::auth::Caller;
use super::endpoints::{check_url, new_endpoint};
use super::error::{ApiError, ApiResult};
use super::events::{accept_trace, correlation_id, delivery_refs, publish_event};
use super::extract::{parse_json, JsonBody, PathParams, QueryParams, RawBody};
use crate::app::{now_ms, AppState};

fn view(ep: &EndpointRecord) -> Registered {
    Registered {
        id: ep.id.clone(),
        event_name: ep
            .event_types
            .first()
            .cloned()
            .unwrap_or_else(|| "*".into()),
        webhook_url: ep.url.clone(),
    }
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
#[utoipa::path(post, path = "/api/v0/webhooks", tag = "seed 002: broker", request_body = Registration,
    responses((status = 201, description = "Registered", body = Registered), (status = 200, description = "Already registered", body = Registered)))]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<Registration>,
) -> ApiResult<(StatusCode, Json<Registered>)> {
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

/// `GET /api/v0/webhooks?page_size=&offset=`
#[utoipa::path(get, path = "/api/v0/webhooks", tag = "seed 002: broker", params(RegistrationPageQuery),
    responses((status = 200, description = "A page of registrations", body = RegistrationPage)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<RegistrationPageQuery>,
) -> ApiResult<Json<RegistrationPage>> {
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
    Ok(Json(RegistrationPage {
        data: listing.items.iter().map(view).collect(),
        page_size,
        offset,
        next_offset,
    }))
}

/// `GET /api/v0/webhooks/{eventName}`: every URL an event name fans out to.
#[utoipa::path(get, path = "/api/v0/webhooks/{eventName}", tag = "seed 002: broker", params(("eventName" = String, Path, description = "The event name")),
    responses((status = 200, description = "Every URL the event fans out to", body = Subscribers)))]
pub async fn by_event(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(event_name): PathParams<String>,
) -> ApiResult<Json<Subscribers>> {
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
                .map(|ep| Subscriber {
                    id: ep.id.clone(),
                    webhook_url: ep.url.clone(),
                }),
        );
        match listing.next_after {
            Some(after) => page.after = Some(after),
            None => break,
        }
    }
    Ok(Json(Subscribers {
        event_name,
        webhooks: urls,
    }))
}

/// `POST /api/v0/trigger-event/{eventName}` (body = payload): publish and fan out, durably.
#[utoipa::path(post, path = "/api/v0/trigger-event/{eventName}", tag = "seed 002: broker", params(("eventName" = String, Path, description = "The event name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Triggering again with this key within 24 h answers the first event")),
    request_body(content = Option<serde_json::Value>, description = "The payload (empty: `{}`)"),
    responses((status = 202, description = "Stored and fanned out", body = Triggered)))]
pub async fn trigger(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(event_name): PathParams<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<Triggered>)> {
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
        Json(Triggered {
            event_name,
            queued: published.deliveries.len(),
            deliveries: delivery_refs(&published),
            event_id: published.event.id,
            correlation_id: published.event.correlation_id,
        }),
    ))
}

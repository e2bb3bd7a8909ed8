//! `/v1/events`: publish an event (fan-out to matching endpoints) and read it back.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use herald_api::events::{DeliveryRef, Event, PublishInput, PublishReceipt};
use herald_core::event_type::EventType;
use herald_core::trace::TraceParent;
use herald_store::{NewEvent, Published};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, PathParams};
use super::views;
use crate::app::{now_ms, AppState};
use crate::random;
use crate::telemetry::SpanGuard;

/// The request's `x-correlation-id`, or a new one. 400 when present but unusable.
pub fn correlation_id(headers: &HeaderMap, now: i64) -> ApiResult<String> {
    match headers.get("x-correlation-id") {
        None => Ok(random::correlation_id(now)),
        Some(v) => {
            let text = v.to_str().unwrap_or("");
            if text.is_empty() || text.len() > 200 || !text.chars().all(|c| c.is_ascii_graphic()) {
                Err(ApiError::bad_request(
                    "invalid_correlation_id",
                    "x-correlation-id must be 1-200 visible ASCII characters",
                ))
            } else {
                Ok(text.to_string())
            }
        }
    }
}

/// The trace the request's work continues: a span named `name` (when spans are exported) of the request's
/// W3C `traceparent`, or of a new trace when it has none or an unusable one (as W3C asks: a malformed
/// header restarts the trace). Returns the span, to be held while the request is served, and the
/// `traceparent` to store with the work.
pub fn accept_trace(
    state: &AppState,
    name: &'static str,
    headers: &HeaderMap,
) -> (SpanGuard, String) {
    let incoming = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse);
    let span = state.telemetry.span(name, incoming.as_ref());
    let trace = span
        .traceparent()
        .or(incoming)
        .unwrap_or_else(random::new_trace);
    (span, trace.to_string())
}

fn idempotency_key(headers: &HeaderMap, body_key: Option<String>) -> ApiResult<Option<String>> {
    let header_key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| {
            ApiError::bad_request("invalid_idempotency_key", "Idempotency-Key is not text")
        })?;
    let key = body_key.or(header_key);
    if let Some(k) = &key {
        if k.is_empty() || k.len() > 256 {
            return Err(ApiError::invalid(
                "idempotency_key",
                "idempotency_key must be 1-256 characters",
            ));
        }
    }
    Ok(key)
}

/// Publish through the store and wake the engine; shared by `/v1/events` and the compatibility routes.
pub async fn publish_event(
    state: &AppState,
    tenant_id: &str,
    event_type: &str,
    payload: String,
    idempotency_key: Option<String>,
    correlation_id: String,
    traceparent: String,
) -> ApiResult<Published> {
    let event_type =
        EventType::parse(event_type).map_err(|e| ApiError::invalid("event_type", e.to_string()))?;
    if let Err(retry_after_ms) = state.publish_limits.admit(tenant_id, now_ms()) {
        return Err(ApiError::RateLimited {
            rate_per_s: state.publish_limits.rate_per_s().unwrap_or(0),
            retry_after_ms,
        });
    }
    let published = state
        .store
        .publish(NewEvent {
            tenant_id: tenant_id.to_string(),
            event_type: event_type.as_str().to_string(),
            payload,
            idempotency_key,
            correlation_id,
            traceparent: Some(traceparent),
            now_ms: now_ms(),
        })
        .await?;
    tracing::debug!(
        event_id = %published.event.id, correlation_id = %published.event.correlation_id,
        trace_id = published.event.traceparent.as_deref().and_then(TraceParent::parse)
            .map(|t| t.trace_id_hex()).as_deref(),
        deliveries = published.deliveries.len(), "published"
    );
    if !published.replayed {
        state.metrics.published(1);
        if !published.deliveries.is_empty() {
            if let Some(hints) = &state.work_hints {
                hints.add_first(
                    published
                        .deliveries
                        .iter()
                        .filter_map(|d| d.endpoint_id.as_deref()),
                );
            }
            state.work_ready.notify_one();
        }
    }
    Ok(published)
}

/// `POST /v1/events`
#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = PublishInput,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Publishing again with this key within 24 h answers the first event"),
        ("x-correlation-id" = Option<String>, Header, description = "Carried to every delivery; made when absent"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context the deliveries continue"),
    ),
    responses((status = 202, description = "Stored and fanned out", body = PublishReceipt,
        headers(("idempotent-replayed" = String, description = "`true` when this answers an earlier publish")))))]
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(input): JsonBody<PublishInput>,
) -> ApiResult<(StatusCode, HeaderMap, Json<PublishReceipt>)> {
    let correlation = correlation_id(&headers, now_ms())?;
    let key = idempotency_key(&headers, input.idempotency_key)?;
    let (_span, trace) = accept_trace(&state, "publish", &headers);
    let published = publish_event(
        &state,
        &caller.tenant_id,
        &input.event_type,
        input.payload.get().to_string(),
        key,
        correlation,
        trace,
    )
    .await?;
    let mut out = HeaderMap::new();
    if published.replayed {
        out.insert(
            "idempotent-replayed",
            "true".parse().expect("static header value"),
        );
    }
    let body = PublishReceipt {
        deliveries: delivery_refs(&published),
        id: published.event.id,
        event_type: published.event.event_type,
        correlation_id: published.event.correlation_id,
    };
    Ok((StatusCode::ACCEPTED, out, Json(body)))
}

/// The deliveries a publish fanned out to, as the API shows them.
pub fn delivery_refs(published: &Published) -> Vec<DeliveryRef> {
    published
        .deliveries
        .iter()
        .map(|d| DeliveryRef {
            id: d.id.clone(),
            endpoint_id: d.endpoint_id.clone(),
        })
        .collect()
}

/// `GET /v1/events/{id}`
#[utoipa::path(get, path = "/v1/events/{id}", tag = "events", params(("id" = String, Path, description = "`evt_…`")),
    responses((status = 200, description = "The event", body = Event)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Event>> {
    let event = state.store.get_event(&caller.tenant_id, &id).await?;
    Ok(Json(views::event(&event)))
}

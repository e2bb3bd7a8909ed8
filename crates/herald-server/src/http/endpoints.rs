//! `/v1/endpoints`: subscriptions (create, list, get, patch, delete, rotate secret, replay).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use herald_api::common::{Page, SecretAnswer};
use herald_api::endpoints::{
    Endpoint, EndpointInput, EndpointListQuery, Recovered, Replayed, SinceQuery,
};
use herald_core::event_type::validate_filter;
use herald_core::retry::RetryPolicy;
use herald_core::signing::Secret;
use herald_core::time::parse_rfc3339;
use herald_core::url_policy::TargetUrl;
use herald_store::{EndpointFilter, EndpointRecord};
use serde_json::json;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, PathParams, QueryParams};
use super::views;
use crate::app::{now_ms, AppState};
use crate::random;

/// How long the previous secret keeps signing after a rotation.
const ROTATION_OVERLAP_MS: i64 = 24 * 60 * 60 * 1000;

/// Longest endpoint `description`, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;
/// Largest endpoint `metadata` object, serialized, in bytes.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Most extra headers an endpoint, route or direct delivery may set.
pub const MAX_HEADERS: usize = 32;
/// Longest extra header value, in bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 4096;

/// Headers Herald sets itself; an endpoint may not override them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-correlation-id",
    "traceparent",
    "te",
    "upgrade",
    "keep-alive",
];

/// Check a target URL: syntax (422 `url`) and the node's URL policy.
pub fn check_url(state: &AppState, field: &str, url: &str) -> ApiResult<TargetUrl> {
    let target = TargetUrl::parse(url).map_err(|e| ApiError::invalid(field, e.to_string()))?;
    state
        .url_policy
        .check_url(&target)
        .map_err(|e| ApiError::invalid(field, e.to_string()))?;
    Ok(target)
}

/// Check extra headers: valid names and values, none Herald sets itself.
pub fn check_headers(headers: &BTreeMap<String, String>) -> ApiResult<()> {
    if headers.len() > MAX_HEADERS {
        return Err(ApiError::invalid(
            "headers",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    for (name, value) in headers {
        let field = format!("headers.{name}");
        if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ApiError::invalid(field, "not a valid header name"));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(ApiError::invalid(field, "this header is set by Herald"));
        }
        if value.len() > MAX_HEADER_VALUE_BYTES {
            return Err(ApiError::invalid(
                field,
                format!("header values are at most {MAX_HEADER_VALUE_BYTES} bytes"),
            ));
        }
        if axum::http::HeaderValue::from_str(value).is_err() {
            return Err(ApiError::invalid(field, "not a valid header value"));
        }
    }
    Ok(())
}

/// Check a retry policy's values (its shape was checked when parsing).
pub fn check_policy(policy: &RetryPolicy) -> ApiResult<()> {
    policy
        .validate()
        .map_err(|e| ApiError::invalid("retry_policy", e.to_string()))
}

/// Check the fields of `input` and apply them to `ep`; a new `secret` is set on `ep` and also returned, so
/// that an update can write it with [`herald_store::Store::set_endpoint_secret`].
fn apply_input(
    input: EndpointInput,
    state: &AppState,
    ep: &mut EndpointRecord,
) -> ApiResult<Option<String>> {
    let this = input;
    {
        let mut new_secret = None;
        if let Some(url) = this.url {
            ep.url = check_url(state, "url", &url)?.into_string();
        }
        if let Some(types) = this.event_types {
            for t in &types {
                validate_filter(t).map_err(|e| ApiError::invalid("event_types", e.to_string()))?;
            }
            ep.event_types = types;
        }
        if let Some(secret) = this.secret {
            Secret::parse(&secret).map_err(|e| ApiError::invalid("secret", e.to_string()))?;
            ep.secret = secret.clone();
            new_secret = Some(secret);
        }
        if let Some(headers) = this.headers {
            check_headers(&headers)?;
            ep.headers = headers;
        }
        if let Some(policy) = this.retry_policy {
            check_policy(&policy)?;
            ep.retry_policy = policy;
        }
        if let Some(t) = this.timeout_ms {
            if !(1..=300_000).contains(&t) {
                return Err(ApiError::invalid(
                    "timeout_ms",
                    "timeout_ms must be between 1 and 300000",
                ));
            }
            ep.timeout_ms = t;
        }
        if let Some(r) = this.rate_limit_per_s {
            if r == 0 {
                return Err(ApiError::invalid(
                    "rate_limit_per_s",
                    "rate_limit_per_s must be at least 1",
                ));
            }
            ep.rate_limit_per_s = Some(r);
        }
        if let Some(m) = this.max_in_flight {
            if !(1..=1024).contains(&m) {
                return Err(ApiError::invalid(
                    "max_in_flight",
                    "max_in_flight must be between 1 and 1024",
                ));
            }
            ep.max_in_flight = m;
        }
        if let Some(d) = this.disabled {
            ep.disabled = d;
        }
        if let Some(d) = this.description {
            if d.len() > MAX_DESCRIPTION_BYTES {
                return Err(ApiError::invalid(
                    "description",
                    format!("description must be at most {MAX_DESCRIPTION_BYTES} bytes"),
                ));
            }
            ep.description = Some(d);
        }
        if let Some(m) = this.metadata {
            if !m.is_object() {
                return Err(ApiError::invalid(
                    "metadata",
                    "metadata must be a JSON object",
                ));
            }
            if m.to_string().len() > MAX_METADATA_BYTES {
                return Err(ApiError::invalid(
                    "metadata",
                    format!("metadata must be at most {MAX_METADATA_BYTES} bytes as JSON"),
                ));
            }
            ep.metadata = m;
        }
        Ok(new_secret)
    }
}

/// A fresh endpoint record with the node's defaults, before the client's fields are applied.
pub fn new_endpoint(state: &AppState, tenant_id: &str, now: i64) -> EndpointRecord {
    EndpointRecord {
        id: herald_core::ids::encode_id("ep", now as u64, rand_u128()),
        tenant_id: tenant_id.to_string(),
        url: String::new(),
        event_types: vec!["*".into()],
        secret: random::signing_secret(),
        previous_secret: None,
        previous_secret_expires_ms: None,
        headers: BTreeMap::new(),
        retry_policy: RetryPolicy::default(),
        timeout_ms: state.config.delivery.default_timeout_ms,
        rate_limit_per_s: None,
        max_in_flight: state.config.delivery.default_max_in_flight,
        disabled: false,
        description: None,
        metadata: json!({}),
        created_ms: now,
        updated_ms: now,
    }
}

fn rand_u128() -> u128 {
    use rand::Rng;
    rand::rng().random()
}

/// `POST /v1/endpoints`
#[utoipa::path(post, path = "/v1/endpoints", tag = "endpoints", request_body = EndpointInput,
    responses((status = 201, description = "Created; the answer shows the secret", body = Endpoint)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<EndpointInput>,
) -> ApiResult<(StatusCode, Json<Endpoint>)> {
    if input.url.is_none() {
        return Err(ApiError::invalid("url", "missing field `url`"));
    }
    let mut ep = new_endpoint(&state, &caller.tenant_id, now_ms());
    apply_input(input, &state, &mut ep)?;
    state.store.create_endpoint(&ep).await?;
    Ok((StatusCode::CREATED, Json(views::endpoint(&ep, true))))
}

/// `GET /v1/endpoints`
#[utoipa::path(get, path = "/v1/endpoints", tag = "endpoints", params(EndpointListQuery),
    responses((status = 200, description = "A page of endpoints, each with its circuit breaker", body = Page<Endpoint>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<EndpointListQuery>,
) -> ApiResult<Json<Page<Endpoint>>> {
    let page = views::page_of(q.limit, q.cursor.as_deref(), "ep")?;
    let filter = EndpointFilter {
        event_type: q.event_type,
    };
    let listing = state
        .store
        .list_endpoints(&caller.tenant_id, &filter, &page)
        .await?;
    let data = with_circuits(&state, &caller.tenant_id, &listing.items).await?;
    Ok(Json(views::page(data, listing.next_after)))
}

/// `GET /v1/endpoints/{id}`
#[utoipa::path(get, path = "/v1/endpoints/{id}", tag = "endpoints", params(("id" = String, Path, description = "`ep_…`")),
    responses((status = 200, description = "The endpoint with its circuit breaker", body = Endpoint)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Endpoint>> {
    let ep = state.store.get_endpoint(&caller.tenant_id, &id).await?;
    let mut shown = with_circuits(&state, &caller.tenant_id, std::slice::from_ref(&ep)).await?;
    Ok(Json(shown.remove(0)))
}

/// Endpoints as shown, each with its circuit breaker (`circuit`).
async fn with_circuits(
    state: &AppState,
    tenant_id: &str,
    endpoints: &[EndpointRecord],
) -> ApiResult<Vec<Endpoint>> {
    let ids: Vec<String> = endpoints.iter().map(|ep| ep.id.clone()).collect();
    let circuits = state.store.endpoint_circuits(tenant_id, &ids).await?;
    let now = now_ms();
    Ok(endpoints
        .iter()
        .map(|ep| {
            let mut v = views::endpoint(ep, false);
            let health = circuits
                .iter()
                .find(|c| c.endpoint_id == ep.id)
                .map(|c| &c.health);
            v.circuit = Some(views::circuit(health, now));
            v
        })
        .collect())
}

/// `GET /v1/endpoints/{id}/secret`
#[utoipa::path(get, path = "/v1/endpoints/{id}/secret", tag = "endpoints", params(("id" = String, Path, description = "`ep_…`")),
    responses((status = 200, description = "The current signing secret", body = SecretAnswer)))]
pub async fn secret(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<SecretAnswer>> {
    let ep = state.store.get_endpoint(&caller.tenant_id, &id).await?;
    Ok(Json(SecretAnswer { secret: ep.secret }))
}

/// `PATCH /v1/endpoints/{id}`
#[utoipa::path(patch, path = "/v1/endpoints/{id}", tag = "endpoints", params(("id" = String, Path, description = "`ep_…`")),
    request_body = EndpointInput, responses((status = 200, description = "The endpoint as updated", body = Endpoint)))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    JsonBody(input): JsonBody<EndpointInput>,
) -> ApiResult<Json<Endpoint>> {
    let mut ep = state.store.get_endpoint(&caller.tenant_id, &id).await?;
    let new_secret = apply_input(input, &state, &mut ep)?;
    ep.updated_ms = now_ms();
    state.store.update_endpoint(&ep).await?;
    if let Some(secret) = new_secret {
        ep = state
            .store
            .set_endpoint_secret(&caller.tenant_id, &id, &secret, None, ep.updated_ms)
            .await?;
    }
    Ok(Json(views::endpoint(&ep, false)))
}

/// `DELETE /v1/endpoints/{id}`
#[utoipa::path(delete, path = "/v1/endpoints/{id}", tag = "endpoints", params(("id" = String, Path, description = "`ep_…`")),
    responses((status = 204, description = "Deleted; its unfinished deliveries are cancelled")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_endpoint(&caller.tenant_id, &id, now_ms())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/endpoints/{id}/rotate-secret`: the old secret keeps signing for 24 h beside the new one.
#[utoipa::path(post, path = "/v1/endpoints/{id}/rotate-secret", tag = "endpoints", params(("id" = String, Path, description = "`ep_…`")),
    responses((status = 200, description = "The endpoint with its new secret", body = Endpoint)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Endpoint>> {
    let now = now_ms();
    let ep = state
        .store
        .set_endpoint_secret(
            &caller.tenant_id,
            &id,
            &random::signing_secret(),
            Some(now + ROTATION_OVERLAP_MS),
            now,
        )
        .await?;
    Ok(Json(views::endpoint(&ep, true)))
}

/// `since` as unix milliseconds; 400 unless it is an RFC 3339 time.
fn since_ms(q: &SinceQuery) -> ApiResult<i64> {
    parse_rfc3339(&q.since)
        .ok_or_else(|| ApiError::bad_request("invalid_since", "since must be an RFC 3339 time"))
}

/// `POST /v1/endpoints/{id}/replay?since=<RFC 3339>`: new deliveries of the endpoint's events since then.
#[utoipa::path(post, path = "/v1/endpoints/{id}/replay", tag = "endpoints", params(("id" = String, Path, description = "`ep_…`"), SinceQuery),
    responses((status = 202, description = "New deliveries queued", body = Replayed)))]
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<SinceQuery>,
) -> ApiResult<(StatusCode, Json<Replayed>)> {
    let since = since_ms(&q)?;
    let count = state
        .store
        .replay_endpoint(&caller.tenant_id, &id, since, now_ms())
        .await?;
    state.work_ready.notify_one();
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed: count })))
}

/// `POST /v1/endpoints/{id}/recover?since=<RFC 3339>`: retry the endpoint's failed deliveries (its
/// dead-letter set) created since then, each with a fresh retry cycle.
#[utoipa::path(post, path = "/v1/endpoints/{id}/recover", tag = "endpoints", params(("id" = String, Path, description = "`ep_…`"), SinceQuery),
    responses((status = 202, description = "Failed deliveries queued again", body = Recovered)))]
pub async fn recover(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<SinceQuery>,
) -> ApiResult<(StatusCode, Json<Recovered>)> {
    let since = since_ms(&q)?;
    let count = state
        .store
        .recover_endpoint(&caller.tenant_id, &id, since, now_ms())
        .await?;
    if count > 0 {
        state.work_ready.notify_one();
    }
    Ok((StatusCode::ACCEPTED, Json(Recovered { recovered: count })))
}

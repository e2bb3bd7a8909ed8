//! `/v1/routes`: where jobs' work goes (`proxy` to an upstream, or `notify` a worker).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use herald_api::common::{Page, SecretAnswer};
use herald_api::routes::{AuthKind, Route, RouteKindName};
use herald_core::retry::RetryPolicy;
use herald_core::signing::Secret;
use herald_store::{RouteKind, RouteRecord, StoreError};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::Caller;
use super::endpoints::{check_policy, check_url};
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, PathParams};
use super::views::time;
use crate::app::{now_ms, AppState};
use crate::auth_client::ServiceAuth;
use crate::random;

/// Body of `PUT /v1/routes/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteInput {
    /// `proxy` (call an upstream and report its answer) or `notify` (notify a worker).
    kind: String,
    /// Upstream or worker URL.
    url: String,
    /// Per-call timeout, 1-600000 ms (default 30000).
    timeout_ms: Option<u32>,
    /// Credentials sent to the service.
    auth: Option<ServiceAuth>,
    /// How calls are retried (default: seed 001's, 1 s doubling to 1 h, for 12 h).
    retry_policy: Option<RetryPolicy>,
    /// Signing secret; generated when absent (kept on replace).
    secret: Option<String>,
}

/// A route as the API shows it; the service user's credentials are never shown, only their kind.
pub fn view(route: &RouteRecord, with_secret: bool) -> Route {
    let auth_kind = route
        .auth
        .as_deref()
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .and_then(|a| a["kind"].as_str().map(str::to_string));
    Route {
        name: route.name.clone(),
        kind: match route.kind {
            RouteKind::Proxy => RouteKindName::Proxy,
            RouteKind::Notify => RouteKindName::Notify,
        },
        url: route.url.clone(),
        timeout_ms: route.timeout_ms,
        auth: auth_kind.map(|kind| AuthKind { kind }),
        retry_policy: serde_json::from_str(&route.retry_policy).ok(),
        created_at: time(route.created_ms),
        updated_at: time(route.updated_ms),
        secret: with_secret.then(|| route.secret.clone()),
    }
}

/// Check a route name: 1-64 of letters, digits, `-`, `_`, `.`.
fn check_name(name: &str) -> ApiResult<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    ok.then_some(()).ok_or_else(|| {
        ApiError::invalid(
            "name",
            "route names are 1-64 letters, digits, '-', '_' or '.'",
        )
    })
}

/// Turn input into a record (new, or replacing `existing`).
pub fn route_record(
    state: &AppState,
    tenant_id: &str,
    name: &str,
    input: RouteInput,
    existing: Option<RouteRecord>,
) -> ApiResult<RouteRecord> {
    check_name(name)?;
    let kind = RouteKind::parse(&input.kind)
        .ok_or_else(|| ApiError::invalid("kind", "kind must be proxy or notify"))?;
    let url = check_url(state, "url", &input.url)?.into_string();
    let timeout_ms = input.timeout_ms.unwrap_or(30_000);
    if !(1..=600_000).contains(&timeout_ms) {
        return Err(ApiError::invalid(
            "timeout_ms",
            "timeout_ms must be between 1 and 600000",
        ));
    }
    if let Some(auth) = &input.auth {
        auth.validate().map_err(|m| ApiError::invalid("auth", m))?;
        if let ServiceAuth::Oauth2ClientCredentials { token_url, .. } = auth {
            check_url(state, "auth.token_url", token_url)?;
        }
    }
    let policy = input.retry_policy.unwrap_or_else(RetryPolicy::seed_001);
    check_policy(&policy)?;
    let secret = match (input.secret, &existing) {
        (Some(s), _) => {
            Secret::parse(&s).map_err(|e| ApiError::invalid("secret", e.to_string()))?;
            s
        }
        (None, Some(old)) => old.secret.clone(),
        (None, None) => random::signing_secret(),
    };
    let now = now_ms();
    Ok(RouteRecord {
        tenant_id: tenant_id.to_string(),
        name: name.to_string(),
        kind,
        url,
        timeout_ms,
        secret,
        auth: input
            .auth
            .map(|a| serde_json::to_string(&a).expect("plain data serializes")),
        retry_policy: serde_json::to_string(&policy).expect("plain data serializes"),
        created_ms: existing.map_or(now, |e| e.created_ms),
        updated_ms: now,
    })
}

/// `PUT /v1/routes/{name}`: 201 when created, 200 when replaced; the answer shows the signing secret.
#[utoipa::path(put, path = "/v1/routes/{name}", tag = "routes", params(("name" = String, Path, description = "1-64 letters, digits, `-`, `_` or `.`")), request_body = RouteInput,
    responses((status = 200, description = "Replaced; the answer shows the secret", body = Route),
        (status = 201, description = "Created; the answer shows the secret", body = Route)))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(name): PathParams<String>,
    JsonBody(input): JsonBody<RouteInput>,
) -> ApiResult<(StatusCode, Json<Route>)> {
    let existing = match state.store.get_route(&caller.tenant_id, &name).await {
        Ok(r) => Some(r),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let route = route_record(&state, &caller.tenant_id, &name, input, existing)?;
    state.store.put_route(&route).await?;
    Ok((status, Json(view(&route, true))))
}

/// `GET /v1/routes/{name}`
#[utoipa::path(get, path = "/v1/routes/{name}", tag = "routes", params(("name" = String, Path, description = "1-64 letters, digits, `-`, `_` or `.`")),
    responses((status = 200, description = "The route", body = Route)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(name): PathParams<String>,
) -> ApiResult<Json<Route>> {
    Ok(Json(view(
        &state.store.get_route(&caller.tenant_id, &name).await?,
        false,
    )))
}

/// `GET /v1/routes/{name}/secret`
#[utoipa::path(get, path = "/v1/routes/{name}/secret", tag = "routes", params(("name" = String, Path, description = "1-64 letters, digits, `-`, `_` or `.`")),
    responses((status = 200, description = "Its signing secret", body = SecretAnswer)))]
pub async fn secret(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(name): PathParams<String>,
) -> ApiResult<Json<SecretAnswer>> {
    let route = state.store.get_route(&caller.tenant_id, &name).await?;
    Ok(Json(SecretAnswer {
        secret: route.secret,
    }))
}

/// `GET /v1/routes`
#[utoipa::path(get, path = "/v1/routes", tag = "routes",
    responses((status = 200, description = "Every route of the tenant", body = Page<Route>)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Page<Route>>> {
    let routes = state.store.list_routes(&caller.tenant_id).await?;
    let data = routes.iter().map(|r| view(r, false)).collect();
    Ok(Json(super::views::page(data, None)))
}

/// `DELETE /v1/routes/{name}`
#[utoipa::path(delete, path = "/v1/routes/{name}", tag = "routes", params(("name" = String, Path, description = "1-64 letters, digits, `-`, `_` or `.`")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(name): PathParams<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_route(&caller.tenant_id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Apply the `[[routes]]` of the configuration (upserts; each table has `name`, optional `tenant`, and the
/// fields of `PUT /v1/routes/{name}`). Returns how many were applied.
pub async fn declare(state: &AppState, tables: &[toml::Table]) -> anyhow::Result<usize> {
    for (i, table) in tables.iter().enumerate() {
        let setting = |message: String| anyhow::anyhow!("invalid setting routes[{i}]: {message}");
        let mut table = table.clone();
        let name = match table.remove("name") {
            Some(toml::Value::String(name)) => name,
            _ => return Err(setting("name is required".into())),
        };
        let tenant = match table.remove("tenant") {
            Some(toml::Value::String(t)) => t,
            None => herald_store::DEFAULT_TENANT.to_string(),
            Some(_) => return Err(setting("tenant must be text".into())),
        };
        let input: RouteInput = toml::Value::Table(table)
            .try_into()
            .map_err(|e| setting(e.to_string()))?;
        let existing = match state.store.get_route(&tenant, &name).await {
            Ok(r) => Some(r),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(setting(e.to_string())),
        };
        let route = route_record(state, &tenant, &name, input, existing).map_err(|e| match e {
            ApiError::Validation { field, message } => setting(format!("{field}: {message}")),
            other => setting(other.to_string()),
        })?;
        state
            .store
            .put_route(&route)
            .await
            .map_err(|e| setting(e.to_string()))?;
    }
    Ok(tables.len())
}

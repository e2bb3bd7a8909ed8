//! `/v1/tenants`: the admin creates tenants and receives each one's API token (shown once).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::JsonBody;
use super::views;
use crate::app::{now_ms, AppState};
use crate::random;

/// Body of `POST /v1/tenants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantInput {
    id: String,
}

/// `POST /v1/tenants` (admin): 201 with the tenant's token.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<TenantInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_admin()?;
    let valid = (1..=64).contains(&input.id.len())
        && input
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(ApiError::invalid(
            "id",
            "id must be 1-64 characters of letters, digits, - and _",
        ));
    }
    let token = random::api_token("htk");
    let tenant = state
        .store
        .create_tenant(&input.id, &random::token_hash(&token), now_ms())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "id": tenant.id, "token": token, "created_at": views::time(tenant.created_ms) }),
        ),
    ))
}

/// `GET /v1/tenants` (admin).
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let tenants = state.store.list_tenants().await?;
    let data: Vec<Value> = tenants
        .iter()
        .map(|t| json!({ "id": t.id, "created_at": views::time(t.created_ms) }))
        .collect();
    Ok(Json(json!({ "data": data, "next_cursor": null })))
}

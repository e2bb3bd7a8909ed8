//! `/v1/tenants`: the admin creates tenants and receives each one's API token (shown once); tokens are
//! listed, added, rotated and revoked by the admin or by the tenant itself.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use herald_api::common::Page;
use herald_api::tenants::{IssuedToken, NewTenant, Tenant, TenantInput, Token, TokenInput};
use herald_store::TokenRecord;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{parse_json, JsonBody, PathParams, RawBody};
use super::views;
use crate::app::{now_ms, AppState};
use crate::random;

/// `POST /v1/tenants` (admin): 201 with the tenant's token.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = TenantInput,
    responses((status = 201, description = "Created, with its first API token (shown once)", body = NewTenant)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<TenantInput>,
) -> ApiResult<(StatusCode, Json<NewTenant>)> {
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
        Json(NewTenant {
            id: tenant.id,
            token,
            created_at: views::time(tenant.created_ms),
        }),
    ))
}

/// `GET /v1/tenants` (admin).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    responses((status = 200, description = "Every tenant", body = Page<Tenant>)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Page<Tenant>>> {
    caller.require_admin()?;
    let tenants = state.store.list_tenants().await?;
    let data = tenants
        .iter()
        .map(|t| Tenant {
            id: t.id.clone(),
            created_at: views::time(t.created_ms),
        })
        .collect();
    Ok(Json(views::page(data, None)))
}

/// Longest token name.
const MAX_TOKEN_NAME: usize = 128;

/// The admin, or the tenant acting on itself.
fn require_tenant_or_admin(caller: &Caller, tenant_id: &str) -> ApiResult<()> {
    if caller.admin || caller.tenant_id == tenant_id {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "a tenant token manages only its own tenant's tokens".into(),
        ))
    }
}

fn token_view(t: &TokenRecord) -> Token {
    Token {
        id: t.id.clone(),
        tenant_id: t.tenant_id.clone(),
        name: t.name.clone(),
        created_at: views::time(t.created_ms),
        revoked_at: t.revoked_ms.map(views::time),
    }
}

/// A new token for `tenant_id`: the record to store and the token, which is shown once.
fn new_token(tenant_id: &str, name: Option<String>, now: i64) -> (TokenRecord, String) {
    let token = random::api_token("htk");
    let hash = random::token_hash(&token);
    let record = TokenRecord {
        id: TokenRecord::id_for(&hash),
        tenant_id: tenant_id.to_string(),
        token_sha256: hash,
        name,
        created_ms: now,
        revoked_ms: None,
    };
    (record, token)
}

/// `GET /v1/tenants/{id}/tokens`: every token, revoked ones included (never the tokens themselves).
#[utoipa::path(get, path = "/v1/tenants/{id}/tokens", tag = "tenants", params(("id" = String, Path, description = "The tenant")),
    responses((status = 200, description = "Every token, revoked ones included", body = Page<Token>)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(tenant_id): PathParams<String>,
) -> ApiResult<Json<Page<Token>>> {
    require_tenant_or_admin(&caller, &tenant_id)?;
    let tokens = state.store.list_tokens(&tenant_id).await?;
    Ok(Json(views::page(
        tokens.iter().map(token_view).collect(),
        None,
    )))
}

/// `POST /v1/tenants/{id}/tokens {"name"?}`: 201 with the new token (shown once).
#[utoipa::path(post, path = "/v1/tenants/{id}/tokens", tag = "tenants", params(("id" = String, Path, description = "The tenant")),
    request_body(content = Option<TokenInput>, description = "Optional"),
    responses((status = 201, description = "The new token (shown once)", body = IssuedToken)))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(tenant_id): PathParams<String>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    require_tenant_or_admin(&caller, &tenant_id)?;
    let input: TokenInput = if body.iter().all(u8::is_ascii_whitespace) {
        TokenInput::default()
    } else {
        parse_json(&body)?
    };
    if input
        .name
        .as_ref()
        .is_some_and(|n| n.len() > MAX_TOKEN_NAME)
    {
        return Err(ApiError::invalid(
            "name",
            format!("name must be at most {MAX_TOKEN_NAME} bytes"),
        ));
    }
    let (record, token) = new_token(&tenant_id, input.name, now_ms());
    state.store.create_token(&record).await?;
    let view = IssuedToken {
        record: token_view(&record),
        token,
        replaces: None,
    };
    Ok((StatusCode::CREATED, Json(view)))
}

/// `POST /v1/tenants/{id}/tokens/{token_id}/rotate`: revokes the token and answers 201 with its
/// replacement (same name), in one commit.
#[utoipa::path(post, path = "/v1/tenants/{id}/tokens/{token_id}/rotate", tag = "tenants", params(("id" = String, Path, description = "The tenant"), ("token_id" = String, Path, description = "`tok_…`")),
    responses((status = 201, description = "The replacement (shown once); the old token is revoked", body = IssuedToken)))]
pub async fn rotate_token(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((tenant_id, token_id)): PathParams<(String, String)>,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    require_tenant_or_admin(&caller, &tenant_id)?;
    let now = now_ms();
    let old = state
        .store
        .list_tokens(&tenant_id)
        .await?
        .into_iter()
        .find(|t| t.id == token_id)
        .ok_or(ApiError::NotFound("token"))?;
    let (record, token) = new_token(&tenant_id, old.name.clone(), now);
    state
        .store
        .rotate_token(&tenant_id, &token_id, &record, now)
        .await?;
    state.forget_token(&old.token_sha256);
    let view = IssuedToken {
        record: token_view(&record),
        token,
        replaces: Some(token_id),
    };
    Ok((StatusCode::CREATED, Json(view)))
}

/// `DELETE /v1/tenants/{id}/tokens/{token_id}`: revoke; this node refuses it at once, every other node
/// within the token cache's lifetime (a few seconds).
#[utoipa::path(delete, path = "/v1/tenants/{id}/tokens/{token_id}", tag = "tenants", params(("id" = String, Path, description = "The tenant"), ("token_id" = String, Path, description = "`tok_…`")),
    responses((status = 204, description = "Revoked")))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((tenant_id, token_id)): PathParams<(String, String)>,
) -> ApiResult<StatusCode> {
    require_tenant_or_admin(&caller, &tenant_id)?;
    let revoked = state
        .store
        .revoke_token(&tenant_id, &token_id, now_ms())
        .await?;
    state.forget_token(&revoked.token_sha256);
    Ok(StatusCode::NO_CONTENT)
}

//! Bearer-token authentication and tenant resolution.
//!
//! The admin token acts on any tenant, chosen with `x-herald-tenant` (default `default`); a tenant token acts
//! only on its own tenant.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use herald_store::{StoreError, DEFAULT_TENANT};

use super::error::ApiError;
use crate::app::AppState;
use crate::random::token_hash;

/// The authenticated caller and the tenant the call acts on.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Tenant every record of this call belongs to.
    pub tenant_id: String,
    /// Whether the admin token was used.
    pub admin: bool,
}

impl Caller {
    /// Refuse unless the caller holds the admin token.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this operation needs the admin token".into(),
            ))
        }
    }
}

/// Compare without leaking the position of the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        let requested = parts
            .headers
            .get("x-herald-tenant")
            .map(|v| {
                v.to_str().map_err(|_| {
                    ApiError::bad_request("invalid_tenant", "x-herald-tenant is not text")
                })
            })
            .transpose()?;

        if constant_time_eq(token.as_bytes(), state.admin_token.as_bytes()) {
            let tenant_id = requested.unwrap_or(DEFAULT_TENANT).to_string();
            if tenant_id != DEFAULT_TENANT {
                known_tenant(state, &tenant_id).await?;
            }
            return Ok(Caller {
                tenant_id,
                admin: true,
            });
        }

        let hash = token_hash(token);
        let tenant_id = match state.cached_token(&hash) {
            Some(t) => t,
            None => {
                let tenant = state
                    .store
                    .tenant_by_token(&hash)
                    .await?
                    .ok_or(ApiError::Unauthorized)?;
                state.cache_token(hash, tenant.id.clone());
                tenant.id
            }
        };
        if let Some(other) = requested {
            if other != tenant_id {
                return Err(ApiError::Forbidden(
                    "a tenant token acts only on its own tenant".into(),
                ));
            }
        }
        Ok(Caller {
            tenant_id,
            admin: false,
        })
    }
}

async fn known_tenant(state: &AppState, tenant_id: &str) -> Result<(), ApiError> {
    match state.store.get_tenant(tenant_id).await {
        Ok(_) => Ok(()),
        Err(StoreError::NotFound(_)) => Err(ApiError::NotFound("tenant")),
        Err(e) => Err(e.into()),
    }
}

//! `/v1/tenants`: tenants and their API tokens.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `POST /v1/tenants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantInput {
    /// 1-64 letters, digits, `-` and `_`.
    pub id: String,
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    /// The tenant's id.
    pub id: String,
    /// RFC 3339.
    pub created_at: String,
}

/// Answer of `POST /v1/tenants` (201): the tenant and its first API token, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewTenant {
    /// The tenant's id.
    pub id: String,
    /// Its API token (`htk_…`).
    pub token: String,
    /// RFC 3339.
    pub created_at: String,
}

/// Body of `POST /v1/tenants/{id}/tokens` (optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    /// A label, at most 128 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An API token's record (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    /// `tok_…`
    pub id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its label.
    pub name: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// When it was revoked (RFC 3339).
    pub revoked_at: Option<String>,
}

/// A token just issued (201): its record and the token, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IssuedToken {
    /// The record.
    #[serde(flatten)]
    pub record: Token,
    /// The API token (`htk_…`).
    pub token: String,
    /// On rotation: the id of the token it replaces (now revoked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

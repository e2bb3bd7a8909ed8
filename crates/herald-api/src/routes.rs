//! `/v1/routes`: where jobs' work goes.

use herald_core::retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a route does with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteKindName {
    /// Call an upstream and report its answer.
    Proxy,
    /// Notify a worker, which reports progress and completion.
    Notify,
}

/// The kind of a route's service credentials (the credentials are never shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuthKind {
    /// `basic`, `bearer` or `oauth2_client_credentials`.
    pub kind: String,
}

/// A route as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Route {
    /// Its name.
    pub name: String,
    /// Proxy or notify.
    pub kind: RouteKindName,
    /// Upstream or worker URL.
    pub url: String,
    /// Per-call timeout in ms.
    pub timeout_ms: u32,
    /// The kind of credentials sent to the service, if any.
    pub auth: Option<AuthKind>,
    /// How calls are retried.
    pub retry_policy: Option<RetryPolicy>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// The signing secret: only in the answer of put.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

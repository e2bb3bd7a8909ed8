//! API errors: `{"error": {"code", "message", "details"?}}` with the right status. Each variant documents its
//! status; handlers return `Result<_, ApiError>` and never build error bodies by hand.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_store::StoreError;
use serde_json::{json, Value};

/// Everything an API call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON.
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// 400: a query parameter or path segment is malformed.
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// 401: no token, or not a valid one.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// 403: the token is valid but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such record for this tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: the record's state does not allow the operation.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than `max_payload_bytes`.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 422: a field is missing, mistyped or invalid.
    #[error("{message}")]
    Validation {
        /// The offending field (dotted path).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// 429: the tenant publishes faster than its limit; retry after this many milliseconds.
    #[error("this tenant may publish {rate_per_s} events a second; retry in {retry_after_ms} ms")]
    RateLimited {
        /// Publishes a second allowed.
        rate_per_s: u32,
        /// When a publish will be admitted again.
        retry_after_ms: u64,
    },
    /// 503: the store cannot be reached right now.
    #[error("the store is unavailable; retry shortly")]
    Unavailable(String),
    /// 500: a bug or a corrupt record; details go to the log, not the client.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A 422 for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::Invalid(m) => {
                tracing::warn!(detail = %m, "the store refused a value the API let through");
                ApiError::bad_request("invalid_value", "a value in the request cannot be stored")
            }
            StoreError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error answering a request")
            }
            ApiError::Unavailable(detail) => tracing::warn!(%detail, "store unavailable"),
            _ => {}
        }
        let mut error = json!({"code": code, "message": self.to_string()});
        let details: Option<Value> = match &self {
            ApiError::Validation { field, .. } => Some(json!({"field": field})),
            ApiError::RateLimited { retry_after_ms, .. } => {
                Some(json!({"retry_after_ms": retry_after_ms}))
            }
            _ => None,
        };
        if let Some(details) = details {
            error["details"] = details;
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        if let ApiError::RateLimited { retry_after_ms, .. } = &self {
            // Whole seconds, rounded up: a client that waits this long is admitted.
            let secs = retry_after_ms.div_ceil(1000).max(1);
            if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

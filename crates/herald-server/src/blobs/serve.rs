//! Downloads from the local blob store: `GET /v1/blobs/{*key}?expires=<unix secs>&sig=<hex>`.
//!
//! No bearer token: the HMAC signature over `key + "\n" + expires` is the credential. The signature is
//! checked before the file is looked up, so unsigned requests learn nothing about which blobs exist.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{LocalBlobs, SignatureError};
use crate::http::error::ApiError;

/// The download route with its own state, ready to `.merge()` into a node's router.
pub fn router(local: Arc<LocalBlobs>) -> Router {
    Router::new()
        .route("/v1/blobs/{*key}", get(download))
        .with_state(local)
}

/// The signature parameters of a download URL.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignedQuery {
    /// Unix seconds after which the URL is refused.
    pub expires: Option<String>,
    /// Hex HMAC-SHA256 of `key + "\n" + expires`.
    pub sig: Option<String>,
}

/// `GET /v1/blobs/{*key}`: 200 with the gzip bytes (`application/gzip`), 403 (`forbidden`) for a wrong or
/// expired signature, 404 when the blob is missing.
#[utoipa::path(get, path = "/v1/blobs/{key}", tag = "jobs", security(()),
    params(("key" = String, Path, description = "The blob's key (may hold slashes)"), SignedQuery),
    responses((status = 200, description = "The gzip bytes", content_type = "application/gzip", body = Vec<u8>),
        (status = 403, description = "A wrong or expired signature", body = herald_api::common::ErrorBody),
        (status = 404, description = "No such blob", body = herald_api::common::ErrorBody)))]
pub async fn download(
    State(local): State<Arc<LocalBlobs>>,
    key: Result<Path<String>, PathRejection>,
    query: Result<Query<SignedQuery>, QueryRejection>,
) -> Response {
    let (Ok(Path(key)), Ok(Query(query))) = (key, query) else {
        return forbidden(SignatureError::Invalid);
    };
    let (Some(expires), Some(sig)) = (query.expires, query.sig) else {
        return forbidden(SignatureError::Invalid);
    };
    let now_secs = (crate::app::now_ms().max(0) / 1000) as u64;
    if let Err(e) = local.verify(&key, &expires, &sig, now_secs) {
        return forbidden(e);
    }
    let Some(path) = local.path_for(&key) else {
        return ApiError::NotFound("blob").into_response();
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return ApiError::NotFound("blob").into_response()
        }
        Err(e) => {
            let detail = format!("cannot open blob {}: {e}", path.display());
            return ApiError::Internal(detail).into_response();
        }
    };
    let len = match file.metadata().await {
        Ok(meta) => meta.len(),
        Err(e) => {
            let detail = format!("cannot stat blob {}: {e}", path.display());
            return ApiError::Internal(detail).into_response();
        }
    };
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
}

fn forbidden(e: SignatureError) -> Response {
    ApiError::Forbidden(e.to_string()).into_response()
}

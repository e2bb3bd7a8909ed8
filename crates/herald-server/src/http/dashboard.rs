//! The dashboard: a single-page application embedded in the binary (built from `dashboard/` in the
//! repository; see its README), served at `/` with a strict Content-Security-Policy. It talks to this
//! node's API only, with the token the operator types in; nothing is fetched from another host.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::PathParams;

/// Only this origin's scripts, styles and API; no inline code, no frames, no forms posted elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

const INDEX: &[u8] = include_bytes!("../../../../dashboard/dist/index.html");

/// The embedded files under `/dashboard/`: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../../dashboard/dist/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../../dashboard/dist/app.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../../../dashboard/dist/favicon.svg"),
    ),
];

fn page(content_type: &'static str, body: &'static [u8]) -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ),
        (
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ),
    ];
    (headers, body).into_response()
}

/// `GET /`: the dashboard (no token: it signs in from the page).
#[utoipa::path(get, path = "/", tag = "dashboard", security(()),
    responses((status = 200, description = "The dashboard's page", content_type = "text/html")))]
pub async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

/// `GET /dashboard/{file}`: the dashboard's script, style sheet and icon.
#[utoipa::path(get, path = "/dashboard/{file}", tag = "dashboard", security(()),
    params(("file" = String, Path, description = "`app.js`, `app.css` or `favicon.svg`")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml"))),
        (status = 404, description = "No such file", body = herald_api::common::ErrorBody),
    ))]
pub async fn asset(PathParams(file): PathParams<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .map(|(_, content_type, body)| page(content_type, body))
        .ok_or(ApiError::NotFound("file"))
}

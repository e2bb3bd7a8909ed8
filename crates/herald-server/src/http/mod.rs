//! The HTTP API: one file per resource, all answering JSON (errors included).

pub mod auth;
mod compat_broker;
mod compat_status;
mod dashboard;
mod deliveries;
mod delivery_log;
mod endpoints;
pub mod error;
mod events;
pub mod extract;
mod health;
mod jobs;
pub mod metrics;
mod openapi;
pub mod routes;
mod stats;
mod tenants;
pub mod views;

use axum::extract::DefaultBodyLimit;
use axum::routing::any;
use axum::Router;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::app::AppState;
use error::ApiError;

async fn not_found() -> ApiError {
    ApiError::NotFound("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::bad_request(
        "method_not_allowed",
        "this route does not accept that method",
    )
}

/// Every route of a node; a worker-only node serves just the health routes (and the document). `blobs`
/// holds the download routes of the local blob store, when there is one.
pub fn router(state: AppState, blobs: Option<Router>) -> Router {
    let (mut app, _) = always_routes().split_for_parts();
    if state.config.role.serves_api() {
        app = app.merge(api_routes().split_for_parts().0);
    }
    let app = app
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_payload_bytes))
        .layer(axum::middleware::from_fn(extract::refuse_nul))
        .with_state(state);
    match blobs {
        Some(blobs) => app.merge(blobs),
        None => app,
    }
}

/// The OpenAPI document of every route (whatever the node's role), built from the same routers.
pub fn document() -> utoipa::openapi::OpenApi {
    let routers = always_routes().merge(api_routes()).into_openapi();
    openapi::document(routers)
}

/// Routes every node serves.
fn always_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(health::liveness))
        .routes(routes!(health::health))
        .routes(routes!(metrics::scrape))
        .routes(routes!(openapi::serve))
}

/// The API. Each `routes!` group shares one path; the gateway's catch-all paths are plain axum routes,
/// documented in [`openapi`].
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(dashboard::index))
        .routes(routes!(dashboard::asset))
        .routes(routes!(tenants::create, tenants::list))
        .routes(routes!(tenants::create_token, tenants::list_tokens))
        .routes(routes!(tenants::revoke_token))
        .routes(routes!(tenants::rotate_token))
        .routes(routes!(endpoints::create, endpoints::list))
        .routes(routes!(endpoints::get, endpoints::patch, endpoints::delete))
        .routes(routes!(endpoints::secret))
        .routes(routes!(endpoints::rotate_secret))
        .routes(routes!(endpoints::replay))
        .routes(routes!(endpoints::recover))
        .routes(routes!(delivery_log::list))
        .routes(routes!(stats::get))
        .routes(routes!(events::publish))
        .routes(routes!(events::get))
        .routes(routes!(
            deliveries::create,
            deliveries::list,
            deliveries::delete_many
        ))
        .routes(routes!(deliveries::cleanup))
        .routes(routes!(deliveries::get, deliveries::delete))
        .routes(routes!(deliveries::retry))
        .routes(routes!(deliveries::cancel))
        .routes(routes!(routes::list))
        .routes(routes!(routes::get, routes::put, routes::delete))
        .routes(routes!(routes::secret))
        .routes(routes!(jobs::create, jobs::list))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::progress))
        .routes(routes!(jobs::cancel))
        // Results may be larger than other bodies: the handler enforces max_result_bytes itself.
        .routes(routes!(jobs::complete).layer(DefaultBodyLimit::disable()))
        .route("/async/{route}", any(jobs::gateway))
        .route("/async/{route}/{*rest}", any(jobs::gateway))
        // Seed 002: the broker.
        .routes(routes!(compat_broker::register, compat_broker::list))
        .routes(routes!(compat_broker::by_event))
        .routes(routes!(compat_broker::trigger))
        // Seed 003: the webhook status API.
        .routes(routes!(compat_status::test_webhook))
        .routes(routes!(compat_status::get, compat_status::delete))
        .routes(routes!(compat_status::list, compat_status::delete_many))
        .routes(routes!(compat_status::cleanup))
}

#[cfg(test)]
mod tests;

//! The HTTP API: one file per resource, all answering JSON (errors included).

pub mod auth;
mod compat_broker;
mod compat_status;
mod deliveries;
mod endpoints;
pub mod error;
mod events;
pub mod extract;
mod health;
mod jobs;
pub mod metrics;
pub mod routes;
mod tenants;
pub mod views;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use axum::Router;

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

/// Every route of a node; a worker-only node serves just the health routes. `blobs` holds the download
/// routes of the local blob store, when there is one.
pub fn router(state: AppState, blobs: Option<Router>) -> Router {
    let mut app = Router::new()
        .route("/healthz", get(health::liveness))
        .route("/health", get(health::health))
        .route("/metrics", get(metrics::scrape));
    if state.config.role.serves_api() {
        app = app.merge(api_routes());
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

fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", post(tenants::create).get(tenants::list))
        .route(
            "/v1/tenants/{id}/tokens",
            post(tenants::create_token).get(tenants::list_tokens),
        )
        .route(
            "/v1/tenants/{id}/tokens/{token_id}",
            axum::routing::delete(tenants::revoke_token),
        )
        .route(
            "/v1/tenants/{id}/tokens/{token_id}/rotate",
            post(tenants::rotate_token),
        )
        .route(
            "/v1/endpoints",
            post(endpoints::create).get(endpoints::list),
        )
        .route(
            "/v1/endpoints/{id}",
            get(endpoints::get)
                .patch(endpoints::patch)
                .delete(endpoints::delete),
        )
        .route("/v1/endpoints/{id}/secret", get(endpoints::secret))
        .route(
            "/v1/endpoints/{id}/rotate-secret",
            post(endpoints::rotate_secret),
        )
        .route("/v1/endpoints/{id}/replay", post(endpoints::replay))
        .route("/v1/endpoints/{id}/recover", post(endpoints::recover))
        .route("/v1/events", post(events::publish))
        .route("/v1/events/{id}", get(events::get))
        .route(
            "/v1/deliveries",
            post(deliveries::create)
                .get(deliveries::list)
                .delete(deliveries::delete_many),
        )
        .route("/v1/deliveries/cleanup", post(deliveries::cleanup))
        .route(
            "/v1/deliveries/{id}",
            get(deliveries::get).delete(deliveries::delete),
        )
        .route("/v1/deliveries/{id}/retry", post(deliveries::retry))
        .route("/v1/deliveries/{id}/cancel", post(deliveries::cancel))
        .route("/v1/routes", get(routes::list))
        .route(
            "/v1/routes/{name}",
            get(routes::get).put(routes::put).delete(routes::delete),
        )
        .route("/v1/routes/{name}/secret", get(routes::secret))
        .route("/v1/jobs", post(jobs::create).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::get))
        .route("/v1/jobs/{id}/progress", post(jobs::progress))
        // Results may be larger than other bodies: the handler enforces max_result_bytes itself.
        .route(
            "/v1/jobs/{id}/complete",
            post(jobs::complete).layer(DefaultBodyLimit::disable()),
        )
        .route("/async/{route}", any(jobs::gateway))
        .route("/async/{route}/{*rest}", any(jobs::gateway))
        // Seed 002: the broker.
        .route(
            "/api/v0/webhooks",
            post(compat_broker::register).get(compat_broker::list),
        )
        .route(
            "/api/v0/webhooks/{event_name}",
            get(compat_broker::by_event),
        )
        .route(
            "/api/v0/trigger-event/{event_name}",
            post(compat_broker::trigger),
        )
        // Seed 003: the webhook status API.
        .route("/test-webhook", post(compat_status::test_webhook))
        .route(
            "/webhook-status/{webhook_id}",
            get(compat_status::get).delete(compat_status::delete),
        )
        .route(
            "/webhook-statuses",
            get(compat_status::list).delete(compat_status::delete_many),
        )
        .route("/webhook-cleanup", post(compat_status::cleanup))
}

//! `GET /metrics`: Prometheus exposition (text format 0.0.4) with the admin token, and the same without a
//! token on `metrics_listen` when that is set.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::auth::Caller;
use super::error::ApiResult;
use crate::app::{now_ms, AppState};
use crate::metrics::Snapshot;

/// The exposition's content type: the Prometheus text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics` (admin token).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)))]
pub async fn scrape(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.require_admin()?;
    Ok(exposition(&state).await)
}

/// The router of the `metrics_listen` address: `/metrics` and nothing else, no token.
pub fn open_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(state): State<AppState>| async move { exposition(&state).await }),
        )
        .with_state(state)
}

/// Read the scrape-time figures (queue counts, lag, jobs) and encode everything. A store that does not
/// answer leaves its figures out and counts a scrape error; the rest is still served.
async fn exposition(state: &AppState) -> impl IntoResponse {
    let now = now_ms();
    let (queue, oldest, jobs, circuits) = tokio::join!(
        state.store.stats(now),
        state.store.oldest_due_ms(now),
        state.store.count_jobs(),
        state.store.circuit_counts(now),
    );
    let snapshot = Snapshot {
        queue: queue.ok(),
        oldest_due_age_s: oldest
            .ok()
            .flatten()
            .map(|due| (now - due).max(0) as f64 / 1000.0),
        jobs: jobs.unwrap_or_default(),
        long_polls: state.jobs.waiting() as u64,
        engine_in_flight: state.engine.as_ref().map(|e| e.in_flight() as u64),
        circuits: circuits.ok(),
    };
    (
        [(CONTENT_TYPE, PROMETHEUS_TEXT)],
        state.metrics.encode(&snapshot),
    )
}

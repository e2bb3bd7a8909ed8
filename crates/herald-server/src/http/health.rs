//! `/healthz` (liveness) and `/health` (store reachable, queue depth, engine load, open circuit breakers);
//! no auth.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use herald_api::common::Liveness;
use herald_api::health::{
    CircuitBreakerCounts, Health, JobsHealth, QueueCounts, StoreHealth, Workers,
};

use crate::app::{now_ms, AppState};

/// `GET /healthz`: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "The process answers", body = Liveness)))]
pub async fn liveness() -> Json<Liveness> {
    Json(Liveness {
        status: "ok".into(),
    })
}

/// `GET /health`: 200 when the store answers and (on a delivering node) the engine runs, 503 otherwise.
#[utoipa::path(get, path = "/health", tag = "health", security(()),
    responses((status = 200, description = "Healthy", body = Health),
        (status = 503, description = "The store does not answer, or the engine stopped", body = Health)))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let store_kind = state.store.kind().to_string();
    let now = now_ms();
    let (stats, circuits) = tokio::join!(state.store.stats(now), state.store.circuit_counts(now));
    // Read once: the answer's status and its `running` field must agree.
    let running = state.engine.as_ref().map(|e| e.running());
    let workers = state.engine.as_ref().map(|e| Workers {
        running: running.unwrap_or(false),
        restarts: e.restarts(),
        in_flight: e.in_flight() as u64,
        capacity: e.capacity() as u64,
    });
    let engine_down = running == Some(false);
    match stats.and_then(|stats| Ok((stats, circuits?))) {
        Ok((stats, circuits)) => (
            if engine_down {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            },
            Json(Health {
                status: if engine_down { "degraded" } else { "ok" }.into(),
                store: StoreHealth {
                    kind: store_kind,
                    reachable: true,
                    error: None,
                },
                queue: Some(QueueCounts {
                    due: stats.due,
                    in_flight: stats.in_flight,
                    scheduled: stats.scheduled,
                    failed: stats.failed,
                }),
                circuit_breakers: Some(CircuitBreakerCounts {
                    open: circuits.open,
                    half_open: circuits.half_open,
                }),
                workers,
                jobs: Some(JobsHealth {
                    long_polls: state.jobs.waiting() as u64,
                }),
                role: Some(format!("{:?}", state.config.role).to_lowercase()),
            }),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable".into(),
                store: StoreHealth {
                    kind: store_kind,
                    reachable: false,
                    error: Some(e.to_string()),
                },
                queue: None,
                circuit_breakers: None,
                workers,
                jobs: None,
                role: None,
            }),
        ),
    }
}

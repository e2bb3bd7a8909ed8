//! `/healthz` (liveness) and `/health` (store reachable, queue depth, engine load, open circuit breakers);
//! no auth.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::app::{now_ms, AppState};

/// `GET /healthz`: the process answers.
pub async fn liveness() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /health`: 200 when the store answers and (on a delivering node) the engine runs, 503 otherwise.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let store_kind = state.store.kind();
    let now = now_ms();
    let (stats, circuits) = tokio::join!(state.store.stats(now), state.store.circuit_counts(now));
    // Read once: the answer's status and its `running` field must agree.
    let running = state.engine.as_ref().map(|e| e.running());
    let workers = state.engine.as_ref().map(|e| {
        json!({
            "running": running,
            "restarts": e.restarts(),
            "in_flight": e.in_flight(),
            "capacity": e.capacity(),
        })
    });
    let engine_down = running == Some(false);
    match stats.and_then(|stats| Ok((stats, circuits?))) {
        Ok((stats, circuits)) => (
            if engine_down {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            },
            Json(json!({
                "status": if engine_down { "degraded" } else { "ok" },
                "store": { "kind": store_kind, "reachable": true },
                "queue": stats,
                "circuit_breakers": circuits,
                "workers": workers,
                "jobs": { "long_polls": state.jobs.waiting() },
                "role": format!("{:?}", state.config.role).to_lowercase(),
            })),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "store": { "kind": store_kind, "reachable": false, "error": e.to_string() },
                "workers": workers,
            })),
        ),
    }
}

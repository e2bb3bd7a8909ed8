//! Shared state of a running node, handed to every HTTP handler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_core::url_policy::UrlPolicy;
use herald_store::Store;
use tokio::sync::Notify;

use crate::config::Config;

/// What handlers need: the store, settings, the URL policy, and a way to wake the delivery engine.
#[derive(Clone)]
pub struct AppState {
    /// Durable storage.
    pub store: Arc<dyn Store>,
    /// Settings in force.
    pub config: Arc<Config>,
    /// Target URL rules (scheme, allowlist, SSRF guard).
    pub url_policy: Arc<UrlPolicy>,
    /// The admin token (acts on any tenant).
    pub admin_token: Arc<str>,
    /// Notified after new work is committed so the engine claims it at once instead of at its next poll.
    pub work_ready: Arc<Notify>,
    /// Tenant tokens resolved in the last [`TOKEN_CACHE_TTL`] (`sha256 hex -> (tenant id, when)`), so a
    /// token revoked on another node stops working here within that time.
    pub token_cache: Arc<Mutex<HashMap<String, (String, Instant)>>>,
    /// Engine status for `/health`, when this node delivers.
    pub engine: Option<crate::delivery::EngineStatus>,
    /// Where publishes hint the endpoints they gave work to this node's engine, when it delivers.
    pub work_hints: Option<Arc<crate::delivery::hints::Hints>>,
    /// Jobs: long polls, progress, completion, the async gateway.
    pub jobs: Arc<crate::jobs::JobService>,
    /// This node's metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Spans for publishes (or nothing).
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// The per-tenant publish rate limit on this node.
    pub publish_limits: Arc<crate::publish_limits::PublishLimits>,
    /// The OpenAPI document, encoded once (`GET /openapi.json`).
    pub openapi: bytes::Bytes,
}

/// How long a resolved tenant token is trusted without asking the store again.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(2);

impl AppState {
    /// The tenant of a recently resolved token, if still fresh.
    pub fn cached_token(&self, hash: &str) -> Option<String> {
        let mut cache = self.token_cache.lock().expect("token cache lock");
        match cache.get(hash) {
            Some((tenant, at)) if at.elapsed() < TOKEN_CACHE_TTL => Some(tenant.clone()),
            Some(_) => {
                cache.remove(hash);
                None
            }
            None => None,
        }
    }

    /// Remember that `hash` resolved to `tenant_id`. Stale entries are swept when the cache grows.
    pub fn cache_token(&self, hash: String, tenant_id: String) {
        let mut cache = self.token_cache.lock().expect("token cache lock");
        if cache.len() >= 10_000 {
            cache.retain(|_, (_, at)| at.elapsed() < TOKEN_CACHE_TTL);
        }
        cache.insert(hash, (tenant_id, Instant::now()));
    }

    /// Drop a revoked token from this node's cache.
    pub fn forget_token(&self, hash: &str) {
        self.token_cache
            .lock()
            .expect("token cache lock")
            .remove(hash);
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

//! Shared state of a running node, handed to every HTTP handler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
    /// Tenant tokens already resolved (`sha256 hex -> tenant id`); tenants are never re-keyed.
    pub token_cache: Arc<Mutex<HashMap<String, String>>>,
    /// Engine status for `/health`, when this node delivers.
    pub engine: Option<crate::delivery::EngineStatus>,
    /// Jobs: long polls, progress, completion, the async gateway.
    pub jobs: Arc<crate::jobs::JobService>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

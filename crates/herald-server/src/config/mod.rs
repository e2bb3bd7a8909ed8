//! Settings: command-line flags, then `HERALD_*` environment variables, then `herald.toml`, then defaults.
//!
//! A bad value stops start-up with an error that names the setting and where it came from.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use layers::{read_toml, Layers};

mod checks;
mod layers;

/// Which parts of Herald a node runs (seed 000's dedicated dispatch nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts and answers API calls; delivers nothing.
    Api,
    /// Delivers; serves only health and metrics.
    Worker,
    /// Both.
    All,
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "api" => Ok(Role::Api),
            "worker" => Ok(Role::Worker),
            "all" => Ok(Role::All),
            _ => Err("expected api, worker or all".into()),
        }
    }
}

impl Role {
    /// Whether this node serves the API.
    pub fn serves_api(self) -> bool {
        matches!(self, Role::Api | Role::All)
    }
    /// Whether this node runs the delivery engine.
    pub fn delivers(self) -> bool {
        matches!(self, Role::Worker | Role::All)
    }
}

/// Delivery engine settings.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Requests in flight at once across all endpoints.
    pub concurrency: usize,
    /// Per-attempt timeout when an endpoint sets none.
    pub default_timeout_ms: u32,
    /// Per-endpoint in-flight limit when an endpoint sets none.
    pub default_max_in_flight: u32,
    /// Longest sleep between looks for due work when nothing wakes the engine.
    pub poll_interval_ms: u64,
    /// Lease slack beyond an attempt's timeout before another worker may take the delivery.
    pub lease_ms: i64,
    /// How long failed deliveries (the dead-letter set) are kept.
    pub dead_letter_ttl_days: u32,
    /// How long delivered and cancelled deliveries are kept.
    pub retention_days: u32,
    /// How often finished deliveries past retention are purged.
    pub purge_interval_ms: u64,
    /// How endpoint health is judged: circuit breakers, the degraded failure rate, auto-disable.
    pub health: herald_core::breaker::HealthPolicy,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            concurrency: 512,
            default_timeout_ms: 15_000,
            default_max_in_flight: 16,
            poll_interval_ms: 1_000,
            lease_ms: 30_000,
            dead_letter_ttl_days: 30,
            retention_days: 30,
            purge_interval_ms: 60_000,
            health: herald_core::breaker::HealthPolicy::default(),
        }
    }
}

/// Everything a Herald node needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// API listen address.
    pub listen: SocketAddr,
    /// Data directory: SQLite database, admin token, blobs.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL instead of the embedded store.
    pub database_url: Option<String>,
    /// PEM certificates trusted for PostgreSQL's TLS certificate (with `sslmode=require`), besides the
    /// webpki roots.
    pub database_ca_file: Option<PathBuf>,
    /// Admin token; generated and saved in the data dir when unset.
    pub admin_token: Option<String>,
    /// Permit delivery to loopback and private addresses (SSRF guard off).
    pub allow_private_targets: bool,
    /// Regex every target URL must match.
    pub url_allowlist: Option<String>,
    /// Host names answered without DNS (`host=ip,…`); the URL policy still checks the addresses.
    pub resolve: crate::outbound::ResolveOverrides,
    /// Largest accepted request body.
    pub max_payload_bytes: usize,
    /// Largest job result a worker may report (`/v1/jobs/{id}/complete`) or an upstream may answer.
    pub max_result_bytes: usize,
    /// What this node runs.
    pub role: Role,
    /// Most PostgreSQL connections this node opens.
    pub db_pool_size: usize,
    /// Longest wait for a PostgreSQL connection or statement before answering 503.
    pub db_timeout_ms: u64,
    /// Delivery engine settings.
    pub delivery: DeliveryConfig,
    /// Large-result offload: blob store, S3 settings, threshold, URL lifetime.
    pub blobs: crate::blobs::BlobSettings,
    /// How clients reach this node (base of local blob URLs); `http://<listen>` when unset.
    pub public_url: Option<String>,
    /// Also serve `GET /metrics`, without a token, on this address.
    pub metrics_listen: Option<SocketAddr>,
    /// This node's name in metrics (seed 003's `worker_id`); the host name when unset.
    pub node_name: Option<String>,
    /// Most events a tenant may publish a second on each node (`None`: no limit).
    pub tenant_publish_rate_per_s: Option<u32>,
    /// Largest burst of publishes over that rate (default: one second's worth).
    pub tenant_publish_burst: Option<u32>,
    /// Export spans over OTLP/HTTP to this collector (base URL; `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub otlp_endpoint: Option<String>,
    /// Job routes declared in `herald.toml` (`[[routes]]` tables), applied at start.
    pub routes: Vec<toml::Table>,
}

impl Config {
    /// Defaults with the given data directory (handy for tests and embedding).
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            listen: "127.0.0.1:8000".parse().expect("valid default address"),
            data_dir: data_dir.into(),
            database_url: None,
            database_ca_file: None,
            admin_token: None,
            allow_private_targets: false,
            url_allowlist: None,
            resolve: Default::default(),
            max_payload_bytes: 1024 * 1024,
            max_result_bytes: 64 * 1024 * 1024,
            role: Role::All,
            db_pool_size: 16,
            db_timeout_ms: 5_000,
            delivery: DeliveryConfig::default(),
            blobs: crate::blobs::BlobSettings::default(),
            public_url: None,
            routes: Vec::new(),
            metrics_listen: None,
            otlp_endpoint: None,
            tenant_publish_rate_per_s: None,
            tenant_publish_burst: None,
            node_name: None,
        }
    }

    /// Build the configuration from flags (`setting name -> value`, names as in `herald.toml`), the process
    /// environment, and the config file (`config_file`, else `./herald.toml` if present).
    pub fn load(
        flags: &HashMap<&'static str, String>,
        config_file: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let mut env: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("HERALD_"))
            .collect();
        // OpenTelemetry's standard name, unless Herald's own is set.
        if let Ok(endpoint) = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            env.entry("HERALD_OTLP_ENDPOINT".into()).or_insert(endpoint);
        }
        let file = match config_file {
            Some(path) => Some(read_toml(path)?),
            None if Path::new("herald.toml").exists() => Some(read_toml(Path::new("herald.toml"))?),
            None => None,
        };
        Layers {
            flags,
            env: &env,
            file: file.as_ref(),
        }
        .resolve()
    }
}

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting} (from {source_name}): {message}")]
pub struct ConfigError {
    /// The setting's name as in `herald.toml`.
    pub setting: String,
    /// Where the value came from (a flag, an environment variable or the file).
    pub source_name: String,
    /// What is wrong.
    pub message: String,
}

#[cfg(test)]
mod tests;

//! Settings: command-line flags, then `HERALD_*` environment variables, then `herald.toml`, then defaults.
//!
//! A bad value stops start-up with an error that names the setting and where it came from.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

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

fn read_toml(path: &Path) -> Result<toml::Table, ConfigError> {
    let err = |message: String| ConfigError {
        setting: "config file".into(),
        source_name: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    text.parse::<toml::Table>().map_err(|e| err(e.to_string()))
}

struct Layers<'a> {
    flags: &'a HashMap<&'static str, String>,
    env: &'a HashMap<String, String>,
    file: Option<&'a toml::Table>,
}

impl Layers<'_> {
    /// The raw value of `key` and where it came from, from the first layer that has it.
    fn raw(&self, key: &str) -> Option<(String, String)> {
        if let Some(v) = self.flags.get(key) {
            return Some((v.clone(), format!("--{}", key.replace('_', "-"))));
        }
        let env_name = format!("HERALD_{}", key.to_ascii_uppercase());
        if let Some(v) = self.env.get(&env_name) {
            return Some((v.clone(), env_name));
        }
        let value = self.file?.get(key)?;
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => format!("{value:?}"),
        };
        Some((text, format!("herald.toml key {key}")))
    }

    fn get<T: FromStr>(&self, key: &str, expected: &str) -> Result<Option<T>, ConfigError> {
        let Some((value, source_name)) = self.raw(key) else {
            return Ok(None);
        };
        value
            .trim()
            .parse::<T>()
            .map(Some)
            .map_err(|_| ConfigError {
                setting: key.into(),
                source_name,
                message: format!("{value:?} is not {expected}"),
            })
    }

    fn resolve(&self) -> Result<Config, ConfigError> {
        let mut c = Config::with_data_dir("./herald-data");
        let d = &mut c.delivery;
        macro_rules! set {
            ($field:expr, $key:literal, $what:literal) => {
                if let Some(v) = self.get($key, $what)? {
                    $field = v;
                }
            };
        }
        set!(d.concurrency, "concurrency", "a positive integer");
        set!(
            d.default_timeout_ms,
            "default_timeout_ms",
            "a number of milliseconds"
        );
        set!(
            d.default_max_in_flight,
            "default_max_in_flight",
            "a positive integer"
        );
        set!(
            d.poll_interval_ms,
            "poll_interval_ms",
            "a number of milliseconds"
        );
        set!(d.lease_ms, "lease_ms", "a number of milliseconds");
        set!(
            d.dead_letter_ttl_days,
            "dead_letter_ttl_days",
            "a number of days"
        );
        set!(d.retention_days, "retention_days", "a number of days");
        set!(
            d.purge_interval_ms,
            "purge_interval_ms",
            "a number of milliseconds"
        );
        set!(
            d.health.breaker.failures,
            "breaker_failures",
            "a number of failures (0 turns breakers off)"
        );
        set!(
            d.health.breaker.cooldown_ms,
            "breaker_cooldown_ms",
            "a number of milliseconds"
        );
        set!(
            d.health.breaker.max_cooldown_ms,
            "breaker_max_cooldown_ms",
            "a number of milliseconds"
        );
        set!(
            d.health.degraded_rate,
            "alert_failure_rate",
            "a fraction like 0.10"
        );
        set!(
            d.health.window_ms,
            "alert_window_ms",
            "a number of milliseconds"
        );
        set!(
            d.health.min_attempts,
            "alert_min_attempts",
            "a number of attempts"
        );
        if let Some(hours) =
            self.get::<u32>("disable_after_hours", "a number of hours (0: never)")?
        {
            d.health.disable_after_ms = i64::from(hours) * 3_600_000;
        }
        set!(c.listen, "listen", "an address like 127.0.0.1:8000");
        set!(c.data_dir, "data_dir", "a path");
        set!(
            c.allow_private_targets,
            "allow_private_targets",
            "true or false"
        );
        set!(c.resolve, "resolve", "a list like host=127.0.0.1,other=::1");
        set!(
            c.max_payload_bytes,
            "max_payload_bytes",
            "a number of bytes"
        );
        set!(c.max_result_bytes, "max_result_bytes", "a number of bytes");
        set!(c.db_pool_size, "db_pool_size", "a positive integer");
        set!(c.db_timeout_ms, "db_timeout_ms", "a number of milliseconds");
        c.database_url = self.get("database_url", "a URL")?;
        c.database_ca_file = self.get("database_ca_file", "a path")?;
        c.admin_token = self.get("admin_token", "a token")?;
        c.url_allowlist = self.get("url_allowlist", "a regular expression")?;
        set!(c.blobs.blob_store, "blob_store", "local or s3");
        c.blobs.s3_endpoint = self.get("s3_endpoint", "a URL")?;
        set!(c.blobs.s3_region, "s3_region", "a region name");
        c.blobs.s3_bucket = self.get("s3_bucket", "a bucket name")?;
        c.blobs.s3_access_key_id = self.get("s3_access_key_id", "a key id")?;
        c.blobs.s3_secret_access_key = self.get("s3_secret_access_key", "a secret key")?;
        set!(c.blobs.s3_allow_http, "s3_allow_http", "true or false");
        set!(
            c.blobs.offload_threshold_bytes,
            "offload_threshold_bytes",
            "a number of bytes"
        );
        set!(
            c.blobs.blob_url_ttl_secs,
            "blob_url_ttl_secs",
            "a number of seconds"
        );
        c.public_url = self.get("public_url", "a URL")?;
        c.metrics_listen = self.get("metrics_listen", "an address like 127.0.0.1:8001")?;
        c.otlp_endpoint = self.get("otlp_endpoint", "a URL like http://127.0.0.1:4318")?;
        c.tenant_publish_rate_per_s =
            self.get("tenant_publish_rate_per_s", "a number of events a second")?;
        c.tenant_publish_burst = self.get("tenant_publish_burst", "a number of events")?;
        c.node_name = self.get("node_name", "a name")?;
        if let Some(declared) = self.file.and_then(|f| f.get("routes")) {
            let fail = |message: &str| ConfigError {
                setting: "routes".into(),
                source_name: "herald.toml".into(),
                message: message.into(),
            };
            let items = declared
                .as_array()
                .ok_or_else(|| fail("must be an array of [[routes]] tables"))?;
            for item in items {
                c.routes.push(
                    item.as_table()
                        .cloned()
                        .ok_or_else(|| fail("every [[routes]] entry must be a table"))?,
                );
            }
        }
        if let Some((value, source_name)) = self.raw("role") {
            c.role = value.parse().map_err(|message| ConfigError {
                setting: "role".into(),
                source_name,
                message,
            })?;
        }
        self.check(&c)?;
        Ok(c)
    }

    fn check(&self, c: &Config) -> Result<(), ConfigError> {
        let fail = |key: &str, message: &str| {
            let source_name = self
                .raw(key)
                .map(|(_, s)| s)
                .unwrap_or_else(|| "default".into());
            Err(ConfigError {
                setting: key.into(),
                source_name,
                message: message.into(),
            })
        };
        if c.delivery.concurrency == 0 {
            return fail("concurrency", "must be at least 1");
        }
        if c.delivery.default_max_in_flight == 0 {
            return fail("default_max_in_flight", "must be at least 1");
        }
        let health = &c.delivery.health;
        if health.breaker.cooldown_ms < 1 {
            return fail("breaker_cooldown_ms", "must be at least 1");
        }
        if health.breaker.max_cooldown_ms < health.breaker.cooldown_ms {
            return fail(
                "breaker_max_cooldown_ms",
                "must be at least breaker_cooldown_ms",
            );
        }
        if !(health.degraded_rate >= 0.0 && health.degraded_rate.is_finite()) {
            return fail(
                "alert_failure_rate",
                "must be a fraction from 0 (above 1: never degraded)",
            );
        }
        if health.window_ms < 1_000 {
            return fail("alert_window_ms", "must be at least 1000");
        }
        if c.delivery.default_timeout_ms == 0 || c.delivery.default_timeout_ms > 300_000 {
            return fail("default_timeout_ms", "must be between 1 and 300000");
        }
        if c.db_pool_size == 0 {
            return fail("db_pool_size", "must be at least 1");
        }
        if c.db_timeout_ms < 100 {
            return fail("db_timeout_ms", "must be at least 100");
        }
        if c.max_payload_bytes < 1024 {
            return fail("max_payload_bytes", "must be at least 1024");
        }
        if c.max_result_bytes < c.max_payload_bytes {
            return fail(
                "max_result_bytes",
                "must be at least max_payload_bytes (a result is reported in one request)",
            );
        }
        if c.tenant_publish_rate_per_s == Some(0) {
            return fail(
                "tenant_publish_rate_per_s",
                "must be at least 1 (leave it unset for no limit)",
            );
        }
        if c.tenant_publish_burst == Some(0) {
            return fail("tenant_publish_burst", "must be at least 1");
        }
        if let Some(endpoint) = &c.otlp_endpoint {
            let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
            if !scheme_ok || endpoint.parse::<hyper::Uri>().is_err() {
                return fail(
                    "otlp_endpoint",
                    "must be an http:// or https:// URL (the collector's base, e.g. http://127.0.0.1:4318)",
                );
            }
        }
        if let Some(pattern) = &c.url_allowlist {
            if let Err(e) = herald_core::url_policy::UrlPolicy::new(false, Some(pattern)) {
                return fail(
                    "url_allowlist",
                    &format!("not a valid regular expression: {e}"),
                );
            }
        }
        if let Some(url) = &c.database_url {
            if !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
            {
                return fail(
                    "database_url",
                    "must start with postgres://, postgresql:// or sqlite:",
                );
            }
        }
        if matches!(&c.admin_token, Some(t) if t.len() < 16) {
            return fail("admin_token", "must be at least 16 characters");
        }
        if let Err((key, message)) = crate::blobs::check_settings(c) {
            return fail(key, &message);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

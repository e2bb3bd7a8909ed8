//! Reading the layers in order (flags, environment, file) and resolving them into a [`Config`].

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use super::{Config, ConfigError};

/// Parse the config file at `path`.
pub(super) fn read_toml(path: &Path) -> Result<toml::Table, ConfigError> {
    let err = |message: String| ConfigError {
        setting: "config file".into(),
        source_name: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    text.parse::<toml::Table>().map_err(|e| err(e.to_string()))
}

/// The sources of settings, first match wins: flags, then `HERALD_*` variables, then `herald.toml`.
pub(super) struct Layers<'a> {
    pub(super) flags: &'a HashMap<&'static str, String>,
    pub(super) env: &'a HashMap<String, String>,
    pub(super) file: Option<&'a toml::Table>,
}

impl Layers<'_> {
    /// The raw value of `key` and where it came from, from the first layer that has it.
    pub(super) fn raw(&self, key: &str) -> Option<(String, String)> {
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

    /// Every setting from the first layer that has it, checked.
    pub(super) fn resolve(&self) -> Result<Config, ConfigError> {
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
}

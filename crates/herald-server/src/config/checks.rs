//! Checks of resolved settings that a value's type alone cannot express, each naming its setting.

use super::layers::Layers;
use super::{Config, ConfigError};

impl Layers<'_> {
    /// Refuse values no node can run with, naming the setting and where its value came from.
    pub(super) fn check(&self, c: &Config) -> Result<(), ConfigError> {
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

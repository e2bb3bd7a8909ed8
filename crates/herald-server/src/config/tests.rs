use super::*;

fn layers<'a>(
    flags: &'a HashMap<&'static str, String>,
    env: &'a HashMap<String, String>,
    file: Option<&'a toml::Table>,
) -> Layers<'a> {
    Layers { flags, env, file }
}

#[test]
fn flags_beat_env_beat_file() {
    let flags = HashMap::from([("listen", "127.0.0.1:1".to_string())]);
    let env = HashMap::from([
        ("HERALD_LISTEN".to_string(), "127.0.0.1:2".to_string()),
        ("HERALD_CONCURRENCY".to_string(), "7".to_string()),
    ]);
    let file: toml::Table = "listen = '127.0.0.1:3'\nconcurrency = 9\nretention_days = 5"
        .parse()
        .unwrap();
    let c = layers(&flags, &env, Some(&file)).resolve().unwrap();
    assert_eq!(c.listen.port(), 1);
    assert_eq!(c.delivery.concurrency, 7);
    assert_eq!(c.delivery.retention_days, 5);
}

#[test]
fn errors_name_the_setting_and_source() {
    let flags = HashMap::new();
    let env = HashMap::from([("HERALD_LISTEN".to_string(), "nowhere".to_string())]);
    let err = layers(&flags, &env, None).resolve().unwrap_err();
    assert_eq!(err.setting, "listen");
    assert_eq!(err.source_name, "HERALD_LISTEN");
    let env = HashMap::from([("HERALD_URL_ALLOWLIST".to_string(), "(".to_string())]);
    let err = layers(&flags, &env, None).resolve().unwrap_err();
    assert!(err.to_string().contains("url_allowlist"), "{err}");
    let env = HashMap::from([("HERALD_ROLE".to_string(), "boss".to_string())]);
    assert_eq!(
        layers(&flags, &env, None).resolve().unwrap_err().setting,
        "role"
    );
}

#[test]
fn defaults_match_the_spec() {
    let (flags, env) = (HashMap::new(), HashMap::new());
    let c = layers(&flags, &env, None).resolve().unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8000");
    assert_eq!(c.data_dir, PathBuf::from("./herald-data"));
    assert_eq!(c.max_payload_bytes, 1024 * 1024);
    assert!(!c.allow_private_targets);
    assert_eq!(c.delivery.dead_letter_ttl_days, 30);
}

#[test]
fn breaker_alert_and_trace_settings_are_read_and_checked() {
    let flags = HashMap::new();
    let env = HashMap::from([
        ("HERALD_BREAKER_FAILURES".to_string(), "3".to_string()),
        ("HERALD_DISABLE_AFTER_HOURS".to_string(), "2".to_string()),
        ("HERALD_ALERT_FAILURE_RATE".to_string(), "0.25".to_string()),
        (
            "HERALD_OTLP_ENDPOINT".to_string(),
            "http://127.0.0.1:4318".to_string(),
        ),
    ]);
    let c = layers(&flags, &env, None).resolve().unwrap();
    assert_eq!(c.delivery.health.breaker.failures, 3);
    assert_eq!(c.delivery.health.disable_after_ms, 2 * 3_600_000);
    assert_eq!(c.delivery.health.degraded_rate, 0.25);
    assert_eq!(c.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4318"));
    for (key, value, setting) in [
        ("HERALD_BREAKER_COOLDOWN_MS", "0", "breaker_cooldown_ms"),
        (
            "HERALD_BREAKER_MAX_COOLDOWN_MS",
            "10",
            "breaker_max_cooldown_ms",
        ),
        ("HERALD_ALERT_FAILURE_RATE", "-1", "alert_failure_rate"),
        ("HERALD_OTLP_ENDPOINT", "collector:4318", "otlp_endpoint"),
        (
            "HERALD_TENANT_PUBLISH_RATE_PER_S",
            "0",
            "tenant_publish_rate_per_s",
        ),
        ("HERALD_TENANT_PUBLISH_BURST", "0", "tenant_publish_burst"),
    ] {
        let env = HashMap::from([(key.to_string(), value.to_string())]);
        let err = layers(&flags, &env, None).resolve().unwrap_err();
        assert_eq!(err.setting, setting, "{err}");
    }
}

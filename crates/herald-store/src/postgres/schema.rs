//! Embedded migrations for the PostgreSQL store. Several nodes may start at once: migrations run under a
//! session advisory lock, so exactly one node applies each.

use deadpool_postgres::Object;

use super::pg_error;
use crate::error::StoreResult;

/// Advisory lock key guarding migrations.
const MIGRATION_LOCK: i64 = 0x4865_7261_6c64_4d31;

/// `(version, SQL)`; append only, never edit a released migration.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, INITIAL),
    (2, JOBS),
    (3, crate::sql::TOKENS_MIGRATION),
    (4, crate::sql::KEY_DUE_MIGRATION),
    (5, crate::sql::DISPATCH_KEYS_MIGRATION),
    (6, crate::sql::TRACE_MIGRATION),
    (7, crate::sql::JOBS_BY_TENANT_MIGRATION),
    (8, crate::stats::STATS_MIGRATION),
    (9, crate::sql::PACING_MIGRATION),
];

const JOBS: &str = r#"
ALTER TABLE deliveries ADD COLUMN auth TEXT;

CREATE TABLE routes (
    tenant_id     TEXT NOT NULL,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    url           TEXT NOT NULL,
    timeout_ms    BIGINT NOT NULL,
    secret        TEXT NOT NULL,
    auth          TEXT,
    retry_policy  TEXT NOT NULL,
    created_ms    BIGINT NOT NULL,
    updated_ms    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    route             TEXT NOT NULL,
    status            TEXT NOT NULL,
    progress          TEXT,
    payload           TEXT,
    result            TEXT,
    error             TEXT,
    result_blob       TEXT,
    webhook_url       TEXT,
    progress_reports  BOOLEAN NOT NULL,
    correlation_id    TEXT NOT NULL,
    waiter_until_ms   BIGINT,
    deadline_ms       BIGINT,
    created_ms        BIGINT NOT NULL,
    updated_ms        BIGINT NOT NULL
);
CREATE INDEX jobs_overdue ON jobs (deadline_ms) WHERE deadline_ms IS NOT NULL AND status IN ('accepted', 'running');
CREATE INDEX jobs_finished ON jobs (updated_ms) WHERE status IN ('succeeded', 'failed', 'cancelled');
"#;

const INITIAL: &str = r#"
CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    token_sha256  TEXT UNIQUE,
    created_ms    BIGINT NOT NULL
);

CREATE TABLE endpoints (
    id                          TEXT PRIMARY KEY,
    tenant_id                   TEXT NOT NULL,
    url                         TEXT NOT NULL,
    event_types                 TEXT NOT NULL,
    secret                      TEXT NOT NULL,
    previous_secret             TEXT,
    previous_secret_expires_ms  BIGINT,
    headers                     TEXT NOT NULL,
    retry_policy                TEXT NOT NULL,
    timeout_ms                  BIGINT NOT NULL,
    rate_limit_per_s            BIGINT,
    max_in_flight               BIGINT NOT NULL,
    disabled                    BOOLEAN NOT NULL,
    description                 TEXT,
    metadata                    TEXT NOT NULL,
    created_ms                  BIGINT NOT NULL,
    updated_ms                  BIGINT NOT NULL
);
CREATE INDEX endpoints_by_tenant ON endpoints (tenant_id, id);

CREATE TABLE events (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    idempotency_key  TEXT,
    correlation_id   TEXT NOT NULL,
    created_ms       BIGINT NOT NULL
);
CREATE INDEX events_by_tenant_time ON events (tenant_id, created_ms);

CREATE TABLE idempotency_keys (
    tenant_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- due_ms: when a worker may claim the row (next attempt, or lease expiry while in_progress); NULL once final.
CREATE TABLE deliveries (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    event_id          TEXT NOT NULL,
    endpoint_id       TEXT,
    dispatch_key      TEXT NOT NULL,
    url               TEXT NOT NULL,
    secret            TEXT,
    headers           TEXT,
    retry_policy      TEXT,
    timeout_ms        BIGINT,
    status            TEXT NOT NULL,
    attempt_count     BIGINT NOT NULL DEFAULT 0,
    count_4xx         BIGINT NOT NULL DEFAULT 0,
    cycle_base        BIGINT NOT NULL DEFAULT 0,
    cycle_started_ms  BIGINT NOT NULL,
    due_ms            BIGINT,
    lease_owner       TEXT,
    last_status_code  BIGINT,
    last_error        TEXT,
    correlation_id    TEXT NOT NULL,
    reference_id      TEXT,
    created_ms        BIGINT NOT NULL,
    updated_ms        BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (due_ms) WHERE due_ms IS NOT NULL;
CREATE INDEX deliveries_in_flight ON deliveries (dispatch_key) WHERE status = 'in_progress';
CREATE INDEX deliveries_by_tenant ON deliveries (tenant_id, id);
CREATE INDEX deliveries_by_status ON deliveries (tenant_id, status, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id);
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, id) WHERE endpoint_id IS NOT NULL;
CREATE INDEX deliveries_by_reference ON deliveries (tenant_id, reference_id) WHERE reference_id IS NOT NULL;
CREATE INDEX deliveries_by_correlation ON deliveries (tenant_id, correlation_id);
CREATE INDEX deliveries_finished ON deliveries (status, updated_ms) WHERE due_ms IS NULL;

CREATE TABLE attempts (
    delivery_id    TEXT NOT NULL,
    number         BIGINT NOT NULL,
    started_ms     BIGINT NOT NULL,
    duration_ms    BIGINT NOT NULL,
    status_code    BIGINT,
    error          TEXT,
    response_body  TEXT,
    PRIMARY KEY (delivery_id, number)
);
"#;

/// Apply every migration newer than the database's version; returns how many ran.
pub async fn migrate(client: &mut Object, now_ms: i64) -> StoreResult<usize> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    let result = apply(client, now_ms).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error);
    let applied = result?;
    unlocked?;
    Ok(applied)
}

async fn apply(client: &mut Object, now_ms: i64) -> StoreResult<usize> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
        )
        .await
        .map_err(pg_error)?;
    let current: i64 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    let mut applied = 0;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.batch_execute(sql).await.map_err(pg_error)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)",
            &[version, &now_ms],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        applied += 1;
    }
    client
        .execute(
            "INSERT INTO tenants (id, token_sha256, created_ms) VALUES ('default', NULL, $1) ON CONFLICT DO NOTHING",
            &[&now_ms],
        )
        .await
        .map_err(pg_error)?;
    Ok(applied)
}

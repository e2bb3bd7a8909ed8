//! Embedded migrations for the SQLite store, applied in order at start-up.

use rusqlite::Connection;

use crate::error::StoreResult;

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
    timeout_ms    INTEGER NOT NULL,
    secret        TEXT NOT NULL,
    auth          TEXT,
    retry_policy  TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
) WITHOUT ROWID;

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
    progress_reports  INTEGER NOT NULL,
    correlation_id    TEXT NOT NULL,
    waiter_until_ms   INTEGER,
    deadline_ms       INTEGER,
    created_ms        INTEGER NOT NULL,
    updated_ms        INTEGER NOT NULL
);
CREATE INDEX jobs_overdue ON jobs (deadline_ms) WHERE deadline_ms IS NOT NULL AND status IN ('accepted', 'running');
CREATE INDEX jobs_finished ON jobs (updated_ms) WHERE status IN ('succeeded', 'failed', 'cancelled');
"#;

const INITIAL: &str = r#"
CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    token_sha256  TEXT UNIQUE,
    created_ms    INTEGER NOT NULL
);

CREATE TABLE endpoints (
    id                          TEXT PRIMARY KEY,
    tenant_id                   TEXT NOT NULL,
    url                         TEXT NOT NULL,
    event_types                 TEXT NOT NULL,
    secret                      TEXT NOT NULL,
    previous_secret             TEXT,
    previous_secret_expires_ms  INTEGER,
    headers                     TEXT NOT NULL,
    retry_policy                TEXT NOT NULL,
    timeout_ms                  INTEGER NOT NULL,
    rate_limit_per_s            INTEGER,
    max_in_flight               INTEGER NOT NULL,
    disabled                    INTEGER NOT NULL,
    description                 TEXT,
    metadata                    TEXT NOT NULL,
    created_ms                  INTEGER NOT NULL,
    updated_ms                  INTEGER NOT NULL
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
    created_ms       INTEGER NOT NULL
);
CREATE INDEX events_by_tenant_time ON events (tenant_id, created_ms);

CREATE TABLE idempotency_keys (
    tenant_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
) WITHOUT ROWID;

-- due_ms is "when may a worker claim this": the next attempt for pending/retrying deliveries, the lease expiry
-- for in_progress ones, NULL once final. One partial index on it serves claims, wake-ups and crash recovery.
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
    timeout_ms        INTEGER,
    status            TEXT NOT NULL,
    attempt_count     INTEGER NOT NULL DEFAULT 0,
    count_4xx         INTEGER NOT NULL DEFAULT 0,
    cycle_base        INTEGER NOT NULL DEFAULT 0,
    cycle_started_ms  INTEGER NOT NULL,
    due_ms            INTEGER,
    lease_owner       TEXT,
    last_status_code  INTEGER,
    last_error        TEXT,
    correlation_id    TEXT NOT NULL,
    reference_id      TEXT,
    created_ms        INTEGER NOT NULL,
    updated_ms        INTEGER NOT NULL
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
    number         INTEGER NOT NULL,
    started_ms     INTEGER NOT NULL,
    duration_ms    INTEGER NOT NULL,
    status_code    INTEGER,
    error          TEXT,
    response_body  TEXT,
    PRIMARY KEY (delivery_id, number)
) WITHOUT ROWID;
"#;

/// Apply every migration newer than the database's version, in one transaction each. Returns how many ran.
pub fn migrate(conn: &mut Connection, now_ms: i64) -> StoreResult<usize> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)",
    )?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let mut applied = 0;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, ?2)",
            (version, now_ms),
        )?;
        tx.commit()?;
        applied += 1;
    }
    conn.execute(
        "INSERT OR IGNORE INTO tenants (id, token_sha256, created_ms) VALUES ('default', NULL, ?1)",
        [now_ms],
    )?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_token_from_before_migration_3_keeps_working() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)",
        )
        .unwrap();
        for (version, sql) in &MIGRATIONS[..2] {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, 0)",
                [version],
            )
            .unwrap();
        }
        let hash = "ab".repeat(32);
        conn.execute(
            "INSERT INTO tenants (id, token_sha256, created_ms) VALUES ('acme', ?1, 5)",
            [&hash],
        )
        .unwrap();
        assert_eq!(migrate(&mut conn, 10).unwrap(), MIGRATIONS.len() - 2);
        let tenant = crate::sqlite::tenants::tenant_by_token(&conn, &hash).unwrap();
        assert_eq!(tenant.map(|t| t.id).as_deref(), Some("acme"));
        let tokens = crate::sqlite::tenants::list_tokens(&conn, "acme").unwrap();
        assert_eq!(tokens[0].id, crate::model::TokenRecord::id_for(&hash));
    }
}

//! SQL text both stores run as written. Parameters are `$1`, `$2`, …: PostgreSQL's positional form, which
//! SQLite reads as named parameters numbered in order of first appearance. So that one text means the same
//! to both, every text here introduces its parameters in ascending order (a test checks it).

/// Columns of an endpoint record, in the order both stores read them.
pub const ENDPOINT_COLUMNS: &str = "id, tenant_id, url, event_types, secret, previous_secret, \
    previous_secret_expires_ms, headers, retry_policy, timeout_ms, rate_limit_per_s, max_in_flight, disabled, \
    description, metadata, created_ms, updated_ms";

/// Columns of a delivery record, in the order both stores read them.
pub const DELIVERY_COLUMNS: &str =
    "id, tenant_id, event_id, endpoint_id, url, status, attempt_count, due_ms, \
    last_status_code, last_error, correlation_id, reference_id, created_ms, updated_ms";

/// Columns of an event record, in the order both stores read them.
pub const EVENT_COLUMNS: &str =
    "id, tenant_id, kind, event_type, payload, idempotency_key, correlation_id, created_ms, traceparent";

/// Columns of an attempt record, in the order both stores read them.
pub const ATTEMPT_COLUMNS: &str =
    "number, started_ms, duration_ms, status_code, error, response_body";

/// Columns of a job record, in the order both stores read them.
pub const JOB_COLUMNS: &str = "id, tenant_id, route, status, progress, payload, result, error, result_blob, \
    webhook_url, progress_reports, correlation_id, waiter_until_ms, deadline_ms, created_ms, updated_ms, traceparent";

/// Columns of a route record, in the order both stores read them.
pub const ROUTE_COLUMNS: &str =
    "tenant_id, name, kind, url, timeout_ms, secret, auth, retry_policy, created_ms, updated_ms";

/// Fail at `$2`, with the reason `$1`, delivery `$3`: a claim could not read its stored settings.
pub const QUARANTINE_DELIVERY: &str = "UPDATE deliveries SET status = 'failed', due_ms = NULL, \
    lease_owner = NULL, last_error = $1, updated_ms = $2 WHERE id = $3";

/// The due time of the oldest delivery that is due at `$1` and not leased: the delivery lag.
pub const OLDEST_DUE: &str = "SELECT MIN(due_ms) FROM deliveries \
    WHERE due_ms IS NOT NULL AND due_ms <= $1 AND status <> 'in_progress'";

/// Jobs per status.
pub const COUNT_JOBS: &str = "SELECT status, COUNT(*) FROM jobs GROUP BY status ORDER BY status";

/// Give back every lease held by exactly `$2`, due at `$1`: the rows go back to `pending` (never attempted)
/// or `retrying`.
pub const RELEASE_OWNER: &str = "UPDATE deliveries SET \
    status = CASE WHEN attempt_count > 0 THEN 'retrying' ELSE 'pending' END, \
    due_ms = $1, lease_owner = NULL, updated_ms = $1 \
    WHERE status = 'in_progress' AND lease_owner = $2";

/// Operator cancel at `$1` of delivery `$2` of tenant `$3`, only while it is unfinished: a result recorded
/// meanwhile (`delivered`, `failed`) is never overwritten.
pub const CANCEL_DELIVERY: &str = "UPDATE deliveries SET status = 'cancelled', due_ms = NULL, \
    lease_owner = NULL, updated_ms = $1 \
    WHERE id = $2 AND tenant_id = $3 AND status IN ('pending', 'retrying', 'in_progress')";

/// Operator retry, due at `$1` with a fresh retry cycle, of delivery `$2` of tenant `$3`, unless an attempt is
/// in flight.
pub const RETRY_DELIVERY: &str = "UPDATE deliveries SET status = 'pending', due_ms = $1, \
    lease_owner = NULL, count_4xx = 0, cycle_base = attempt_count, cycle_started_ms = $1, updated_ms = $1 \
    WHERE id = $2 AND tenant_id = $3 AND status <> 'in_progress'";

/// The mutable fields (`$1`…`$11`) of endpoint `$12` of tenant `$13`, secrets excepted: a rotation committed meanwhile is
/// never undone by an update made from an older read.
pub const UPDATE_ENDPOINT: &str = "UPDATE endpoints SET url = $1, event_types = $2, headers = $3, \
    retry_policy = $4, timeout_ms = $5, rate_limit_per_s = $6, max_in_flight = $7, disabled = $8, \
    description = $9, metadata = $10, updated_ms = $11 WHERE id = $12 AND tenant_id = $13";

/// Replace the signing secret with `$1` at `$2`, of endpoint `$3` of tenant `$4`; the previous one is kept.
pub const SET_ENDPOINT_SECRET: &str = "UPDATE endpoints SET secret = $1, updated_ms = $2 \
    WHERE id = $3 AND tenant_id = $4";

/// Rotate: the current secret becomes the previous one (signing until `$1`) and `$2` the current one, at
/// `$3`, of endpoint `$4` of tenant `$5`, in one statement so two rotations cannot lose a secret.
pub const ROTATE_ENDPOINT_SECRET: &str = "UPDATE endpoints SET previous_secret = secret, \
    previous_secret_expires_ms = $1, secret = $2, updated_ms = $3 WHERE id = $4 AND tenant_id = $5";

/// Migration 4: the index that makes dispatch keys the unit of scheduling. The claim walks the distinct keys
/// on it and reads each key's due rows from it, oldest first.
pub const KEY_DUE_MIGRATION: &str =
    "CREATE INDEX deliveries_by_key_due ON deliveries (dispatch_key, due_ms) WHERE due_ms IS NOT NULL;";

/// What a claim reads of each dispatch key of `$keys` (a row source of `key` and `n`, read in `n`
/// order): its earliest due time (NULL if it has none), its endpoint's `max_in_flight` (NULL for direct
/// keys and deleted endpoints), its open breaker's probe time, its endpoint's `rate_limit_per_s` and its
/// pacing time.
macro_rules! key_due_columns {
    ($keys:literal) => {
        concat!(
            "SELECT w.key, (SELECT MIN(d.due_ms) FROM deliveries d WHERE d.dispatch_key = w.key \
               AND d.due_ms IS NOT NULL), \
             ep.max_in_flight, CASE WHEN dk.circuit = 'open' THEN dk.probe_ms END, ep.rate_limit_per_s, \
             kp.next_send_ms FROM ",
            $keys,
            " w LEFT JOIN endpoints ep ON ep.id = w.key LEFT JOIN dispatch_keys dk ON dk.key = w.key \
             LEFT JOIN key_pacing kp ON kp.key = w.key \
             WHERE w.key IS NOT NULL ORDER BY w.n"
        )
    };
}

/// The dispatch keys that have deliveries with a due time, in key order after `$1`, at most `$2` of them,
/// each with what [`key_due_columns`] reads. A loose index scan on `deliveries_by_key_due`: two index
/// probes per key, however many rows each key has.
pub const WALK_KEYS: &str = concat!(
    "WITH RECURSIVE walk(key, n) AS ( \
      SELECT (SELECT dispatch_key FROM deliveries WHERE due_ms IS NOT NULL AND dispatch_key > $1 \
              ORDER BY dispatch_key LIMIT 1), 1 \
      UNION ALL \
      SELECT (SELECT d.dispatch_key FROM deliveries d WHERE d.due_ms IS NOT NULL AND d.dispatch_key > walk.key \
              ORDER BY d.dispatch_key LIMIT 1), walk.n + 1 \
      FROM walk WHERE walk.key IS NOT NULL AND walk.n < $2) ",
    key_due_columns!("walk")
);

/// [`WALK_KEYS`]' columns for one given key, `$1`: how a claim reads a hinted key
/// ([`crate::ClaimRequest::hinted_keys`]). Its earliest due time is NULL if it has nothing scheduled.
pub const HINTED_KEY: &str = key_due_columns!("(SELECT $1 AS key, 1 AS n)");

/// How many deliveries are due at `$1`, counting at most `$2`. A claim whose walk reads keys with nothing
/// due asks it with `$2` one more than the rows it has taken: if no more are due, the keys it has not
/// visited have nothing due either, and it stops walking. Reads at most `$2` entries of
/// `deliveries_due`, however many keys have work that is not due.
pub const DUE_ROWS_UP_TO: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM deliveries \
    WHERE due_ms IS NOT NULL AND due_ms <= $1 ORDER BY due_ms LIMIT $2) due";

/// Migration 5: per-dispatch-key state, one row per endpoint that has been attempted: its circuit breaker
/// (`circuit` is `closed` or `open`; an open breaker past `probe_ms` is half-open), its failure-rate window
/// and whether it was announced degraded (0 or 1) or disabled for failing.
pub const DISPATCH_KEYS_MIGRATION: &str = "
CREATE TABLE dispatch_keys (
    key               TEXT PRIMARY KEY,
    failures          BIGINT NOT NULL,
    circuit           TEXT NOT NULL,
    opened_ms         BIGINT,
    probe_ms          BIGINT,
    cooldown_ms       BIGINT NOT NULL,
    failing_since_ms  BIGINT,
    last_error        TEXT,
    changed_ms        BIGINT,
    window_start_ms   BIGINT NOT NULL DEFAULT 0,
    window_attempts   BIGINT NOT NULL DEFAULT 0,
    window_failures   BIGINT NOT NULL DEFAULT 0,
    prev_attempts     BIGINT NOT NULL DEFAULT 0,
    prev_failures     BIGINT NOT NULL DEFAULT 0,
    degraded          BIGINT NOT NULL DEFAULT 0,
    disabled_ms       BIGINT,
    updated_ms        BIGINT NOT NULL
);
CREATE INDEX dispatch_keys_open ON dispatch_keys (probe_ms) WHERE circuit = 'open';
";

/// Migration 9: pacing, per paced dispatch key: when its next request is due if its requests went out
/// evenly at its endpoint's `rate_limit_per_s` (see `herald_core::pacing`). Apart from `dispatch_keys`
/// because only claims write it, under the claim lock, while recorders lock `dispatch_keys` rows before
/// they claim: one table written in both orders could deadlock.
pub const PACING_MIGRATION: &str =
    "CREATE TABLE key_pacing (key TEXT PRIMARY KEY, next_send_ms BIGINT NOT NULL);";

/// Store key `$1`'s pacing time `$2`.
pub const SET_NEXT_SEND: &str = "INSERT INTO key_pacing (key, next_send_ms) VALUES ($1, $2) \
    ON CONFLICT (key) DO UPDATE SET next_send_ms = excluded.next_send_ms";

/// Migration 6: the W3C trace context of events and jobs.
pub const TRACE_MIGRATION: &str = "
ALTER TABLE events ADD COLUMN traceparent TEXT;
ALTER TABLE jobs ADD COLUMN traceparent TEXT;
";

/// Migration 7: listing a tenant's jobs newest first.
pub const JOBS_BY_TENANT_MIGRATION: &str = "CREATE INDEX jobs_by_tenant ON jobs (tenant_id, id);";

/// A page of tenant `$1`'s jobs, newest first: status `$2` and route `$3` when not NULL, ids before `$4`
/// when not NULL (the cursor), at most `$5` rows.
pub fn list_jobs() -> String {
    format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 \
         AND (CAST($2 AS TEXT) IS NULL OR status = $2) AND (CAST($3 AS TEXT) IS NULL OR route = $3) \
         AND (CAST($4 AS TEXT) IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
    )
}

/// Columns of a dispatch key's state, in the order both stores read them.
pub const DISPATCH_KEY_COLUMNS: &str = "key, failures, circuit, opened_ms, probe_ms, cooldown_ms, \
    failing_since_ms, last_error, changed_ms, window_start_ms, window_attempts, window_failures, prev_attempts, \
    prev_failures, degraded, disabled_ms";

/// The head of every write of dispatch key state: the table and its columns.
macro_rules! dispatch_key_insert {
    () => {
        "INSERT INTO dispatch_keys (key, failures, circuit, opened_ms, probe_ms, cooldown_ms, failing_since_ms, \
         last_error, changed_ms, window_start_ms, window_attempts, window_failures, prev_attempts, prev_failures, \
         degraded, disabled_ms, updated_ms)"
    };
}

/// The tail of every write of dispatch key state: an existing row takes the new values.
macro_rules! dispatch_key_on_conflict {
    () => {
        "ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, circuit = excluded.circuit, \
         opened_ms = excluded.opened_ms, probe_ms = excluded.probe_ms, cooldown_ms = excluded.cooldown_ms, \
         failing_since_ms = excluded.failing_since_ms, last_error = excluded.last_error, \
         changed_ms = excluded.changed_ms, window_start_ms = excluded.window_start_ms, \
         window_attempts = excluded.window_attempts, window_failures = excluded.window_failures, \
         prev_attempts = excluded.prev_attempts, prev_failures = excluded.prev_failures, \
         degraded = excluded.degraded, disabled_ms = excluded.disabled_ms, updated_ms = excluded.updated_ms"
    };
}

/// Write one dispatch key's state: the columns of [`DISPATCH_KEY_COLUMNS`] (`$1`…`$16`), updated at `$17`.
pub const UPSERT_DISPATCH_KEY: &str = concat!(
    dispatch_key_insert!(),
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ",
    dispatch_key_on_conflict!()
);

/// Write many dispatch keys' state, each column an array (`$1`…`$17`, as in [`UPSERT_DISPATCH_KEY`]).
pub const UPSERT_DISPATCH_KEYS: &str = concat!(
    dispatch_key_insert!(),
    " SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], \
     $7::bigint[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], \
     $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[]) ",
    dispatch_key_on_conflict!()
);

/// Disable endpoint `$3` (`$1` = true) at `$2`: it has only failed for too long.
pub const DISABLE_FAILING_ENDPOINT: &str =
    "UPDATE endpoints SET disabled = $1, updated_ms = $2 WHERE id = $3 AND disabled <> $1";

/// Forget endpoint `$1`'s health when tenant `$2` enables it again (`$3` = true: it is disabled now), so
/// that it starts afresh with a closed breaker.
pub const RESET_ON_ENABLE: &str = "DELETE FROM dispatch_keys WHERE key = $1 AND EXISTS \
    (SELECT 1 FROM endpoints WHERE id = $1 AND tenant_id = $2 AND disabled = $3)";

/// The event of delivery `$1`, for `delivery.failed`.
pub const DELIVERY_EVENT: &str =
    "SELECT d.event_id, e.event_type FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.id = $1";

/// Breakers not closed at `$1`: open (before their probe) and half-open, across tenants.
pub const CIRCUIT_COUNTS: &str = "SELECT COALESCE(SUM(CASE WHEN probe_ms > $1 THEN 1 ELSE 0 END), 0), \
    COALESCE(SUM(CASE WHEN probe_ms > $1 THEN 0 ELSE 1 END), 0) FROM dispatch_keys WHERE circuit = 'open'";

/// Most failed deliveries one recovery sends again.
pub const RECOVER_LIMIT: i64 = 100_000;

/// Recover, at `$1`, the failed deliveries of endpoint `$2` of tenant `$3` created since `$4`, at most `$5`:
/// each is due now with a fresh retry cycle, as an operator retry would make it.
pub const RECOVER_ENDPOINT: &str = "UPDATE deliveries SET status = 'pending', due_ms = $1, lease_owner = NULL, \
    count_4xx = 0, cycle_base = attempt_count, cycle_started_ms = $1, updated_ms = $1 \
    WHERE id IN (SELECT id FROM deliveries WHERE endpoint_id = $2 AND tenant_id = $3 AND status = 'failed' \
    AND created_ms >= $4 ORDER BY id LIMIT $5)";

/// Forget endpoint `$1`'s breaker (deleted or re-enabled).
pub const FORGET_DISPATCH_KEY: &str = "DELETE FROM dispatch_keys WHERE key = $1";

/// Forget deleted endpoint `$1`'s pacing time.
pub const FORGET_KEY_PACING: &str = "DELETE FROM key_pacing WHERE key = $1";

/// Migration 3 of both stores: API tokens in a table of their own (several per tenant, revocable). A
/// tenant's existing token moves there; its id is derived from the hash, as for every token.
pub const TOKENS_MIGRATION: &str = "
CREATE TABLE tenant_tokens (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    token_sha256  TEXT NOT NULL UNIQUE,
    name          TEXT,
    created_ms    BIGINT NOT NULL,
    revoked_ms    BIGINT
);
CREATE INDEX tenant_tokens_by_tenant ON tenant_tokens (tenant_id, id);
INSERT INTO tenant_tokens (id, tenant_id, token_sha256, name, created_ms, revoked_ms)
    SELECT 'tok_' || substr(token_sha256, 1, 20), id, token_sha256, 'initial', created_ms, NULL
    FROM tenants WHERE token_sha256 IS NOT NULL;
";

/// The tenant an unrevoked token (hash `$1`) belongs to.
pub const TENANT_BY_TOKEN: &str = "SELECT t.id, t.created_ms FROM tenant_tokens k \
    JOIN tenants t ON t.id = k.tenant_id WHERE k.token_sha256 = $1 AND k.revoked_ms IS NULL";

/// A new token: id, tenant, hash, name, created at.
pub const INSERT_TOKEN: &str = "INSERT INTO tenant_tokens \
    (id, tenant_id, token_sha256, name, created_ms, revoked_ms) VALUES ($1, $2, $3, $4, $5, NULL)";

/// One tenant's tokens (`$1`), oldest first by id.
pub const LIST_TOKENS: &str = "SELECT id, tenant_id, token_sha256, name, created_ms, revoked_ms \
    FROM tenant_tokens WHERE tenant_id = $1 ORDER BY created_ms, id";

/// Token `$1` of tenant `$2`.
pub const GET_TOKEN: &str = "SELECT id, tenant_id, token_sha256, name, created_ms, revoked_ms \
    FROM tenant_tokens WHERE id = $1 AND tenant_id = $2";

/// Revoke at `$1` token `$2` of tenant `$3`, unless it already is.
pub const REVOKE_TOKEN: &str = "UPDATE tenant_tokens SET revoked_ms = $1 \
    WHERE id = $2 AND tenant_id = $3 AND revoked_ms IS NULL";

#[cfg(test)]
mod tests {
    /// Every shared text, for the parameter-order check.
    const ALL: &[&str] = &[
        super::RELEASE_OWNER,
        super::WALK_KEYS,
        super::HINTED_KEY,
        super::DUE_ROWS_UP_TO,
        super::OLDEST_DUE,
        super::QUARANTINE_DELIVERY,
        super::CANCEL_DELIVERY,
        super::RETRY_DELIVERY,
        super::UPDATE_ENDPOINT,
        super::SET_ENDPOINT_SECRET,
        super::ROTATE_ENDPOINT_SECRET,
        super::TENANT_BY_TOKEN,
        super::INSERT_TOKEN,
        super::LIST_TOKENS,
        super::GET_TOKEN,
        super::REVOKE_TOKEN,
        super::UPSERT_DISPATCH_KEY,
        super::UPSERT_DISPATCH_KEYS,
        super::DISABLE_FAILING_ENDPOINT,
        super::RESET_ON_ENABLE,
        super::DELIVERY_EVENT,
        super::CIRCUIT_COUNTS,
        super::FORGET_DISPATCH_KEY,
        super::FORGET_KEY_PACING,
        super::RECOVER_ENDPOINT,
        super::SET_NEXT_SEND,
    ];

    #[test]
    fn parameters_first_appear_in_ascending_order() {
        for text in ALL {
            let mut highest = 0u32;
            let mut rest = *text;
            while let Some(at) = rest.find('$') {
                rest = &rest[at + 1..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let n: u32 = digits.parse().expect("a parameter number after $");
                assert!(
                    n <= highest + 1,
                    "${n} comes before ${} in {text}",
                    highest + 1
                );
                highest = highest.max(n);
            }
        }
    }
}

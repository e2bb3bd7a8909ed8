//! The delivery engine's side of the store: leasing due work, recording attempts, releasing leases, purging.

use std::collections::HashMap;

use herald_core::envelope::event_envelope;
use herald_core::retry::RetryPolicy;
use rusqlite::{params, Connection, Row};

use crate::error::StoreResult;
use crate::model::*;

/// Candidate rows read per claimed slot: room to skip deliveries whose key fills up within the batch.
const SCAN_FACTOR: usize = 2;

/// Why a due delivery cannot be sent now.
enum Unroutable {
    /// Its endpoint is gone: the delivery is cancelled.
    Deleted,
    /// Its endpoint is disabled: the delivery is parked until the endpoint is enabled again.
    Disabled,
}

/// A due row with everything needed to send it, before the per-key budget is applied.
struct Candidate {
    claimed: ClaimedDelivery,
    unroutable: Option<Unroutable>,
}

/// Parks a delivery (no due time) while its endpoint is disabled; enabling the endpoint makes it due again.
const PARK: &str = "UPDATE deliveries SET \
    status = CASE WHEN attempt_count > 0 THEN 'retrying' ELSE 'pending' END, \
    due_ms = NULL, lease_owner = NULL, updated_ms = ?2 WHERE id = ?1";

const CANDIDATES: &str = "SELECT d.id, d.tenant_id, d.event_id, d.endpoint_id, d.dispatch_key, \
    COALESCE(ep.url, d.url), d.secret, d.headers, d.retry_policy, d.timeout_ms, \
    ep.id, ep.secret, ep.previous_secret, ep.previous_secret_expires_ms, ep.headers, ep.retry_policy, \
    ep.timeout_ms, ep.max_in_flight, ep.rate_limit_per_s, ep.disabled, \
    d.attempt_count, d.count_4xx, d.cycle_base, d.cycle_started_ms, d.correlation_id, \
    e.kind, e.event_type, e.payload, e.created_ms \
    FROM deliveries d JOIN events e ON e.id = d.event_id LEFT JOIN endpoints ep ON ep.id = d.endpoint_id \
    WHERE d.due_ms IS NOT NULL AND d.due_ms <= ?1 \
      AND d.dispatch_key NOT IN (SELECT value FROM json_each(?2)) \
    ORDER BY d.due_ms LIMIT ?3";

fn parse_json<T: serde::de::DeserializeOwned>(text: Option<String>) -> rusqlite::Result<Option<T>> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
    })
    .transpose()
}

fn candidate(row: &Row, now_ms: i64, default_max_in_flight: u32) -> rusqlite::Result<Candidate> {
    let endpoint_id: Option<String> = row.get(3)?;
    let endpoint_found: Option<String> = row.get(10)?;
    let disabled: Option<bool> = row.get(19)?;
    let unroutable = match (&endpoint_id, &endpoint_found) {
        (Some(_), None) => Some(Unroutable::Deleted),
        (Some(_), Some(_)) if disabled == Some(true) => Some(Unroutable::Disabled),
        _ => None,
    };
    let mut secrets = Vec::new();
    let headers: std::collections::BTreeMap<String, String>;
    let retry_policy: RetryPolicy;
    let timeout_ms: u32;
    if endpoint_found.is_some() {
        secrets.push(row.get::<_, String>(11)?);
        let previous: Option<String> = row.get(12)?;
        let previous_until: Option<i64> = row.get(13)?;
        if let (Some(previous), Some(until)) = (previous, previous_until) {
            if until > now_ms {
                secrets.push(previous);
            }
        }
        headers = parse_json(row.get(14)?)?.unwrap_or_default();
        retry_policy = parse_json(row.get(15)?)?.unwrap_or_default();
        timeout_ms = row.get(16)?;
    } else {
        secrets.extend(row.get::<_, Option<String>>(6)?);
        headers = parse_json(row.get(7)?)?.unwrap_or_default();
        retry_policy = parse_json(row.get(8)?)?.unwrap_or_default();
        timeout_ms = row.get::<_, Option<u32>>(9)?.unwrap_or(15_000);
    }
    let event_id: String = row.get(2)?;
    let kind: String = row.get(25)?;
    let payload: String = row.get(27)?;
    let body = if kind == EventKind::Direct.as_str() {
        payload
    } else {
        let event_type: String = row.get(26)?;
        event_envelope(&event_id, &event_type, row.get(28)?, &payload)
    };
    Ok(Candidate {
        claimed: ClaimedDelivery {
            id: row.get(0)?,
            tenant_id: row.get(1)?,
            event_id,
            endpoint_id,
            dispatch_key: row.get(4)?,
            url: row.get(5)?,
            body,
            secrets,
            headers: headers.into_iter().collect(),
            retry_policy,
            timeout_ms,
            max_in_flight: row
                .get::<_, Option<u32>>(17)?
                .unwrap_or(default_max_in_flight)
                .max(1),
            rate_limit_per_s: row.get(18)?,
            attempt_count: row.get(20)?,
            count_4xx: row.get(21)?,
            cycle_base: row.get(22)?,
            cycle_started_ms: row.get(23)?,
            correlation_id: row.get(24)?,
        },
        unroutable,
    })
}

pub fn claim_due(conn: &Connection, request: &ClaimRequest) -> StoreResult<Vec<ClaimedDelivery>> {
    if request.limit == 0 {
        return Ok(Vec::new());
    }
    let saturated = serde_json::to_string(&request.saturated)?;
    let scan = (request.limit * SCAN_FACTOR) as i64;
    let candidates: Vec<Candidate> = conn
        .prepare_cached(CANDIDATES)?
        .query_map(params![request.now_ms, saturated, scan], |row| {
            candidate(row, request.now_ms, request.default_max_in_flight)
        })?
        .collect::<Result<_, _>>()?;

    let mut taken: HashMap<&str, u32> = HashMap::new();
    let mut claimed = Vec::with_capacity(request.limit);
    let mut lease = conn.prepare_cached(
        "UPDATE deliveries SET status = 'in_progress', lease_owner = ?2, due_ms = ?3, updated_ms = ?4 WHERE id = ?1",
    )?;
    let mut drop_unroutable = conn.prepare_cached(
        "UPDATE deliveries SET status = 'cancelled', due_ms = NULL, lease_owner = NULL, last_error = ?2, \
         updated_ms = ?3 WHERE id = ?1",
    )?;
    let mut park = conn.prepare_cached(PARK)?;
    for candidate in &candidates {
        if claimed.len() == request.limit {
            break;
        }
        let c = &candidate.claimed;
        match candidate.unroutable {
            Some(Unroutable::Deleted) => {
                drop_unroutable.execute(params![c.id, "endpoint deleted", request.now_ms])?;
                continue;
            }
            Some(Unroutable::Disabled) => {
                park.execute(params![c.id, request.now_ms])?;
                continue;
            }
            None => {}
        }
        let already = request.in_flight.get(&c.dispatch_key).copied().unwrap_or(0);
        let used = taken.entry(c.dispatch_key.as_str()).or_insert(0);
        if already + *used >= c.max_in_flight {
            continue;
        }
        *used += 1;
        let lease_until = request.now_ms + i64::from(c.timeout_ms) + request.lease_ms;
        lease.execute(params![c.id, request.owner, lease_until, request.now_ms])?;
        claimed.push(c.clone());
    }
    Ok(claimed)
}

pub fn record_attempts(conn: &Connection, results: &[AttemptResult]) -> StoreResult<()> {
    // An attempt is logged unless another worker now holds the delivery's lease: then this result comes from
    // a lost lease, and that worker's own attempt is the one to keep.
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO attempts (delivery_id, number, started_ms, duration_ms, status_code, error, \
         response_body) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE NOT EXISTS \
         (SELECT 1 FROM deliveries WHERE id = ?1 AND status = 'in_progress' AND lease_owner <> ?8)",
    )?;
    let mut advance = conn.prepare_cached(
        "UPDATE deliveries SET status = ?3, attempt_count = ?4, count_4xx = count_4xx + ?5, due_ms = ?6, \
         lease_owner = NULL, last_status_code = ?7, last_error = ?8, updated_ms = ?9 \
         WHERE id = ?1 AND lease_owner = ?2 AND status = 'in_progress'",
    )?;
    for r in results {
        let a = &r.attempt;
        insert.execute(params![
            r.delivery_id,
            a.number,
            a.started_ms,
            a.duration_ms,
            a.status_code,
            a.error,
            a.response_body,
            r.owner
        ])?;
        let (status, due_ms) = match r.next {
            NextState::Delivered => ("delivered", None),
            NextState::RetryAt(at) => ("retrying", Some(at)),
            NextState::Failed => ("failed", None),
        };
        advance.execute(params![
            r.delivery_id,
            r.owner,
            status,
            a.number,
            r.was_4xx as i64,
            due_ms,
            a.status_code,
            a.error,
            r.now_ms
        ])?;
    }
    Ok(())
}

const RELEASE: &str = "UPDATE deliveries SET \
    status = CASE WHEN attempt_count > 0 THEN 'retrying' ELSE 'pending' END, \
    due_ms = ?1, lease_owner = NULL, updated_ms = ?1 WHERE status = 'in_progress'";

pub fn release_leases(
    conn: &Connection,
    owner: &str,
    ids: &[String],
    now_ms: i64,
) -> StoreResult<()> {
    let mut stmt = conn.prepare_cached(&format!("{RELEASE} AND id = ?2 AND lease_owner = ?3"))?;
    for id in ids {
        stmt.execute(params![now_ms, id, owner])?;
    }
    Ok(())
}

/// Only safe while no other process can hold leases: the SQLite store is single-process (lock file).
pub fn release_all_leases(conn: &Connection, now_ms: i64) -> StoreResult<usize> {
    Ok(conn.execute(RELEASE, [now_ms])?)
}

pub fn next_due_ms(conn: &Connection) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT MIN(due_ms) FROM deliveries WHERE due_ms IS NOT NULL")?
        .query_row([], |r| r.get(0))?)
}

pub fn purge_finished(
    conn: &Connection,
    failed_before_ms: i64,
    others_before_ms: i64,
    batch: usize,
) -> StoreResult<u64> {
    let ids: Vec<String> = conn
        .prepare_cached(
            "SELECT id FROM deliveries WHERE due_ms IS NULL AND status = 'failed' AND updated_ms < ?1 \
             UNION ALL \
             SELECT id FROM deliveries WHERE due_ms IS NULL AND status IN ('delivered', 'cancelled') \
             AND updated_ms < ?2 LIMIT ?3",
        )?
        .query_map(params![failed_before_ms, others_before_ms, batch as i64], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut del_attempts = conn.prepare_cached("DELETE FROM attempts WHERE delivery_id = ?1")?;
    let mut del_delivery = conn.prepare_cached("DELETE FROM deliveries WHERE id = ?1")?;
    for id in &ids {
        del_attempts.execute([id])?;
        del_delivery.execute([id])?;
    }
    Ok(ids.len() as u64)
}

pub fn stats(conn: &Connection, now_ms: i64) -> StoreResult<StoreStats> {
    let (due, in_flight, scheduled): (i64, i64, i64) = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(status <> 'in_progress' AND due_ms <= ?1), 0), \
             COALESCE(SUM(status = 'in_progress'), 0), COALESCE(SUM(status <> 'in_progress' AND due_ms > ?1), 0) \
             FROM deliveries WHERE due_ms IS NOT NULL",
        )?
        .query_row([now_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let failed: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM deliveries WHERE due_ms IS NULL AND status = 'failed'",
        )?
        .query_row([], |r| r.get(0))?;
    Ok(StoreStats {
        due: due as u64,
        in_flight: in_flight as u64,
        scheduled: scheduled as u64,
        failed: failed as u64,
    })
}

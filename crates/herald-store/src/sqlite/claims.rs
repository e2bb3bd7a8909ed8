//! The delivery engine's side of the store: leasing due work, recording attempts, releasing leases, purging.

use std::collections::{BTreeSet, HashMap};

use rusqlite::{params, Connection, Row};

use crate::claiming::{select, CandidateRow, CANDIDATE_COLUMNS, SCAN_FACTOR};
use crate::error::StoreResult;
use crate::model::*;

/// Parks a delivery (no due time) while its endpoint is disabled; enabling the endpoint makes it due again.
const PARK: &str = "UPDATE deliveries SET \
    status = CASE WHEN attempt_count > 0 THEN 'retrying' ELSE 'pending' END, \
    due_ms = NULL, lease_owner = NULL, updated_ms = ?2 WHERE id = ?1";

fn candidate_row(row: &Row) -> rusqlite::Result<CandidateRow> {
    Ok(CandidateRow {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        event_id: row.get(2)?,
        endpoint_id: row.get(3)?,
        dispatch_key: row.get(4)?,
        url: row.get(5)?,
        direct_secret: row.get(6)?,
        direct_headers: row.get(7)?,
        direct_policy: row.get(8)?,
        direct_timeout_ms: row.get(9)?,
        endpoint_found: row.get(10)?,
        secret: row.get(11)?,
        previous_secret: row.get(12)?,
        previous_secret_until: row.get(13)?,
        endpoint_headers: row.get(14)?,
        endpoint_policy: row.get(15)?,
        endpoint_timeout_ms: row.get(16)?,
        max_in_flight: row.get(17)?,
        rate_limit_per_s: row.get(18)?,
        disabled: row.get(19)?,
        attempt_count: row.get(20)?,
        count_4xx: row.get(21)?,
        cycle_base: row.get(22)?,
        cycle_started_ms: row.get(23)?,
        correlation_id: row.get(24)?,
        kind: row.get(25)?,
        event_type: row.get(26)?,
        payload: row.get(27)?,
        event_created_ms: row.get(28)?,
        auth: row.get(29)?,
    })
}

/// Unexpired leases per dispatch key among the candidates' keys.
fn leases_per_key(
    conn: &Connection,
    rows: &[CandidateRow],
    now_ms: i64,
) -> StoreResult<HashMap<String, u32>> {
    let keys: BTreeSet<&str> = rows.iter().map(|r| r.dispatch_key.as_str()).collect();
    let mut count = conn.prepare_cached(
        "SELECT COUNT(*) FROM deliveries WHERE status = 'in_progress' AND dispatch_key = ?1 AND due_ms > ?2",
    )?;
    let mut out = HashMap::new();
    for key in keys {
        let n: i64 = count.query_row(params![key, now_ms], |r| r.get(0))?;
        if n > 0 {
            out.insert(key.to_string(), n.clamp(0, i64::from(u32::MAX)) as u32);
        }
    }
    Ok(out)
}

pub fn claim_due(conn: &Connection, request: &ClaimRequest) -> StoreResult<Vec<ClaimedDelivery>> {
    if request.limit == 0 {
        return Ok(Vec::new());
    }
    let saturated = serde_json::to_string(&request.saturated)?;
    let scan = (request.limit * SCAN_FACTOR) as i64;
    let rows: Vec<CandidateRow> = conn
        .prepare_cached(&format!(
            "SELECT {CANDIDATE_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_id \
             LEFT JOIN endpoints ep ON ep.id = d.endpoint_id \
             WHERE d.due_ms IS NOT NULL AND d.due_ms <= ?1 \
               AND d.dispatch_key NOT IN (SELECT value FROM json_each(?2)) \
             ORDER BY d.due_ms LIMIT ?3"
        ))?
        .query_map(params![request.now_ms, saturated, scan], candidate_row)?
        .collect::<Result<_, _>>()?;
    let in_flight = leases_per_key(conn, &rows, request.now_ms)?;
    let selection = select(
        rows,
        &in_flight,
        request.limit,
        request.now_ms,
        request.lease_ms,
        request.default_max_in_flight,
    )?;
    let mut lease = conn.prepare_cached(
        "UPDATE deliveries SET status = 'in_progress', lease_owner = ?2, due_ms = ?3, updated_ms = ?4 WHERE id = ?1",
    )?;
    let mut cancel = conn.prepare_cached(
        "UPDATE deliveries SET status = 'cancelled', due_ms = NULL, lease_owner = NULL, \
         last_error = 'endpoint deleted', updated_ms = ?2 WHERE id = ?1",
    )?;
    let mut park = conn.prepare_cached(PARK)?;
    for id in &selection.endpoint_deleted {
        cancel.execute(params![id, request.now_ms])?;
    }
    for id in &selection.endpoint_disabled {
        park.execute(params![id, request.now_ms])?;
    }
    for (id, reason) in &selection.quarantined {
        conn.prepare_cached(crate::sql::QUARANTINE_DELIVERY)?
            .execute(params![reason, request.now_ms, id])?;
    }
    let mut claimed = Vec::with_capacity(selection.leased.len());
    for (delivery, lease_until) in selection.leased {
        lease.execute(params![
            delivery.id,
            request.owner,
            lease_until,
            request.now_ms
        ])?;
        claimed.push(delivery);
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

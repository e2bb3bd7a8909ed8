//! The delivery engine's side of the store: leasing due work, recording attempts, releasing leases, purging.

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::writer::WriteCtx;
use crate::claiming::{
    due_keys, pacing_writes, peer_leases, select, step_shares, to_u32, CandidateRow, Gathered,
    KeyDue, KeyWalk, Leases, CANDIDATE_COLUMNS, WALK_STEP,
};
use crate::error::StoreResult;
use crate::model::*;
use crate::stats;

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
        traceparent: row.get(30)?,
    })
}

/// Unexpired leases per dispatch key, for `keys`: all of them, and those held by other owners than
/// `node`.
fn leases_per_key(
    conn: &Connection,
    keys: &[&str],
    node: &str,
    now_ms: i64,
) -> StoreResult<HashMap<String, Leases>> {
    let mut count = conn.prepare_cached(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN lease_owner = ?3 OR substr(lease_owner, 1, length(?3) + 1) = ?3 || '.' \
         THEN 0 ELSE 1 END), 0) FROM deliveries WHERE status = 'in_progress' AND dispatch_key = ?1 AND due_ms > ?2",
    )?;
    let mut out = HashMap::new();
    for key in keys {
        let (all, peers): (i64, i64) =
            count.query_row(params![key, now_ms, node], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if all > 0 {
            out.insert(
                key.to_string(),
                Leases {
                    all: to_u32(all),
                    peers: to_u32(peers),
                },
            );
        }
    }
    Ok(out)
}

/// One row of [`crate::sql::WALK_KEYS`] or [`crate::sql::HINTED_KEY`]; `None` for a key with nothing
/// scheduled.
fn key_due(r: &Row) -> rusqlite::Result<Option<KeyDue>> {
    let Some(min_due_ms) = r.get::<_, Option<i64>>(1)? else {
        return Ok(None);
    };
    Ok(Some(KeyDue {
        key: r.get(0)?,
        min_due_ms,
        max_in_flight: r.get(2)?,
        probe_ms: r.get(3)?,
        rate_limit_per_s: r.get(4)?,
        next_send_ms: r.get(5)?,
    }))
}

/// Up to `n` keys with a due time, in key order after `after`.
fn walk(conn: &Connection, after: &str, n: usize) -> StoreResult<Vec<KeyDue>> {
    let rows = conn
        .prepare_cached(crate::sql::WALK_KEYS)?
        .query_map(params![after, n as i64], key_due)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows.into_iter().flatten().collect())
}

/// One step of `walker`'s walk: up to `asked` keys after `after` and, when those run out before the walk
/// has wrapped, on from the first key in the same step ([`KeyWalk::take_wrapping`]), as the PostgreSQL
/// store reads them. A walk resumed after the last key then reaches every key in its first step, and
/// the claim knows at once that it has visited them all.
fn walk_step(
    conn: &Connection,
    walker: &mut KeyWalk,
    after: &str,
    asked: usize,
) -> StoreResult<Vec<KeyDue>> {
    let ahead = walk(conn, after, asked)?;
    let Some(wrap_to) = walker.wrap_to().map(str::to_string) else {
        return Ok(walker.take(ahead, asked));
    };
    let wrapped = if ahead.len() < asked {
        let mut wrapped = walk(conn, "", asked - ahead.len())?;
        wrapped.retain(|k| k.key <= wrap_to);
        wrapped
    } else {
        Vec::new()
    };
    Ok(walker.take_wrapping(ahead, wrapped, asked))
}

/// Whether more deliveries are due at `now_ms` than the `taken` this claim has read
/// ([`crate::sql::DUE_ROWS_UP_TO`]).
fn due_beyond(conn: &Connection, now_ms: i64, taken: usize) -> StoreResult<bool> {
    let due: i64 = conn
        .prepare_cached(crate::sql::DUE_ROWS_UP_TO)?
        .query_row(params![now_ms, taken as i64 + 1], |r| r.get(0))?;
    Ok(due > taken as i64)
}

/// The request's hinted keys that have something scheduled ([`ClaimRequest::hinted_keys`]).
fn hinted(conn: &Connection, request: &ClaimRequest) -> StoreResult<Vec<KeyDue>> {
    let mut read = conn.prepare_cached(crate::sql::HINTED_KEY)?;
    let mut keys = Vec::new();
    for key in request.hinted_keys.iter().take(WALK_STEP) {
        keys.extend(read.query_row([key], key_due)?);
    }
    Ok(keys)
}

pub fn claim_due(conn: &Connection, request: &ClaimRequest) -> StoreResult<Claim> {
    if request.limit == 0 {
        return Ok(Claim {
            next_key: request.after_key.clone(),
            more: false,
            ..Claim::default()
        });
    }
    let now = request.now_ms;
    let mut oldest = conn.prepare_cached(
        "SELECT id FROM deliveries WHERE dispatch_key = ?1 AND due_ms IS NOT NULL AND due_ms <= ?2 \
         ORDER BY due_ms LIMIT ?3",
    )?;
    let mut walker = KeyWalk::new(&request.after_key);
    let mut gathered = Gathered::new(request.limit);
    let mut in_flight = HashMap::new();
    let mut paced = HashMap::new();
    let (mut last_visited, mut first_step) = (None, true);
    while gathered.remaining > 0 {
        let Some((after, asked)) = walker.next_step(gathered.remaining) else {
            break;
        };
        let mut keys = walk_step(conn, &mut walker, &after, asked)?;
        if let Some(k) = keys.last() {
            last_visited = Some(k.key.clone());
        }
        let walked_due = keys.iter().any(|k| k.claimable(now));
        if first_step {
            // A walk that went round every key in its first step has read every hinted key with work.
            if !walker.complete() {
                gathered.add_hinted(&mut keys, hinted(conn, request)?);
            }
            first_step = false;
        } else {
            gathered.skip_hinted(&mut keys);
        }
        let due = due_keys(&keys, now);
        in_flight.extend(leases_per_key(conn, &due, &request.node, now)?);
        paced.extend(
            keys.iter()
                .filter(|k| k.rate_limit_per_s.is_some())
                .map(|k| (k.key.clone(), k.next_send_ms)),
        );
        let mut shares = step_shares(
            &keys,
            &in_flight,
            now,
            request,
            walker.complete(),
            gathered.remaining,
        );
        while let Some(asks) = gathered.next_round(&shares) {
            for (share, asked) in shares.iter_mut().zip(asks) {
                if asked == 0 {
                    continue;
                }
                let ids: Vec<String> = oldest
                    .query_map(params![share.key, now, asked as i64], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                gathered.read(share, asked, ids);
            }
        }
        gathered.finish_step(shares);
        if !walked_due && !walker.complete() && !due_beyond(conn, now, gathered.picked.len())? {
            walker.finish();
        }
    }
    let plan = gathered.plan(&walker, &request.after_key, last_visited.as_deref());
    let mut fetch = conn.prepare_cached(&format!(
        "SELECT {CANDIDATE_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_id \
         LEFT JOIN endpoints ep ON ep.id = d.endpoint_id WHERE d.id = ?1"
    ))?;
    let mut rows: Vec<CandidateRow> = Vec::with_capacity(plan.picked.len());
    for id in &plan.picked {
        rows.push(fetch.query_row([id], candidate_row)?);
    }
    let selection = select(rows, &in_flight, request)?;
    let set_aside = !selection.endpoint_deleted.is_empty()
        || !selection.endpoint_disabled.is_empty()
        || !selection.quarantined.is_empty();
    let mut lease = conn.prepare_cached(
        "UPDATE deliveries SET status = 'in_progress', lease_owner = ?2, due_ms = ?3, updated_ms = ?4 WHERE id = ?1",
    )?;
    let mut cancel = conn.prepare_cached(
        "UPDATE deliveries SET status = 'cancelled', due_ms = NULL, lease_owner = NULL, \
         last_error = 'endpoint deleted', updated_ms = ?2 WHERE id = ?1",
    )?;
    let mut park = conn.prepare_cached(PARK)?;
    for id in &selection.endpoint_deleted {
        cancel.execute(params![id, now])?;
    }
    for id in &selection.endpoint_disabled {
        park.execute(params![id, now])?;
    }
    for (id, reason) in &selection.quarantined {
        conn.prepare_cached(crate::sql::QUARANTINE_DELIVERY)?
            .execute(params![reason, now, id])?;
    }
    let mut pace = conn.prepare_cached(crate::sql::SET_NEXT_SEND)?;
    for (key, next_send_ms) in pacing_writes(&selection.leased, &paced, now) {
        pace.execute(params![key, next_send_ms])?;
    }
    let mut deliveries = Vec::with_capacity(selection.leased.len());
    for (delivery, lease_until) in selection.leased {
        lease.execute(params![delivery.id, request.owner, lease_until, now])?;
        deliveries.push(delivery);
    }
    Ok(Claim {
        deliveries,
        next_key: plan.next_key,
        more: plan.more || set_aside,
        peer_leases: peer_leases(&in_flight),
    })
}

/// Record `results`: log each attempt, move its delivery on, and fold what it says about its endpoint into
/// the endpoint's breaker (publishing the operational events the breaker's moves raise).
pub fn record_attempts(ctx: &mut WriteCtx, results: &[AttemptResult]) -> StoreResult<()> {
    if results.is_empty() {
        return Ok(());
    }
    let conn = &ctx.conn;
    let mut advanced = HashSet::new();
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
         WHERE id = ?1 AND lease_owner = ?2 AND status = 'in_progress' \
         RETURNING tenant_id, COALESCE(endpoint_id, '')",
    )?;
    let mut moved_to = BTreeMap::new();
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
        let moved: Option<(String, String)> = advance
            .query_row(
                params![
                    r.delivery_id,
                    r.owner,
                    status,
                    a.number,
                    r.was_4xx as i64,
                    due_ms,
                    a.status_code,
                    a.error,
                    r.now_ms
                ],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        if let Some(key) = moved {
            advanced.insert(r.delivery_id.as_str());
            moved_to.insert(r.delivery_id.clone(), key);
        }
    }
    drop((insert, advance));
    super::stats::add(conn, &stats::rows_for(results, &moved_to))?;
    super::health::apply(ctx, results, &advanced)
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
    conn.prepare_cached(stats::PURGE_STATS)?
        .execute([others_before_ms])?;
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

//! What a PostgreSQL claim reads before it chooses: the walk over dispatch keys with due work, and,
//! under the claim lock, the state of the keys it visits.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::Statement;

use super::pg_error;
use super::rows::get;
use crate::claiming::{to_u32, KeyDue, KeyWalk, Leases, WALK_STEP};
use crate::error::StoreResult;

/// What a claim reads of each key of the row source `walk` (`key`, `n`, `lap`), in lap and `n` order:
/// its earliest due time, its endpoint's `max_in_flight`, its open breaker's probe time, its endpoint's
/// `rate_limit_per_s`, its pacing time, its lap, and its unexpired leases at `$now` (all, and those of
/// nodes other than `$node`) as this statement sees them, before the claim lock: a guess at what
/// [`KEY_STATE`] will find. Each key's endpoint, breaker and pacing rows are looked up per key
/// (`LATERAL … OFFSET 0` and scalar subqueries, which PostgreSQL does not turn into joins): a generic
/// plan made while those tables were empty would otherwise hash-join them, reading every endpoint on
/// every claim once there are thousands.
macro_rules! key_columns {
    ($walk:literal, $now:literal, $node:literal) => {
        concat!(
            "SELECT w.key, (SELECT MIN(d.due_ms) FROM deliveries d WHERE d.dispatch_key = w.key \
               AND d.due_ms IS NOT NULL), \
             ep.max_in_flight, \
             (SELECT dk.probe_ms FROM dispatch_keys dk WHERE dk.key = w.key AND dk.circuit = 'open'), \
             ep.rate_limit_per_s, (SELECT kp.next_send_ms FROM key_pacing kp WHERE kp.key = w.key), \
             w.lap, l.leases, l.peers FROM ",
            $walk,
            " w LEFT JOIN LATERAL (SELECT max_in_flight, rate_limit_per_s FROM endpoints ep \
               WHERE ep.id = w.key OFFSET 0) ep ON true \
             CROSS JOIN LATERAL (SELECT COUNT(*) AS leases, COUNT(*) FILTER (WHERE d.lease_owner <> ",
            $node,
            " AND NOT starts_with(d.lease_owner, ",
            $node,
            " || '.')) AS peers FROM deliveries d WHERE d.dispatch_key = w.key \
               AND d.status = 'in_progress' AND d.due_ms > ",
            $now,
            ") l ORDER BY w.lap, w.n"
        )
    };
}

/// [`crate::sql::WALK_KEYS`] and its wrap in one statement: up to `$2` keys with a due time after `$1`
/// (lap 0) and then, from the first key up to `$3` (the walk's start; none when empty), as many as
/// are still wanted (lap 1), each with what [`key_columns`] reads (`$4` now, `$5` this node). The wrap
/// is read only when the keys after `$1` run out: the `LIMIT` stops pulling rows before it.
pub(super) const WALK_KEYS_WRAPPING: &str = concat!(
    "WITH RECURSIVE ahead(key, n) AS ( \
      SELECT (SELECT dispatch_key FROM deliveries WHERE due_ms IS NOT NULL AND dispatch_key > $1 \
              ORDER BY dispatch_key LIMIT 1), 1 \
      UNION ALL \
      SELECT (SELECT d.dispatch_key FROM deliveries d WHERE d.due_ms IS NOT NULL AND d.dispatch_key > ahead.key \
              ORDER BY d.dispatch_key LIMIT 1), ahead.n + 1 \
      FROM ahead WHERE ahead.key IS NOT NULL AND ahead.n < $2), \
    wrapped(key, n) AS ( \
      SELECT (SELECT dispatch_key FROM deliveries WHERE due_ms IS NOT NULL AND $3 <> '' \
              ORDER BY dispatch_key LIMIT 1), 1 \
      UNION ALL \
      SELECT (SELECT d.dispatch_key FROM deliveries d WHERE d.due_ms IS NOT NULL AND d.dispatch_key > wrapped.key \
              ORDER BY d.dispatch_key LIMIT 1), wrapped.n + 1 \
      FROM wrapped WHERE wrapped.key IS NOT NULL AND wrapped.key < $3 AND wrapped.n < $2), \
    walk AS ((SELECT key, n, 0 AS lap FROM ahead WHERE key IS NOT NULL \
              UNION ALL SELECT key, n, 1 FROM wrapped WHERE key IS NOT NULL AND key <= $3) LIMIT $2) ",
    key_columns!("walk", "$4", "$5")
);

/// What [`key_columns`] reads of the keys `$1` (a claim's hinted keys), in that order, with `$2` now and
/// `$3` this node. A key with nothing scheduled comes back with no due time.
pub(super) const HINTED_KEYS: &str = key_columns!(
    "(SELECT key, n, 0 AS lap FROM UNNEST($1::text[]) WITH ORDINALITY AS h(key, n))",
    "$2",
    "$3"
);

/// One step of `walker`'s walk: up to `n` keys with a due time in key order after `after` and, while
/// the walk may wrap ([`KeyWalk::wrap_to`]), on from the first key in the same statement; with the
/// leases of each as seen before the claim lock (`node` is the claiming node, `now_ms` the claim's
/// time).
pub(super) async fn walk(
    tx: &impl GenericClient,
    walker: &mut KeyWalk,
    (after, n): (&str, usize),
    node: &str,
    now_ms: i64,
) -> StoreResult<(Vec<KeyDue>, HashMap<String, Leases>)> {
    let wrap_to = walker.wrap_to().unwrap_or_default().to_string();
    let stmt = tx
        .prepare_cached(WALK_KEYS_WRAPPING)
        .await
        .map_err(pg_error)?;
    let rows = tx
        .query(&stmt, &[&after, &(n as i32), &wrap_to, &now_ms, &node])
        .await
        .map_err(pg_error)?;
    let (mut ahead, mut wrapped) = (Vec::with_capacity(rows.len()), Vec::new());
    let mut leases = HashMap::with_capacity(rows.len());
    for row in &rows {
        if let Some((key, lap)) = key_row(row, &mut leases)? {
            if lap == 1 {
                wrapped.push(key);
            } else {
                ahead.push(key);
            }
        }
    }
    let keys = if wrap_to.is_empty() {
        walker.take(ahead, n)
    } else {
        walker.take_wrapping(ahead, wrapped, n)
    };
    Ok((keys, leases))
}

/// One row of [`key_columns`]: the key and its lap, `None` for a key with nothing scheduled. Its
/// leases, if any, go to `leases`.
fn key_row(
    row: &tokio_postgres::Row,
    leases: &mut HashMap<String, Leases>,
) -> StoreResult<Option<(KeyDue, i32)>> {
    let Some(min_due_ms) = get::<Option<i64>>(row, 1)? else {
        return Ok(None);
    };
    let key = KeyDue {
        key: get(row, 0)?,
        min_due_ms,
        max_in_flight: get(row, 2)?,
        probe_ms: get(row, 3)?,
        rate_limit_per_s: get(row, 4)?,
        next_send_ms: get(row, 5)?,
    };
    let (all, peers): (i64, i64) = (get(row, 7)?, get(row, 8)?);
    if all > 0 {
        leases.insert(
            key.key.clone(),
            Leases {
                all: to_u32(all),
                peers: to_u32(peers),
            },
        );
    }
    Ok(Some((key, get(row, 6)?)))
}

/// The `hinted` keys that have something scheduled ([`crate::ClaimRequest::hinted_keys`], at most
/// [`WALK_STEP`]), with their leases as seen before the claim lock, into `leases`.
pub(super) async fn hinted(
    tx: &impl GenericClient,
    hinted: &[String],
    (node, now_ms): (&str, i64),
    leases: &mut HashMap<String, Leases>,
) -> StoreResult<Vec<KeyDue>> {
    if hinted.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<&str> = hinted.iter().take(WALK_STEP).map(String::as_str).collect();
    let stmt = tx.prepare_cached(HINTED_KEYS).await.map_err(pg_error)?;
    let rows = tx
        .query(&stmt, &[&keys, &now_ms, &node])
        .await
        .map_err(pg_error)?;
    let mut found = Vec::with_capacity(rows.len());
    for row in &rows {
        found.extend(key_row(row, leases)?.map(|(key, _)| key));
    }
    Ok(found)
}

/// What a claim must read under the claim lock for `keys`: their unexpired leases across the cluster,
/// the probe times of those whose breaker is open and the pacing times of paced ones. The walk's view of
/// them may predate a commit that opened a breaker or another node's claim that paced a key.
#[derive(Default)]
pub(super) struct KeyState {
    pub(super) in_flight: HashMap<String, Leases>,
    pub(super) probes: HashMap<String, i64>,
    pub(super) next_sends: HashMap<String, i64>,
}

/// Leases per key (all, and those of other nodes), open breakers' probe times and pacing times of `$2`
/// (keys), with `$1` now and `$3` this node.
pub(super) const KEY_STATE: &str = "SELECT dispatch_key, COUNT(*), NULL::bigint, NULL::bigint, \
        COUNT(*) FILTER (WHERE lease_owner <> $3 AND NOT starts_with(lease_owner, $3 || '.')) \
     FROM deliveries \
     WHERE status = 'in_progress' AND due_ms > $1 AND dispatch_key = ANY($2) GROUP BY dispatch_key \
     UNION ALL SELECT key, -1, probe_ms, NULL, 0 FROM dispatch_keys WHERE key = ANY($2) AND circuit = 'open' \
     UNION ALL SELECT key, -1, NULL, next_send_ms, 0 FROM key_pacing WHERE key = ANY($2)";

/// Run [`KEY_STATE`] (prepared as `stmt`) for `keys`.
pub(super) async fn key_state(
    tx: &impl GenericClient,
    stmt: &Statement,
    keys: &[&str],
    node: &str,
    now_ms: i64,
) -> StoreResult<KeyState> {
    let mut state = KeyState::default();
    if keys.is_empty() {
        return Ok(state);
    }
    for row in &tx
        .query(stmt, &[&now_ms, &keys, &node])
        .await
        .map_err(pg_error)?
    {
        let key = get::<String>(row, 0)?;
        let count = get::<i64>(row, 1)?;
        if count >= 0 {
            let peers = get::<i64>(row, 4)?;
            state.in_flight.insert(
                key,
                Leases {
                    all: to_u32(count),
                    peers: to_u32(peers),
                },
            );
            continue;
        }
        if let Some(probe) = get::<Option<i64>>(row, 2)? {
            state.probes.insert(key.clone(), probe);
        }
        if let Some(next_send) = get::<Option<i64>>(row, 3)? {
            state.next_sends.insert(key, next_send);
        }
    }
    Ok(state)
}

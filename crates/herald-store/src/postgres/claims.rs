//! The delivery engine's side of the PostgreSQL store. Claims and result writes are batched: a claim is a
//! handful of statements whatever the batch size, and recording a batch of results is two.

use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::{Row, Statement};

use super::rows::get;
use super::{pg_error, PostgresStore};
use crate::claiming::{
    due_keys, due_shares, pacing_writes, peer_leases, select, to_u32, CandidateRow, Gathered,
    KeyDue, KeyShare, KeyWalk, Leases, Selection, CANDIDATE_COLUMNS,
};
use crate::error::StoreResult;
use crate::model::*;

/// Transaction-level advisory lock taken by every claim: claims run one at a time across the cluster, which
/// makes the in-flight counts they read exact and so per-endpoint limits cluster-wide.
const CLAIM_LOCK: i64 = 0x4865_7261_6c64_4331;

fn candidate_row(row: &Row) -> StoreResult<CandidateRow> {
    Ok(CandidateRow {
        id: get(row, 0)?,
        tenant_id: get(row, 1)?,
        event_id: get(row, 2)?,
        endpoint_id: get(row, 3)?,
        dispatch_key: get(row, 4)?,
        url: get(row, 5)?,
        direct_secret: get(row, 6)?,
        direct_headers: get(row, 7)?,
        direct_policy: get(row, 8)?,
        direct_timeout_ms: get(row, 9)?,
        endpoint_found: get(row, 10)?,
        secret: get(row, 11)?,
        previous_secret: get(row, 12)?,
        previous_secret_until: get(row, 13)?,
        endpoint_headers: get(row, 14)?,
        endpoint_policy: get(row, 15)?,
        endpoint_timeout_ms: get(row, 16)?,
        max_in_flight: get(row, 17)?,
        rate_limit_per_s: get(row, 18)?,
        disabled: get(row, 19)?,
        attempt_count: get(row, 20)?,
        count_4xx: get(row, 21)?,
        cycle_base: get(row, 22)?,
        cycle_started_ms: get(row, 23)?,
        correlation_id: get(row, 24)?,
        kind: get(row, 25)?,
        event_type: get(row, 26)?,
        payload: get(row, 27)?,
        event_created_ms: get(row, 28)?,
        auth: get(row, 29)?,
        traceparent: get(row, 30)?,
    })
}

/// Up to `n` keys with a due time, in key order after `after`.
async fn walk(tx: &Transaction<'_>, after: &str, n: usize) -> StoreResult<Vec<KeyDue>> {
    let stmt = tx
        .prepare_cached(crate::sql::WALK_KEYS)
        .await
        .map_err(pg_error)?;
    let rows = tx
        .query(&stmt, &[&after, &(n as i32)])
        .await
        .map_err(pg_error)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(min_due_ms) = get::<Option<i64>>(row, 1)? {
            out.push(KeyDue {
                key: get(row, 0)?,
                min_due_ms,
                max_in_flight: get(row, 2)?,
                probe_ms: get(row, 3)?,
                rate_limit_per_s: get(row, 4)?,
                next_send_ms: get(row, 5)?,
            });
        }
    }
    Ok(out)
}

/// What a claim must read under the claim lock for `keys`: their unexpired leases across the cluster,
/// the probe times of those whose breaker is open and the pacing times of paced ones. The walk's view of
/// them may predate a commit that opened a breaker or another node's claim that paced a key.
#[derive(Default)]
struct KeyState {
    in_flight: HashMap<String, Leases>,
    probes: HashMap<String, i64>,
    next_sends: HashMap<String, i64>,
}

/// Leases per key (all, and those of other nodes), open breakers' probe times and pacing times of `$2`
/// (keys), with `$1` now and `$3` this node.
const KEY_STATE: &str = "SELECT dispatch_key, COUNT(*), NULL::bigint, NULL::bigint, \
        COUNT(*) FILTER (WHERE lease_owner <> $3 AND NOT starts_with(lease_owner, $3 || '.')) \
     FROM deliveries \
     WHERE status = 'in_progress' AND due_ms > $1 AND dispatch_key = ANY($2) GROUP BY dispatch_key \
     UNION ALL SELECT key, -1, probe_ms, NULL, 0 FROM dispatch_keys WHERE key = ANY($2) AND circuit = 'open' \
     UNION ALL SELECT key, -1, NULL, next_send_ms, 0 FROM key_pacing WHERE key = ANY($2)";

/// Run [`KEY_STATE`] (prepared as `stmt`) for `keys`.
async fn key_state(
    tx: &Transaction<'_>,
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

/// One round of reads for a step: the ids of each asked key's oldest due rows (`asks[i]` for `shares[i]`,
/// 0 for none), in one statement.
async fn read_round(
    tx: &Transaction<'_>,
    gathered: &mut Gathered,
    shares: &mut [KeyShare],
    asks: &[usize],
    now_ms: i64,
) -> StoreResult<()> {
    let asked: Vec<usize> = (0..shares.len()).filter(|i| asks[*i] > 0).collect();
    let keys: Vec<&str> = asked.iter().map(|i| shares[*i].key.as_str()).collect();
    let counts: Vec<i64> = asked.iter().map(|i| asks[*i] as i64).collect();
    let stmt = tx
        .prepare_cached(
            "SELECT k.ord, p.id FROM UNNEST($2::text[], $3::bigint[]) WITH ORDINALITY AS k(key, n, ord) \
             CROSS JOIN LATERAL (SELECT id, due_ms FROM deliveries WHERE dispatch_key = k.key AND due_ms <= $1 \
                                 ORDER BY due_ms LIMIT k.n) p ORDER BY k.ord, p.due_ms",
        )
        .await
        .map_err(pg_error)?;
    let rows = tx
        .query(&stmt, &[&now_ms, &keys, &counts])
        .await
        .map_err(pg_error)?;
    let mut ids: Vec<Vec<String>> = vec![Vec::new(); asked.len()];
    for row in &rows {
        let ord: i64 = get(row, 0)?;
        if let Some(list) = usize::try_from(ord - 1).ok().and_then(|i| ids.get_mut(i)) {
            list.push(get(row, 1)?);
        }
    }
    for (j, list) in ids.into_iter().enumerate() {
        let i = asked[j];
        gathered.read(&mut shares[i], asks[i], list);
    }
    Ok(())
}

/// Lease due work inside `tx` (see [`crate::claiming`]). Claims run one at a time across the cluster
/// ([`CLAIM_LOCK`]), so the lease counts they read are exact.
pub async fn claim_in(tx: &Transaction<'_>, request: &ClaimRequest) -> StoreResult<Claim> {
    if request.limit == 0 {
        return Ok(Claim {
            next_key: request.after_key.clone(),
            ..Claim::default()
        });
    }
    let now = request.now_ms;
    let mut walker = KeyWalk::new(&request.after_key);
    let mut gathered = Gathered::new(request.limit);
    let mut in_flight = HashMap::new();
    let mut paced = HashMap::new();
    let (mut last_visited, mut locked) = (None, false);
    while gathered.remaining > 0 {
        let Some((after, asked)) = walker.next_step(gathered.remaining) else {
            break;
        };
        let mut keys = walker.take(walk(tx, &after, asked).await?, asked);
        if let Some(k) = keys.last() {
            last_visited = Some(k.key.clone());
        }
        let due: Vec<String> = due_keys(&keys, now).into_iter().map(String::from).collect();
        if due.is_empty() {
            continue;
        }
        let due: Vec<&str> = due.iter().map(String::as_str).collect();
        // The walk only proposes keys; what is free is read under the lock, taken only when some key is
        // due (a refill after the last due work takes no lock at all). The lock and the read are sent
        // together, yet the read still sees every claim that committed before the lock was granted:
        // PostgreSQL runs them in order and gives each statement a snapshot of its own when it starts.
        // Both prepared first, so that each is sent the moment it is polled, and polled in this order.
        let lock = if locked {
            None
        } else {
            Some(
                tx.prepare_cached("SELECT pg_advisory_xact_lock($1)")
                    .await
                    .map_err(pg_error)?,
            )
        };
        let read = tx.prepare_cached(KEY_STATE).await.map_err(pg_error)?;
        let take_lock = async {
            if let Some(lock) = &lock {
                tx.execute(lock, &[&CLAIM_LOCK]).await.map_err(pg_error)?;
            }
            Ok(())
        };
        let ((), state) = tokio::try_join!(
            biased;
            take_lock,
            key_state(tx, &read, &due, &request.node, now)
        )?;
        locked = true;
        in_flight.extend(state.in_flight);
        for k in keys.iter_mut().filter(|k| k.claimable(now)) {
            k.probe_ms = state.probes.get(&k.key).copied();
            k.next_send_ms = state.next_sends.get(&k.key).copied();
            if k.rate_limit_per_s.is_some() {
                paced.insert(k.key.clone(), k.next_send_ms);
            }
        }
        let mut shares = due_shares(&keys, &in_flight, now, request);
        while let Some(asks) = gathered.next_round(&shares) {
            read_round(tx, &mut gathered, &mut shares, &asks, now).await?;
        }
        gathered.finish_step(shares);
    }
    let plan = gathered.plan(&walker, &request.after_key, last_visited.as_deref());
    let rows = if plan.picked.is_empty() {
        Vec::new()
    } else {
        // Locked here, and checked again: still due, not leased by a claim that committed meanwhile.
        let sql = format!(
            "SELECT {CANDIDATE_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_id \
             LEFT JOIN endpoints ep ON ep.id = d.endpoint_id \
             WHERE d.id = ANY($1) AND d.due_ms <= $2 ORDER BY d.dispatch_key, d.due_ms FOR UPDATE OF d SKIP LOCKED"
        );
        let stmt = tx.prepare_cached(&sql).await.map_err(pg_error)?;
        tx.query(&stmt, &[&plan.picked, &now])
            .await
            .map_err(pg_error)?
            .iter()
            .map(candidate_row)
            .collect::<StoreResult<Vec<_>>>()?
    };
    let selection = select(rows, &in_flight, request)?;
    let set_aside = !selection.endpoint_deleted.is_empty()
        || !selection.endpoint_disabled.is_empty()
        || !selection.quarantined.is_empty();
    write_selection(tx, &selection, request).await?;
    for (key, next_send_ms) in pacing_writes(&selection.leased, &paced, now) {
        let stmt = tx
            .prepare_cached(crate::sql::SET_NEXT_SEND)
            .await
            .map_err(pg_error)?;
        tx.execute(&stmt, &[&key, &next_send_ms])
            .await
            .map_err(pg_error)?;
    }
    Ok(Claim {
        deliveries: selection.leased.into_iter().map(|(d, _)| d).collect(),
        next_key: plan.next_key,
        more: plan.more || set_aside,
        peer_leases: peer_leases(&in_flight),
    })
}

/// Cancel, park, quarantine and lease what the claim selected.
async fn write_selection(
    tx: &Transaction<'_>,
    selection: &Selection,
    request: &ClaimRequest,
) -> StoreResult<()> {
    if !selection.endpoint_deleted.is_empty() {
        tx.execute(
            "UPDATE deliveries SET status = 'cancelled', due_ms = NULL, lease_owner = NULL, \
             last_error = 'endpoint deleted', updated_ms = $2 WHERE id = ANY($1)",
            &[&selection.endpoint_deleted, &request.now_ms],
        )
        .await
        .map_err(pg_error)?;
    }
    if !selection.endpoint_disabled.is_empty() {
        tx.execute(
            "UPDATE deliveries SET status = CASE WHEN attempt_count > 0 THEN 'retrying' ELSE 'pending' END, \
             due_ms = NULL, lease_owner = NULL, updated_ms = $2 WHERE id = ANY($1)",
            &[&selection.endpoint_disabled, &request.now_ms],
        )
        .await
        .map_err(pg_error)?;
    }
    for (id, reason) in &selection.quarantined {
        tx.execute(
            crate::sql::QUARANTINE_DELIVERY,
            &[reason, &request.now_ms, id],
        )
        .await
        .map_err(pg_error)?;
    }
    let ids: Vec<&str> = selection
        .leased
        .iter()
        .map(|(d, _)| d.id.as_str())
        .collect();
    let until: Vec<i64> = selection.leased.iter().map(|(_, t)| *t).collect();
    if !ids.is_empty() {
        let stmt = tx
            .prepare_cached(
                "UPDATE deliveries d SET status = 'in_progress', lease_owner = $3, due_ms = u.until, updated_ms = $4 \
                 FROM UNNEST($1::text[], $2::bigint[]) AS u(id, until) WHERE d.id = u.id",
            )
            .await
            .map_err(pg_error)?;
        tx.execute(&stmt, &[&ids, &until, &request.owner, &request.now_ms])
            .await
            .map_err(pg_error)?;
    }
    Ok(())
}

/// Lease due work in a transaction of its own.
pub async fn claim_due(store: &PostgresStore, request: &ClaimRequest) -> StoreResult<Claim> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg_error)?;
    let claim = claim_in(&tx, request).await?;
    tx.commit().await.map_err(pg_error)?;
    Ok(claim)
}

/// Record `results` in a transaction of its own.
pub async fn record_attempts(store: &PostgresStore, results: &[AttemptResult]) -> StoreResult<()> {
    if results.is_empty() {
        return Ok(());
    }
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg_error)?;
    let stats = super::records::record_in(&tx, &store.ids, results).await?;
    super::stats::add(&tx, &stats).await?;
    tx.commit().await.map_err(pg_error)
}

/// Record `results`, then claim, in one transaction; the claim is handed over before the commit (its rows
/// stay locked by this transaction until then, so no other claim can take them).
pub async fn record_and_claim(
    store: &PostgresStore,
    results: &[AttemptResult],
    request: &ClaimRequest,
    claimed: tokio::sync::oneshot::Sender<Claim>,
) -> StoreResult<()> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg_error)?;
    let stats = super::records::record_in(&tx, &store.ids, results).await?;
    let claim = claim_in(&tx, request).await?;
    let _ = claimed.send(claim);
    super::stats::add(&tx, &stats).await?;
    tx.commit().await.map_err(pg_error)
}

pub async fn release_leases(
    c: &impl GenericClient,
    owner: &str,
    ids: &[String],
    now_ms: i64,
) -> StoreResult<()> {
    // The engine may give leases back while the claim that took them is still committing (a refill
    // starts its attempts before its commit). An UPDATE alone would read the rows as they were before
    // that claim, not match them and leave them leased; waiting for their row locks first means the
    // UPDATE, a statement of its own with a snapshot of its own, sees the claim's outcome.
    c.execute(
        "SELECT 1 FROM deliveries WHERE id = ANY($1) FOR UPDATE",
        &[&ids],
    )
    .await
    .map_err(pg_error)?;
    c.execute(
        "UPDATE deliveries SET status = CASE WHEN attempt_count > 0 THEN 'retrying' ELSE 'pending' END, \
         due_ms = $1, lease_owner = NULL, updated_ms = $1 \
         WHERE status = 'in_progress' AND id = ANY($2) AND lease_owner = $3",
        &[&now_ms, &ids, &owner],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

pub async fn next_due_ms(c: &impl GenericClient) -> StoreResult<Option<i64>> {
    let stmt = c
        .prepare_cached("SELECT MIN(due_ms) FROM deliveries WHERE due_ms IS NOT NULL")
        .await
        .map_err(pg_error)?;
    let row = c.query_one(&stmt, &[]).await.map_err(pg_error)?;
    get(&row, 0)
}

pub async fn purge_finished(
    c: &impl GenericClient,
    failed_before: i64,
    others_before: i64,
    batch: usize,
) -> StoreResult<u64> {
    let row = c
        .query_one(
            "WITH doomed AS ( \
               (SELECT id FROM deliveries WHERE due_ms IS NULL AND status = 'failed' AND updated_ms < $1 LIMIT $3) \
               UNION ALL \
               (SELECT id FROM deliveries WHERE due_ms IS NULL AND status IN ('delivered', 'cancelled') \
                AND updated_ms < $2 LIMIT $3) LIMIT $3), \
             gone AS (DELETE FROM deliveries WHERE id IN (SELECT id FROM doomed) RETURNING id), \
             attempts_gone AS (DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM gone)) \
             SELECT COUNT(*) FROM gone",
            &[&failed_before, &others_before, &(batch as i64)],
        )
        .await
        .map_err(pg_error)?;
    c.execute(crate::stats::PURGE_STATS, &[&others_before])
        .await
        .map_err(pg_error)?;
    Ok(get::<i64>(&row, 0)? as u64)
}

pub async fn stats(c: &impl GenericClient, now_ms: i64) -> StoreResult<StoreStats> {
    let row = c
        .query_one(
            "SELECT COUNT(*) FILTER (WHERE status <> 'in_progress' AND due_ms <= $1), \
                    COUNT(*) FILTER (WHERE status = 'in_progress'), \
                    COUNT(*) FILTER (WHERE status <> 'in_progress' AND due_ms > $1) \
             FROM deliveries WHERE due_ms IS NOT NULL",
            &[&now_ms],
        )
        .await
        .map_err(pg_error)?;
    let failed = c
        .query_one(
            "SELECT COUNT(*) FROM deliveries WHERE due_ms IS NULL AND status = 'failed'",
            &[],
        )
        .await
        .map_err(pg_error)?;
    Ok(StoreStats {
        due: get::<i64>(&row, 0)? as u64,
        in_flight: get::<i64>(&row, 1)? as u64,
        scheduled: get::<i64>(&row, 2)? as u64,
        failed: get::<i64>(&failed, 0)? as u64,
    })
}

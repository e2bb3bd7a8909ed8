//! The delivery engine's side of the PostgreSQL store. Claims and result writes are batched: a claim is a
//! handful of statements whatever the batch size, and recording a batch of results is two.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::rows::get;
use super::{pg_error, PostgresStore};
use crate::claiming::{select, CandidateRow, CANDIDATE_COLUMNS, SCAN_FACTOR};
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
    })
}

pub async fn claim_due(
    store: &PostgresStore,
    request: &ClaimRequest,
) -> StoreResult<Vec<ClaimedDelivery>> {
    if request.limit == 0 {
        return Ok(Vec::new());
    }
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CLAIM_LOCK])
        .await
        .map_err(pg_error)?;
    let scan = (request.limit * SCAN_FACTOR) as i64;
    let sql = format!(
        "WITH picked AS (SELECT id, due_ms FROM deliveries \
           WHERE due_ms <= $1 AND dispatch_key <> ALL($2) ORDER BY due_ms LIMIT $3 FOR UPDATE SKIP LOCKED) \
         SELECT {CANDIDATE_COLUMNS} FROM picked p JOIN deliveries d ON d.id = p.id \
         JOIN events e ON e.id = d.event_id LEFT JOIN endpoints ep ON ep.id = d.endpoint_id ORDER BY p.due_ms"
    );
    let stmt = tx.prepare_cached(&sql).await.map_err(pg_error)?;
    let rows = tx
        .query(&stmt, &[&request.now_ms, &request.saturated, &scan])
        .await
        .map_err(pg_error)?;
    let rows = rows
        .iter()
        .map(candidate_row)
        .collect::<StoreResult<Vec<_>>>()?;

    // In flight across the cluster, per key among the candidates (leases that have not expired).
    let keys: Vec<&str> = rows.iter().map(|r| r.dispatch_key.as_str()).collect();
    let counted = tx
        .query(
            "SELECT dispatch_key, COUNT(*) FROM deliveries WHERE status = 'in_progress' AND due_ms > $1 \
             AND dispatch_key = ANY($2) GROUP BY dispatch_key",
            &[&request.now_ms, &keys],
        )
        .await
        .map_err(pg_error)?;
    let mut in_flight = HashMap::new();
    for row in &counted {
        in_flight.insert(
            get::<String>(row, 0)?,
            get::<i64>(row, 1)?.clamp(0, i64::from(u32::MAX)) as u32,
        );
    }
    let selection = select(
        rows,
        &in_flight,
        request.limit,
        request.now_ms,
        request.lease_ms,
        request.default_max_in_flight,
    )?;
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
    tx.commit().await.map_err(pg_error)?;
    Ok(selection.leased.into_iter().map(|(d, _)| d).collect())
}

pub async fn record_attempts(store: &PostgresStore, results: &[AttemptResult]) -> StoreResult<()> {
    if results.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = results.iter().map(|r| r.delivery_id.as_str()).collect();
    let owners: Vec<&str> = results.iter().map(|r| r.owner.as_str()).collect();
    let numbers: Vec<i64> = results
        .iter()
        .map(|r| i64::from(r.attempt.number))
        .collect();
    let started: Vec<i64> = results.iter().map(|r| r.attempt.started_ms).collect();
    let durations: Vec<i64> = results
        .iter()
        .map(|r| i64::from(r.attempt.duration_ms))
        .collect();
    let codes: Vec<Option<i64>> = results
        .iter()
        .map(|r| r.attempt.status_code.map(i64::from))
        .collect();
    let errors: Vec<Option<&str>> = results.iter().map(|r| r.attempt.error.as_deref()).collect();
    let bodies: Vec<Option<&str>> = results
        .iter()
        .map(|r| r.attempt.response_body.as_deref())
        .collect();
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| match r.next {
            NextState::Delivered => "delivered",
            NextState::RetryAt(_) => "retrying",
            NextState::Failed => "failed",
        })
        .collect();
    let dues: Vec<Option<i64>> = results
        .iter()
        .map(|r| {
            if let NextState::RetryAt(at) = r.next {
                Some(at)
            } else {
                None
            }
        })
        .collect();
    let was_4xx: Vec<i64> = results.iter().map(|r| i64::from(r.was_4xx)).collect();
    let nows: Vec<i64> = results.iter().map(|r| r.now_ms).collect();

    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg_error)?;
    // Logged unless another worker now holds the lease (a result from a lost lease).
    let insert = tx
        .prepare_cached(
            "INSERT INTO attempts (delivery_id, number, started_ms, duration_ms, status_code, error, response_body) \
             SELECT u.id, u.number, u.started, u.duration, u.code, u.error, u.body \
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], \
                         $8::text[]) AS u(id, owner, number, started, duration, code, error, body) \
             WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = u.id AND d.status = 'in_progress' \
                               AND d.lease_owner <> u.owner) \
             ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(pg_error)?;
    tx.execute(
        &insert,
        &[
            &ids, &owners, &numbers, &started, &durations, &codes, &errors, &bodies,
        ],
    )
    .await
    .map_err(pg_error)?;
    let advance = tx
        .prepare_cached(
            "UPDATE deliveries d SET status = u.status, attempt_count = u.number, count_4xx = d.count_4xx + u.was_4xx, \
             due_ms = u.due, lease_owner = NULL, last_status_code = u.code, last_error = u.error, updated_ms = u.now \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], \
                         $8::text[], $9::bigint[]) AS u(id, owner, status, number, was_4xx, due, code, error, now) \
             WHERE d.id = u.id AND d.lease_owner = u.owner AND d.status = 'in_progress'",
        )
        .await
        .map_err(pg_error)?;
    tx.execute(
        &advance,
        &[
            &ids, &owners, &statuses, &numbers, &was_4xx, &dues, &codes, &errors, &nows,
        ],
    )
    .await
    .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)
}

pub async fn release_leases(
    c: &impl GenericClient,
    owner: &str,
    ids: &[String],
    now_ms: i64,
) -> StoreResult<()> {
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
    let row = c
        .query_one(
            "SELECT MIN(due_ms) FROM deliveries WHERE due_ms IS NOT NULL",
            &[],
        )
        .await
        .map_err(pg_error)?;
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

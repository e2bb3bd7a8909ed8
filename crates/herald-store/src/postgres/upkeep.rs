//! Lease upkeep on PostgreSQL outside claims: giving leases back, when work is next due, retention of
//! finished deliveries and the engine's counts.

use deadpool_postgres::GenericClient;

use super::pg_error;
use super::rows::get;
use crate::error::StoreResult;
use crate::model::StoreStats;

pub async fn release_leases(
    c: &impl GenericClient,
    owner: &str,
    ids: &[String],
    now_ms: i64,
) -> StoreResult<()> {
    // The engine may give leases back while the claim that took them is still committing (a refill
    // starts its attempts before its commit). An UPDATE alone would read the rows as they were before
    // that claim, not match them and leave them leased; waiting for their row locks first means the
    // UPDATE, a statement of its own with a snapshot of its own, sees the claim's outcome. The lease is
    // tested as its owner while leased, so the rows are found by id (`records::ADVANCE_DELIVERIES`).
    c.execute(
        "SELECT 1 FROM deliveries WHERE id = ANY($1) FOR UPDATE",
        &[&ids],
    )
    .await
    .map_err(pg_error)?;
    c.execute(
        "UPDATE deliveries SET status = CASE WHEN attempt_count > 0 THEN 'retrying' ELSE 'pending' END, \
         due_ms = $1, lease_owner = NULL, updated_ms = $1 \
         WHERE id = ANY($2) AND CASE WHEN status = 'in_progress' THEN lease_owner END = $3",
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

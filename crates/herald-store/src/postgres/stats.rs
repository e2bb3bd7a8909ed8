//! Attempt statistics on PostgreSQL: a batch's rows added in one statement, minutes read back, and the
//! capped outstanding counts.

use deadpool_postgres::GenericClient;
use herald_core::stats::Tally;

use super::pg_error;
use super::rows::get;
use crate::error::StoreResult;
use crate::stats::{self, Outstanding, StatsRow, OUTSTANDING_STATUSES, STATS_ADD, STATS_COLUMNS};

/// Add `rows` (sorted by key, so concurrent recorders lock them in one order) in one statement.
pub async fn add(c: &impl GenericClient, rows: &[StatsRow]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = rows.iter().map(|r| r.tenant_id.as_str()).collect();
    let minutes: Vec<i64> = rows.iter().map(|r| r.minute_ms).collect();
    let endpoints: Vec<&str> = rows.iter().map(|r| r.endpoint_id.as_str()).collect();
    let counts: Vec<_> = rows.iter().map(StatsRow::counts).collect();
    let columns: Vec<Vec<i64>> = (0..counts[0].len())
        .map(|i| counts.iter().map(|c| c[i]).collect())
        .collect();
    let arrays: Vec<String> = (4..=19).map(|n| format!("${n}::bigint[]")).collect();
    let sql = format!(
        "INSERT INTO attempt_stats ({STATS_COLUMNS}) SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], {}) \
         {STATS_ADD}",
        arrays.join(", ")
    );
    let statement = c.prepare_cached(&sql).await.map_err(pg_error)?;
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        vec![&tenants, &minutes, &endpoints];
    params.extend(
        columns
            .iter()
            .map(|c| c as &(dyn tokio_postgres::types::ToSql + Sync)),
    );
    c.execute(&statement, &params).await.map_err(pg_error)?;
    Ok(())
}

/// Tenant's minutes in `[since_ms, until_ms)`, of one endpoint or all, ascending.
pub async fn minutes(
    c: &impl GenericClient,
    tenant_id: &str,
    endpoint_id: Option<&str>,
    since_ms: i64,
    until_ms: i64,
) -> StoreResult<Vec<(i64, Tally)>> {
    let rows = match endpoint_id {
        Some(endpoint) => {
            c.query(
                &stats::endpoint_minutes(),
                &[&tenant_id, &since_ms, &until_ms, &endpoint],
            )
            .await
        }
        None => {
            c.query(
                &stats::tenant_minutes(),
                &[&tenant_id, &since_ms, &until_ms],
            )
            .await
        }
    }
    .map_err(pg_error)?;
    rows.iter()
        .map(|row| {
            let mut sums = Vec::with_capacity(16);
            for i in 1..=16 {
                sums.push(get::<Option<i64>>(row, i)?.unwrap_or(0));
            }
            Ok((get(row, 0)?, stats::tally_from(&sums)))
        })
        .collect()
}

/// Tenant's outstanding deliveries, each status counted up to `cap`.
pub async fn outstanding(
    c: &impl GenericClient,
    tenant_id: &str,
    cap: u64,
) -> StoreResult<Outstanding> {
    let (mut counts, mut oldest) = (Vec::new(), Vec::new());
    for status in OUTSTANDING_STATUSES {
        let row = c
            .query_one(
                stats::COUNT_STATUS_CAPPED,
                &[&tenant_id, &status.as_str(), &(cap as i64)],
            )
            .await
            .map_err(pg_error)?;
        counts.push(get::<i64>(&row, 0)? as u64);
        let first = c
            .query_opt(stats::OLDEST_WITH_STATUS, &[&tenant_id, &status.as_str()])
            .await
            .map_err(pg_error)?;
        oldest.push(match first {
            Some(row) => Some((get(&row, 0)?, get(&row, 1)?)),
            None => None,
        });
    }
    Ok(Outstanding::from_parts(counts, oldest))
}

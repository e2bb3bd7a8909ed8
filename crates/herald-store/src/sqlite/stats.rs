//! Attempt statistics on SQLite: adding a batch's rows in the recording commit, reading minutes back, and
//! the capped outstanding counts.

use herald_core::stats::Tally;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::error::StoreResult;
use crate::stats::{self, Outstanding, StatsRow, OUTSTANDING_STATUSES, STATS_ADD, STATS_COLUMNS};

/// Add `rows` to the stored minutes.
pub fn add(conn: &Connection, rows: &[StatsRow]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (1..=19).map(|n| format!("${n}")).collect();
    let mut insert = conn.prepare_cached(&format!(
        "INSERT INTO attempt_stats ({STATS_COLUMNS}) VALUES ({}) {STATS_ADD}",
        placeholders.join(", ")
    ))?;
    for row in rows {
        let counts = row.counts();
        let mut values: Vec<rusqlite::types::Value> = vec![
            row.tenant_id.clone().into(),
            row.minute_ms.into(),
            row.endpoint_id.clone().into(),
        ];
        values.extend(counts.iter().map(|c| rusqlite::types::Value::from(*c)));
        insert.execute(params_from_iter(values))?;
    }
    Ok(())
}

/// Tenant's minutes in `[since_ms, until_ms)`, of one endpoint or all, ascending.
pub fn minutes(
    conn: &Connection,
    tenant_id: &str,
    endpoint_id: Option<&str>,
    since_ms: i64,
    until_ms: i64,
) -> StoreResult<Vec<(i64, Tally)>> {
    let read = |row: &rusqlite::Row| -> rusqlite::Result<(i64, Tally)> {
        let mut sums = Vec::with_capacity(16);
        for i in 1..=16 {
            sums.push(row.get::<_, Option<i64>>(i)?.unwrap_or(0));
        }
        Ok((row.get(0)?, stats::tally_from(&sums)))
    };
    let out = match endpoint_id {
        Some(endpoint) => conn
            .prepare_cached(&stats::endpoint_minutes())?
            .query_map(params![tenant_id, since_ms, until_ms, endpoint], read)?
            .collect::<Result<_, _>>()?,
        None => conn
            .prepare_cached(&stats::tenant_minutes())?
            .query_map(params![tenant_id, since_ms, until_ms], read)?
            .collect::<Result<_, _>>()?,
    };
    Ok(out)
}

/// Tenant's outstanding deliveries, each status counted up to `cap`.
pub fn outstanding(conn: &Connection, tenant_id: &str, cap: u64) -> StoreResult<Outstanding> {
    let mut count = conn.prepare_cached(stats::COUNT_STATUS_CAPPED)?;
    let mut oldest = conn.prepare_cached(stats::OLDEST_WITH_STATUS)?;
    let (mut counts, mut oldest_rows) = (Vec::new(), Vec::new());
    for status in OUTSTANDING_STATUSES {
        let n: i64 = count.query_row(params![tenant_id, status.as_str(), cap as i64], |r| {
            r.get(0)
        })?;
        counts.push(n as u64);
        oldest_rows.push(
            oldest
                .query_row(params![tenant_id, status.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?,
        );
    }
    Ok(Outstanding::from_parts(counts, oldest_rows))
}

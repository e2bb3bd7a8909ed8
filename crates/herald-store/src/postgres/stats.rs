//! Attempt statistics on PostgreSQL: a batch's rows added in one statement, minutes read back, and the
//! capped outstanding counts.

use deadpool_postgres::GenericClient;
use herald_core::stats::Tally;
use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;

use super::pg_error;
use super::rows::get;
use crate::error::StoreResult;
use crate::stats::{self, Outstanding, StatsRow, OUTSTANDING_STATUSES, STATS_ADD, STATS_COLUMNS};

/// The insert behind [`add_statement`]: `$1..$3` tenant, minute and endpoint, `$4..$19` the counts.
pub(super) static ADD: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let arrays: Vec<String> = (4..=19).map(|n| format!("${n}::bigint[]")).collect();
    format!(
        "INSERT INTO attempt_stats ({STATS_COLUMNS}) SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], {}) \
         {STATS_ADD}",
        arrays.join(", ")
    )
});

/// The statement that adds a [`StatsBatch`], prepared on `c`.
pub async fn add_statement(c: &impl GenericClient) -> StoreResult<Statement> {
    c.prepare_cached(&ADD).await.map_err(pg_error)
}

/// A batch of statistics rows as the parameters of the [`add_statement`] insert.
pub struct StatsBatch<'a> {
    tenants: Vec<&'a str>,
    minutes: Vec<i64>,
    endpoints: Vec<&'a str>,
    columns: Vec<Vec<i64>>,
}

impl<'a> StatsBatch<'a> {
    /// `rows` (sorted by key, so concurrent recorders lock them in one order), column by column.
    pub fn new(rows: &'a [StatsRow]) -> StatsBatch<'a> {
        let counts: Vec<_> = rows.iter().map(StatsRow::counts).collect();
        let width = counts.first().map_or(0, |c| c.len());
        StatsBatch {
            tenants: rows.iter().map(|r| r.tenant_id.as_str()).collect(),
            minutes: rows.iter().map(|r| r.minute_ms).collect(),
            endpoints: rows.iter().map(|r| r.endpoint_id.as_str()).collect(),
            columns: (0..width)
                .map(|i| counts.iter().map(|c| c[i]).collect())
                .collect(),
        }
    }

    /// Whether there is nothing to add.
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    /// The insert's parameters, in order.
    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&self.tenants, &self.minutes, &self.endpoints];
        params.extend(self.columns.iter().map(|c| c as &(dyn ToSql + Sync)));
        params
    }
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

//! Attempt statistics, shared by both stores: one row per (tenant, endpoint, minute) holding the attempts'
//! outcomes and latency histogram ([`herald_core::stats::Tally`]), added to in the commit that records the
//! attempts. Charts read these rows (a day of one tenant is at most 1,440 rows per endpoint), never the
//! attempts or deliveries tables.

use std::collections::BTreeMap;

use herald_core::stats::{minute_of, Outcome, Tally, LATENCY_BUCKETS};
use herald_core::status::DeliveryStatus;

use crate::model::{AttemptResult, NextState};

/// Migration 8: the per-minute attempt statistics. `endpoint_id` is `''` for direct deliveries.
pub const STATS_MIGRATION: &str = "
CREATE TABLE attempt_stats (
    tenant_id    TEXT NOT NULL,
    minute_ms    BIGINT NOT NULL,
    endpoint_id  TEXT NOT NULL,
    delivered    BIGINT NOT NULL,
    retried      BIGINT NOT NULL,
    failed       BIGINT NOT NULL,
    duration_ms  BIGINT NOT NULL,
    l0 BIGINT NOT NULL, l1 BIGINT NOT NULL, l2 BIGINT NOT NULL, l3 BIGINT NOT NULL, l4 BIGINT NOT NULL,
    l5 BIGINT NOT NULL, l6 BIGINT NOT NULL, l7 BIGINT NOT NULL, l8 BIGINT NOT NULL, l9 BIGINT NOT NULL,
    l10 BIGINT NOT NULL, l11 BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, minute_ms, endpoint_id)
);
CREATE INDEX attempt_stats_by_endpoint ON attempt_stats (tenant_id, endpoint_id, minute_ms);
CREATE INDEX attempt_stats_by_minute ON attempt_stats (minute_ms);
";

/// The stored columns, in the order [`StatsRow`] binds them.
pub const STATS_COLUMNS: &str =
    "tenant_id, minute_ms, endpoint_id, delivered, retried, failed, duration_ms, \
    l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11";

/// What an insert of [`STATS_COLUMNS`] does when the row exists: add to it.
pub const STATS_ADD: &str = "ON CONFLICT (tenant_id, minute_ms, endpoint_id) DO UPDATE SET \
    delivered = attempt_stats.delivered + excluded.delivered, retried = attempt_stats.retried + excluded.retried, \
    failed = attempt_stats.failed + excluded.failed, duration_ms = attempt_stats.duration_ms + excluded.duration_ms, \
    l0 = attempt_stats.l0 + excluded.l0, l1 = attempt_stats.l1 + excluded.l1, l2 = attempt_stats.l2 + excluded.l2, \
    l3 = attempt_stats.l3 + excluded.l3, l4 = attempt_stats.l4 + excluded.l4, l5 = attempt_stats.l5 + excluded.l5, \
    l6 = attempt_stats.l6 + excluded.l6, l7 = attempt_stats.l7 + excluded.l7, l8 = attempt_stats.l8 + excluded.l8, \
    l9 = attempt_stats.l9 + excluded.l9, l10 = attempt_stats.l10 + excluded.l10, \
    l11 = attempt_stats.l11 + excluded.l11";

const SUMS: &str = "CAST(SUM(delivered) AS BIGINT), CAST(SUM(retried) AS BIGINT), CAST(SUM(failed) AS BIGINT), \
    CAST(SUM(duration_ms) AS BIGINT), CAST(SUM(l0) AS BIGINT), CAST(SUM(l1) AS BIGINT), CAST(SUM(l2) AS BIGINT), \
    CAST(SUM(l3) AS BIGINT), CAST(SUM(l4) AS BIGINT), CAST(SUM(l5) AS BIGINT), CAST(SUM(l6) AS BIGINT), \
    CAST(SUM(l7) AS BIGINT), CAST(SUM(l8) AS BIGINT), CAST(SUM(l9) AS BIGINT), CAST(SUM(l10) AS BIGINT), \
    CAST(SUM(l11) AS BIGINT)";

/// Tenant `$1`'s minutes in `[$2, $3)`, every endpoint summed: `minute_ms` then the sums ([`tally_from`]).
pub fn tenant_minutes() -> String {
    format!(
        "SELECT minute_ms, {SUMS} FROM attempt_stats WHERE tenant_id = $1 AND minute_ms >= $2 AND minute_ms < $3 \
         GROUP BY minute_ms ORDER BY minute_ms"
    )
}

/// Tenant `$1`'s minutes in `[$2, $3)` of endpoint `$4`.
pub fn endpoint_minutes() -> String {
    format!(
        "SELECT minute_ms, {SUMS} FROM attempt_stats WHERE tenant_id = $1 AND minute_ms >= $2 AND minute_ms < $3 \
         AND endpoint_id = $4 GROUP BY minute_ms ORDER BY minute_ms"
    )
}

/// Forget the minutes before `$1` (retention).
pub const PURGE_STATS: &str = "DELETE FROM attempt_stats WHERE minute_ms < $1";

/// How many of tenant `$1`'s deliveries have status `$2`, counting at most `$3`.
pub const COUNT_STATUS_CAPPED: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM deliveries \
    WHERE tenant_id = $1 AND status = $2 LIMIT $3) AS capped";

/// Tenant `$1`'s oldest delivery with status `$2`: id, created time.
pub const OLDEST_WITH_STATUS: &str =
    "SELECT id, created_ms FROM deliveries WHERE tenant_id = $1 AND status = $2 ORDER BY id LIMIT 1";

/// The statuses [`Outstanding`] counts, in its order: the work not yet done, then the dead-letter set.
pub const OUTSTANDING_STATUSES: [DeliveryStatus; 4] = [
    DeliveryStatus::Pending,
    DeliveryStatus::InProgress,
    DeliveryStatus::Retrying,
    DeliveryStatus::Failed,
];

/// A tenant's deliveries that are not done: how many of each status (each counted up to a cap) and the
/// oldest one still waiting to be delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Outstanding {
    /// Count per status of [`OUTSTANDING_STATUSES`], in that order, each at most the cap asked for.
    pub counts: Vec<(DeliveryStatus, u64)>,
    /// The oldest pending, in-progress or retrying delivery.
    pub oldest: Option<OldestOutstanding>,
}

/// The oldest delivery not yet delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct OldestOutstanding {
    /// Its id.
    pub delivery_id: String,
    /// Its status.
    pub status: DeliveryStatus,
    /// When it was created.
    pub created_ms: i64,
}

impl Outstanding {
    /// Assemble from per-status counts and per-status oldest rows (id, created), in
    /// [`OUTSTANDING_STATUSES`] order.
    pub fn from_parts(counts: Vec<u64>, oldest: Vec<Option<(String, i64)>>) -> Outstanding {
        let oldest = OUTSTANDING_STATUSES
            .iter()
            .zip(oldest)
            .filter(|(status, _)| **status != DeliveryStatus::Failed)
            .filter_map(|(status, row)| row.map(|(id, created)| (*status, id, created)))
            .min_by_key(|(_, id, created)| (*created, id.clone()))
            .map(|(status, delivery_id, created_ms)| OldestOutstanding {
                delivery_id,
                status,
                created_ms,
            });
        Outstanding {
            counts: OUTSTANDING_STATUSES.iter().copied().zip(counts).collect(),
            oldest,
        }
    }
}

/// One row of attempt statistics to add.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsRow {
    /// Tenant.
    pub tenant_id: String,
    /// Start of the minute.
    pub minute_ms: i64,
    /// Endpoint, `''` for direct deliveries.
    pub endpoint_id: String,
    /// What to add.
    pub tally: Tally,
}

impl StatsRow {
    /// The counts, in [`STATS_COLUMNS`] order after the three key columns.
    pub fn counts(&self) -> [i64; 4 + LATENCY_BUCKETS] {
        let t = &self.tally;
        let mut out = [0i64; 4 + LATENCY_BUCKETS];
        out[0] = t.delivered as i64;
        out[1] = t.retried as i64;
        out[2] = t.failed as i64;
        out[3] = t.duration_ms as i64;
        for (slot, count) in out[4..].iter_mut().zip(t.latency) {
            *slot = count as i64;
        }
        out
    }
}

/// A tally read back from the sums of [`tenant_minutes`] (16 numbers, in order).
pub fn tally_from(sums: &[i64]) -> Tally {
    let at = |i: usize| sums.get(i).copied().unwrap_or(0).max(0) as u64;
    let mut tally = Tally {
        delivered: at(0),
        retried: at(1),
        failed: at(2),
        duration_ms: at(3),
        ..Tally::default()
    };
    for (i, slot) in tally.latency.iter_mut().enumerate() {
        *slot = at(4 + i);
    }
    tally
}

/// The outcome of a recorded result.
pub fn outcome(next: &NextState) -> Outcome {
    match next {
        NextState::Delivered => Outcome::Delivered,
        NextState::RetryAt(_) => Outcome::Retried,
        NextState::Failed => Outcome::Failed,
    }
}

/// Group the results that moved their delivery on (`moved`: delivery id → tenant and endpoint) into rows,
/// sorted by key so that concurrent writers take row locks in one order.
pub fn rows_for(
    results: &[AttemptResult],
    moved: &BTreeMap<String, (String, String)>,
) -> Vec<StatsRow> {
    let mut grouped: BTreeMap<(String, i64, String), Tally> = BTreeMap::new();
    for r in results {
        let Some((tenant, endpoint)) = moved.get(&r.delivery_id) else {
            continue;
        };
        grouped
            .entry((
                tenant.clone(),
                minute_of(r.attempt.started_ms),
                endpoint.clone(),
            ))
            .or_default()
            .add(outcome(&r.next), r.attempt.duration_ms);
    }
    grouped
        .into_iter()
        .map(|((tenant_id, minute_ms, endpoint_id), tally)| StatsRow {
            tenant_id,
            minute_ms,
            endpoint_id,
            tally,
        })
        .collect()
}

/// Fold per-minute tallies (ascending) into buckets of `bucket_ms` starting at `since_ms`.
pub fn into_buckets(
    minutes: Vec<(i64, Tally)>,
    since_ms: i64,
    bucket_ms: i64,
) -> Vec<(i64, Tally)> {
    let mut out: Vec<(i64, Tally)> = Vec::new();
    for (minute, tally) in minutes {
        let start = since_ms + (minute - since_ms).div_euclid(bucket_ms.max(1)) * bucket_ms.max(1);
        match out.last_mut() {
            Some((last, sum)) if *last == start => sum.merge(&tally),
            _ => out.push((start, tally)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttemptRecord;

    fn result(id: &str, started_ms: i64, next: NextState, duration_ms: u32) -> AttemptResult {
        AttemptResult {
            delivery_id: id.into(),
            owner: "w".into(),
            attempt: AttemptRecord {
                number: 1,
                started_ms,
                duration_ms,
                status_code: Some(200),
                error: None,
                response_body: None,
            },
            was_4xx: false,
            next,
            now_ms: started_ms,
            health: None,
        }
    }

    #[test]
    fn results_are_grouped_by_tenant_minute_and_endpoint_and_lost_ones_left_out() {
        let results = vec![
            result("a", 60_000, NextState::Delivered, 3),
            result("b", 119_999, NextState::RetryAt(1), 30),
            result("c", 120_000, NextState::Failed, 3),
            result("lost", 60_000, NextState::Delivered, 3),
        ];
        let moved: BTreeMap<String, (String, String)> = ["a", "b", "c"]
            .into_iter()
            .map(|id| (id.to_string(), ("t".to_string(), "ep".to_string())))
            .collect();
        let rows = rows_for(&results, &moved);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].minute_ms, 60_000);
        assert_eq!((rows[0].tally.delivered, rows[0].tally.retried), (1, 1));
        assert_eq!(rows[1].minute_ms, 120_000);
        assert_eq!(rows[1].tally.failed, 1);
        let counts = rows[0].counts();
        assert_eq!(&counts[..4], &[1, 1, 0, 33]);
        assert_eq!(tally_from(&counts), rows[0].tally);
    }

    #[test]
    fn minutes_fold_into_buckets_from_the_start() {
        let one = |n| Tally {
            delivered: n,
            ..Tally::default()
        };
        let buckets = into_buckets(
            vec![(0, one(1)), (60_000, one(2)), (300_000, one(4))],
            0,
            300_000,
        );
        assert_eq!(buckets, vec![(0, one(3)), (300_000, one(4))]);
    }
}

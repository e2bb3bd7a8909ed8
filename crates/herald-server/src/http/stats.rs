//! `/v1/stats`: attempts per time bucket (from the stores' per-minute statistics, never the attempts
//! themselves), the range's totals and latency percentiles, and the tenant's outstanding deliveries.

use axum::extract::State;
use axum::Json;
use herald_api::stats::{
    AttemptCounts, OldestOutstanding, Stats, StatsBucket, StatsQuery, StatusCount,
};
use herald_core::stats::{Tally, MINUTE_MS};
use herald_core::time::parse_rfc3339;
use herald_store::stats::into_buckets;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::QueryParams;
use super::views;
use crate::app::{now_ms, AppState};

/// Each status is counted up to this many.
const COUNT_CAP: u64 = 100_000;
/// The widest range asked for.
const MAX_RANGE_MS: i64 = 31 * 24 * 3_600_000;
/// The most buckets one answer holds.
const MAX_BUCKETS: i64 = 1_500;

/// A time parameter, or 400 with `code`.
fn time_param(code: &'static str, name: &str, value: Option<&str>) -> ApiResult<Option<i64>> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            parse_rfc3339(v).ok_or_else(|| {
                ApiError::bad_request(code, format!("{name} must be an RFC 3339 time"))
            })
        })
        .transpose()
}

/// The range and bucket a query asks for: `(since_ms, until_ms, bucket_ms)`, or 400 naming the parameter.
fn range(q: &StatsQuery, now: i64) -> ApiResult<(i64, i64, i64)> {
    let until = time_param("invalid_until", "until", q.until.as_deref())?.unwrap_or(now);
    let since =
        time_param("invalid_since", "since", q.since.as_deref())?.unwrap_or(until - 3_600_000);
    let since = herald_core::stats::minute_of(since);
    if since >= until || until - since > MAX_RANGE_MS {
        return Err(ApiError::bad_request(
            "invalid_range",
            "since must be before until, and at most 31 days before it",
        ));
    }
    let bucket_secs = i64::from(q.bucket.unwrap_or(60));
    if !(60..=86_400).contains(&bucket_secs) || bucket_secs % 60 != 0 {
        return Err(ApiError::bad_request(
            "invalid_bucket",
            "bucket must be a multiple of 60 seconds from 60 to 86400",
        ));
    }
    let bucket_ms = bucket_secs * 1_000;
    if (until - since + bucket_ms - 1) / bucket_ms > MAX_BUCKETS {
        return Err(ApiError::bad_request(
            "invalid_bucket",
            "that range holds more than 1500 buckets of that width: widen the bucket",
        ));
    }
    debug_assert_eq!(bucket_ms % MINUTE_MS, 0);
    Ok((since, until, bucket_ms))
}

fn counts(t: &Tally) -> AttemptCounts {
    AttemptCounts {
        delivered: t.delivered,
        retried: t.retried,
        failed: t.failed,
        success_rate: t.success_rate(),
        mean_ms: t.mean_ms(),
        p50_ms: t.percentile_ms(0.5),
        p90_ms: t.percentile_ms(0.9),
        p99_ms: t.percentile_ms(0.99),
    }
}

/// `GET /v1/stats?since=&until=&bucket=&endpoint_id=`
#[utoipa::path(get, path = "/v1/stats", tag = "stats", params(StatsQuery),
    responses((status = 200, description = "Attempts per bucket, totals and percentiles, and the outstanding deliveries", body = Stats)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<StatsQuery>,
) -> ApiResult<Json<Stats>> {
    let now = now_ms();
    let (since, until, bucket_ms) = range(&q, now)?;
    let endpoint = q.endpoint_id.as_deref().filter(|e| !e.is_empty());
    if let Some(id) = endpoint {
        state.store.get_endpoint(&caller.tenant_id, id).await?;
    }
    let minutes = state
        .store
        .attempt_minutes(&caller.tenant_id, endpoint, since, until)
        .await?;
    let mut totals = Tally::default();
    for (_, t) in &minutes {
        totals.merge(t);
    }
    let buckets = into_buckets(minutes, since, bucket_ms)
        .into_iter()
        .map(|(start, t)| StatsBucket {
            start: views::time(start),
            counts: counts(&t),
        })
        .collect();
    let outstanding = state
        .store
        .outstanding(&caller.tenant_id, COUNT_CAP)
        .await?;
    Ok(Json(Stats {
        since: views::time(since),
        until: views::time(until),
        bucket_secs: (bucket_ms / 1_000) as u32,
        endpoint_id: endpoint.map(str::to_string),
        totals: counts(&totals),
        buckets,
        outstanding: outstanding
            .counts
            .iter()
            .map(|(status, count)| StatusCount {
                status: *status,
                count: *count,
                more: *count >= COUNT_CAP,
            })
            .collect(),
        oldest_outstanding: outstanding.oldest.map(|o| OldestOutstanding {
            delivery_id: o.delivery_id,
            status: o.status,
            created_at: views::time(o.created_ms),
            age_secs: ((now - o.created_ms).max(0) / 1_000) as u64,
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(since: Option<&str>, until: Option<&str>, bucket: Option<u32>) -> StatsQuery {
        StatsQuery {
            since: since.map(str::to_string),
            until: until.map(str::to_string),
            bucket,
            endpoint_id: None,
        }
    }

    #[test]
    fn the_default_range_is_the_last_hour_by_minute() {
        let now = 1_700_000_030_000;
        let (since, until, bucket) = range(&query(None, None, None), now).unwrap();
        assert_eq!(until, now);
        assert_eq!(since % MINUTE_MS, 0);
        assert!(until - since >= 3_600_000 && until - since < 3_660_000);
        assert_eq!(bucket, 60_000);
    }

    #[test]
    fn bad_ranges_and_buckets_are_refused() {
        let now = 1_700_000_000_000;
        for (q, code) in [
            (query(Some("yesterday"), None, None), "invalid_since"),
            (query(None, Some("x"), None), "invalid_until"),
            (query(None, None, Some(61)), "invalid_bucket"),
            (query(None, None, Some(0)), "invalid_bucket"),
            (
                query(Some("2023-01-01T00:00:00Z"), None, Some(60)),
                "invalid_range",
            ),
            (
                query(
                    Some("2023-11-01T00:00:00Z"),
                    Some("2023-11-14T00:00:00Z"),
                    Some(60),
                ),
                "invalid_bucket",
            ),
            (
                query(
                    Some("2023-11-14T00:00:00Z"),
                    Some("2023-11-13T00:00:00Z"),
                    None,
                ),
                "invalid_range",
            ),
        ] {
            let err = range(&q, now).unwrap_err();
            assert!(
                format!("{err:?}").contains(code),
                "{err:?} should be {code}"
            );
        }
    }
}

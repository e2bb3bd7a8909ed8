//! Recording attempt results on PostgreSQL: a batch of results is two statements, whatever its size.

use deadpool_postgres::GenericClient;

use std::collections::{BTreeMap, HashSet};

use super::rows::get;
use super::{pg_error, plan_mode, IdSource};
use crate::error::StoreResult;
use crate::model::*;
use crate::stats::{self, StatsRow};

/// Log attempts (`$1`…`$8`: delivery ids, owners, numbers, starts, durations, codes, errors, bodies),
/// unless another owner now holds the delivery's lease. The lease is read by id in a scalar subquery,
/// which PostgreSQL keeps as a lookup per attempt: as `NOT EXISTS`, a plan made on a young store
/// anti-joins against every leased row ([`super::plan_mode`]). The status is tested in the subquery's
/// output, not its `WHERE`, so that only the primary key can find the row ([`ADVANCE_DELIVERIES`]).
pub(super) const LOG_ATTEMPTS: &str = "INSERT INTO attempts (delivery_id, number, started_ms, duration_ms, status_code, error, response_body) \
     SELECT u.id, u.number, u.started, u.duration, u.code, u.error, u.body \
     FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], \
                 $8::text[]) AS u(id, owner, number, started, duration, code, error, body) \
     WHERE (SELECT d.status = 'in_progress' AND d.lease_owner <> u.owner FROM deliveries d WHERE d.id = u.id) \
           IS NOT TRUE \
     ON CONFLICT DO NOTHING";

/// Move leased deliveries on (`$1`…`$9`: ids, owners, statuses, numbers, 4xx flags, due times, codes,
/// errors, now), each only while still leased to its owner. Planned for its parameters each time
/// ([`super::plan_mode`]).
///
/// The lease and its owner are tested together, as the owner while leased (a `CASE`), because the
/// partial index of leases cannot serve that form: with `status = 'in_progress'` beside `id = u.id`,
/// PostgreSQL may read every lease in the cluster through that index rather than one row per id
/// through the primary key. It does so whenever the statistics were taken while few leases were held
/// (after a quiet moment's `ANALYZE`), and a busy node's record of a hundred results then reads each
/// of its hundred-odd leases a hundred times.
pub(super) const ADVANCE_DELIVERIES: &str = "UPDATE deliveries d SET status = u.status, attempt_count = u.number, count_4xx = d.count_4xx + u.was_4xx, \
     due_ms = u.due, lease_owner = NULL, last_status_code = u.code, last_error = u.error, updated_ms = u.now \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], \
                 $8::text[], $9::bigint[]) AS u(id, owner, status, number, was_4xx, due, code, error, now) \
     WHERE d.id = u.id AND CASE WHEN d.status = 'in_progress' THEN d.lease_owner END = u.owner \
     RETURNING d.id, d.tenant_id, COALESCE(d.endpoint_id, '')";

/// Record `results` inside `tx`: log each attempt and move its delivery on, in two statements; then fold
/// the results that moved their delivery on into their endpoints' breakers ([`super::health::apply`]).
/// Returns their statistics, for the caller to add ([`super::stats::StatsBatch`]) with its commit, so that
/// the statistics rows, which every recorder of a tenant's endpoint writes, are locked briefly.
pub async fn record_in(
    tx: &impl GenericClient,
    ids_source: &IdSource,
    results: &[AttemptResult],
) -> StoreResult<Vec<StatsRow>> {
    if results.is_empty() {
        return Ok(Vec::new());
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

    // Logged unless another worker now holds the lease (a result from a lost lease).
    let insert = tx.prepare_cached(LOG_ATTEMPTS).await.map_err(pg_error)?;
    let advance = tx
        .prepare_cached(ADVANCE_DELIVERIES)
        .await
        .map_err(pg_error)?;
    let plan_for_parameters = tx
        .prepare_cached(plan_mode::PLAN_FOR_PARAMETERS)
        .await
        .map_err(pg_error)?;
    let plan_as_cached = tx
        .prepare_cached(plan_mode::PLAN_AS_CACHED)
        .await
        .map_err(pg_error)?;
    // All sent at once, in this order (PostgreSQL runs them one after the other): the attempts are
    // logged against the leases as they stand before the deliveries move on.
    let log = async {
        tx.execute(
            &insert,
            &[
                &ids, &owners, &numbers, &started, &durations, &codes, &errors, &bodies,
            ],
        )
        .await
        .map_err(pg_error)
    };
    let moving = async {
        tx.query(
            &advance,
            &[
                &ids, &owners, &statuses, &numbers, &was_4xx, &dues, &codes, &errors, &nows,
            ],
        )
        .await
        .map_err(pg_error)
    };
    let planned = async {
        tx.execute(&plan_for_parameters, &[])
            .await
            .map_err(pg_error)
    };
    let cached = async { tx.execute(&plan_as_cached, &[]).await.map_err(pg_error) };
    let (_, _, moved, _) = tokio::try_join!(biased; log, planned, moving, cached)?;
    let mut moved_to = BTreeMap::new();
    for row in &moved {
        moved_to.insert(get::<String>(row, 0)?, (get(row, 1)?, get(row, 2)?));
    }
    let rows = stats::rows_for(results, &moved_to);
    if results.iter().all(|r| r.health.is_none()) {
        return Ok(rows);
    }
    let advanced: HashSet<String> = moved_to.into_keys().collect();
    super::health::apply(tx, ids_source, results, &advanced).await?;
    Ok(rows)
}

//! Endpoint breakers on PostgreSQL: folding recorded attempts in ([`crate::health`]) under row locks, so
//! that nodes recording results for one endpoint at once take turns; reading them for the API.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::{GenericClient, Transaction};
use herald_core::breaker::{BreakerHealth, Signal};
use tokio_postgres::Row;

use super::rows::get;
use super::{pg_error, IdSource};
use crate::error::StoreResult;
use crate::health::{self, circuit_text, KeyRow};
use crate::model::*;
use crate::sql::{CIRCUIT_COUNTS, DISPATCH_KEY_COLUMNS, UPSERT_DISPATCH_KEY};

fn key_row(row: &Row) -> StoreResult<KeyRow> {
    Ok(KeyRow {
        key: get(row, 0)?,
        failures: get(row, 1)?,
        circuit: get(row, 2)?,
        opened_ms: get(row, 3)?,
        probe_ms: get(row, 4)?,
        cooldown_ms: get(row, 5)?,
        failing_since_ms: get(row, 6)?,
        last_error: get(row, 7)?,
        changed_ms: get(row, 8)?,
    })
}

/// The stored breakers of `keys`, locked in key order (so two nodes recording for the same endpoints
/// cannot deadlock).
async fn locked_rows(
    tx: &Transaction<'_>,
    keys: &[&str],
) -> StoreResult<HashMap<String, BreakerHealth>> {
    let read = tx
        .prepare_cached(&format!(
            "SELECT {DISPATCH_KEY_COLUMNS} FROM dispatch_keys WHERE key = ANY($1) ORDER BY key FOR UPDATE"
        ))
        .await
        .map_err(pg_error)?;
    let mut current = HashMap::new();
    for row in &tx.query(&read, &[&keys]).await.map_err(pg_error)? {
        let (key, h) = key_row(row)?.into_health()?;
        current.insert(key, h);
    }
    Ok(current)
}

/// Fold the results whose delivery moved on (`advanced`) into their endpoints' breakers, and publish the
/// operational events the breakers' moves raise, inside `tx`.
pub async fn apply(
    tx: &Transaction<'_>,
    ids: &IdSource,
    results: &[AttemptResult],
    advanced: &HashSet<String>,
) -> StoreResult<()> {
    let grouped = health::reports(results, |id| advanced.contains(id));
    if grouped.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = grouped.keys().copied().collect();
    let mut current = locked_rows(tx, &keys).await?;
    // A key without a row cannot be locked. Before its first failure is counted, a row is made for it (or
    // found, made by another node meanwhile) and locked like the others, so two nodes never both count
    // from an empty breaker and overwrite each other.
    let unborn: Vec<&str> = grouped
        .iter()
        .filter(|(key, rs)| {
            !current.contains_key(**key) && rs.iter().any(|(_, h)| h.signal == Signal::Failure)
        })
        .map(|(key, _)| *key)
        .collect();
    if !unborn.is_empty() {
        let now = results.iter().map(|r| r.now_ms).max().unwrap_or(0);
        let make = tx
            .prepare_cached(
                "INSERT INTO dispatch_keys (key, failures, circuit, cooldown_ms, updated_ms) \
                 SELECT k, 0, 'closed', 0, $2 FROM UNNEST($1::text[]) AS k ORDER BY k ON CONFLICT (key) DO NOTHING",
            )
            .await
            .map_err(pg_error)?;
        tx.execute(&make, &[&unborn, &now])
            .await
            .map_err(pg_error)?;
        current.extend(locked_rows(tx, &unborn).await?);
    }
    let changes = health::fold(&grouped, current);
    if changes.is_empty() {
        return Ok(());
    }
    let upsert = tx
        .prepare_cached(UPSERT_DISPATCH_KEY)
        .await
        .map_err(pg_error)?;
    let mut events = Vec::new();
    for change in &changes {
        let h = &change.health;
        tx.execute(
            &upsert,
            &[
                &change.endpoint_id,
                &i64::from(h.failures),
                &circuit_text(h),
                &h.opened_ms,
                &h.probe_ms,
                &h.cooldown_ms,
                &h.failing_since_ms,
                &h.last_error,
                &h.changed_ms,
                &change.now_ms,
            ],
        )
        .await
        .map_err(pg_error)?;
        if change.transitions.is_empty() {
            continue;
        }
        let endpoint = tx
            .query_opt(
                "SELECT tenant_id, url FROM endpoints WHERE id = $1",
                &[&change.endpoint_id],
            )
            .await
            .map_err(pg_error)?;
        if let Some(row) = endpoint {
            let (tenant_id, url): (String, String) = (get(&row, 0)?, get(&row, 1)?);
            for t in &change.transitions {
                events.extend(health::breaker_event(*t, change, &tenant_id, &url));
            }
        }
    }
    if !events.is_empty() {
        super::batch::publish_all(tx, ids, events, EventKind::Operational).await?;
    }
    Ok(())
}

/// The breakers of a tenant's endpoints among `ids`.
pub async fn endpoint_circuits(
    c: &impl GenericClient,
    tenant_id: &str,
    ids: &[String],
) -> StoreResult<Vec<EndpointCircuit>> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {} FROM dispatch_keys dk JOIN endpoints ep ON ep.id = dk.key \
             WHERE dk.key = ANY($1) AND ep.tenant_id = $2 ORDER BY dk.key",
            health::qualified_columns()
        ))
        .await
        .map_err(pg_error)?;
    let mut out = Vec::new();
    for row in &c
        .query(&stmt, &[&ids, &tenant_id])
        .await
        .map_err(pg_error)?
    {
        let (endpoint_id, health) = key_row(row)?.into_health()?;
        out.push(EndpointCircuit {
            endpoint_id,
            health,
        });
    }
    Ok(out)
}

/// Breakers not closed at `now_ms`, across tenants.
pub async fn circuit_counts(c: &impl GenericClient, now_ms: i64) -> StoreResult<CircuitCounts> {
    let stmt = c.prepare_cached(CIRCUIT_COUNTS).await.map_err(pg_error)?;
    let row = c.query_one(&stmt, &[&now_ms]).await.map_err(pg_error)?;
    Ok(CircuitCounts {
        open: get::<i64>(&row, 0)?.max(0) as u64,
        half_open: get::<i64>(&row, 1)?.max(0) as u64,
    })
}

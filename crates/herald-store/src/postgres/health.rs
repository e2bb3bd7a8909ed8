//! Endpoint health on PostgreSQL: folding recorded attempts in ([`crate::health`]) under row locks, so
//! that nodes recording results for one endpoint at once take turns; reading them for the API.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::GenericClient;
use herald_core::breaker::{BreakerHealth, Transition};
use tokio_postgres::Row;

use super::rows::get;
use super::{pg_error, IdSource};
use crate::error::StoreResult;
use crate::health::{self, KeyChange, KeyRow, KeyValues};
use crate::model::*;
use crate::sql::{
    CIRCUIT_COUNTS, DELIVERY_EVENT, DISABLE_FAILING_ENDPOINT, DISPATCH_KEY_COLUMNS,
    UPSERT_DISPATCH_KEYS,
};

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
        window: [
            get(row, 9)?,
            get(row, 10)?,
            get(row, 11)?,
            get(row, 12)?,
            get(row, 13)?,
        ],
        degraded: get(row, 14)?,
        disabled_ms: get(row, 15)?,
    })
}

/// The stored breakers of `keys`, locked in key order (so two nodes recording for the same endpoints
/// cannot deadlock).
async fn locked_rows(
    tx: &impl GenericClient,
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
    tx: &impl GenericClient,
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
    // A key without a row cannot be locked. A row is made for it (or found, made by another node
    // meanwhile) and locked like the others, so two nodes never both count from an empty state and
    // overwrite each other.
    let unborn: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|key| !current.contains_key(*key))
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
    write_keys(tx, &changes).await?;
    let mut events = Vec::new();
    for change in &changes {
        events.extend(events_of(tx, change).await?);
    }
    if !events.is_empty() {
        super::batch::publish_all(tx, ids, events, EventKind::Operational).await?;
    }
    Ok(())
}

/// Write the changed keys' state, one statement for the batch.
async fn write_keys(tx: &impl GenericClient, changes: &[KeyChange]) -> StoreResult<()> {
    let values: Vec<KeyValues> = changes.iter().map(|c| KeyValues::of(&c.health)).collect();
    let text = |f: fn(&KeyChange) -> Option<&str>| changes.iter().map(f).collect::<Vec<_>>();
    let num = |f: fn(&KeyChange) -> Option<i64>| changes.iter().map(f).collect::<Vec<_>>();
    let window = |i: usize| values.iter().map(|v| v.window[i]).collect::<Vec<i64>>();
    let stmt = tx
        .prepare_cached(UPSERT_DISPATCH_KEYS)
        .await
        .map_err(pg_error)?;
    tx.execute(
        &stmt,
        &[
            &text(|c| Some(c.endpoint_id.as_str())),
            &values.iter().map(|v| v.failures).collect::<Vec<_>>(),
            &values.iter().map(|v| v.circuit).collect::<Vec<_>>(),
            &num(|c| c.health.opened_ms),
            &num(|c| c.health.probe_ms),
            &changes
                .iter()
                .map(|c| c.health.cooldown_ms)
                .collect::<Vec<_>>(),
            &num(|c| c.health.failing_since_ms),
            &text(|c| c.health.last_error.as_deref()),
            &num(|c| c.health.changed_ms),
            &window(0),
            &window(1),
            &window(2),
            &window(3),
            &window(4),
            &values.iter().map(|v| v.degraded).collect::<Vec<_>>(),
            &num(|c| c.health.disabled_ms),
            &changes.iter().map(|c| c.now_ms).collect::<Vec<_>>(),
        ],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

/// The operational events of one endpoint's change; disables the endpoint if the change says so.
async fn events_of(tx: &impl GenericClient, change: &KeyChange) -> StoreResult<Vec<NewEvent>> {
    if change.transitions.is_empty() && change.failed.is_empty() {
        return Ok(Vec::new());
    }
    let endpoint = tx
        .query_opt(
            "SELECT tenant_id, url FROM endpoints WHERE id = $1",
            &[&change.endpoint_id],
        )
        .await
        .map_err(pg_error)?;
    let Some(row) = endpoint else {
        return Ok(Vec::new());
    };
    let (tenant_id, url): (String, String) = (get(&row, 0)?, get(&row, 1)?);
    let mut events = Vec::new();
    for t in &change.transitions {
        if *t == Transition::Disabled {
            tx.execute(
                DISABLE_FAILING_ENDPOINT,
                &[&true, &change.now_ms, &change.endpoint_id],
            )
            .await
            .map_err(pg_error)?;
        }
        events.extend(health::health_event(*t, change, &tenant_id, &url));
    }
    for failed in &change.failed {
        if let Some(row) = tx
            .query_opt(DELIVERY_EVENT, &[&failed.delivery_id])
            .await
            .map_err(pg_error)?
        {
            let (event_id, event_type): (String, String) = (get(&row, 0)?, get(&row, 1)?);
            events.push(health::delivery_failed_event(
                failed,
                change,
                &tenant_id,
                &url,
                (&event_id, &event_type),
            ));
        }
    }
    Ok(events)
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

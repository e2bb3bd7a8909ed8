//! Endpoint health on SQLite: folding recorded attempts in ([`crate::health`]), reading it for the API.

use std::collections::{HashMap, HashSet};

use herald_core::breaker::Transition;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::writer::WriteCtx;
use crate::error::StoreResult;
use crate::health::{self, KeyChange, KeyRow, KeyValues};
use crate::model::*;
use crate::sql::{
    CIRCUIT_COUNTS, DELIVERY_EVENT, DISABLE_FAILING_ENDPOINT, DISPATCH_KEY_COLUMNS,
    UPSERT_DISPATCH_KEY,
};

fn key_row(row: &Row) -> rusqlite::Result<KeyRow> {
    Ok(KeyRow {
        key: row.get(0)?,
        failures: row.get(1)?,
        circuit: row.get(2)?,
        opened_ms: row.get(3)?,
        probe_ms: row.get(4)?,
        cooldown_ms: row.get(5)?,
        failing_since_ms: row.get(6)?,
        last_error: row.get(7)?,
        changed_ms: row.get(8)?,
        window: [
            row.get(9)?,
            row.get(10)?,
            row.get(11)?,
            row.get(12)?,
            row.get(13)?,
        ],
        degraded: row.get(14)?,
        disabled_ms: row.get(15)?,
    })
}

/// Fold the results whose delivery moved on (`advanced`) into their endpoints' health, and publish the
/// operational events the changes raise, in the same commit.
pub fn apply(
    ctx: &mut WriteCtx,
    results: &[AttemptResult],
    advanced: &HashSet<&str>,
) -> StoreResult<()> {
    let grouped = health::reports(results, |id| advanced.contains(id));
    if grouped.is_empty() {
        return Ok(());
    }
    let mut current = HashMap::new();
    {
        let mut read = ctx.conn.prepare_cached(&format!(
            "SELECT {DISPATCH_KEY_COLUMNS} FROM dispatch_keys WHERE key = ?1"
        ))?;
        for key in grouped.keys() {
            if let Some(row) = read.query_row([key], key_row).optional()? {
                let (key, h) = row.into_health()?;
                current.insert(key, h);
            }
        }
    }
    let changes = health::fold(&grouped, current);
    let mut events = Vec::new();
    for change in &changes {
        write_key(&ctx.conn, change)?;
        events.extend(events_of(&ctx.conn, change)?);
    }
    for event in events {
        super::publish::publish_as(ctx, event, EventKind::Operational)?;
    }
    Ok(())
}

fn write_key(conn: &Connection, change: &KeyChange) -> StoreResult<()> {
    let h = &change.health;
    let v = KeyValues::of(h);
    let [start, attempts, failures, prev_attempts, prev_failures] = v.window;
    conn.prepare_cached(UPSERT_DISPATCH_KEY)?.execute(params![
        change.endpoint_id,
        v.failures,
        v.circuit,
        h.opened_ms,
        h.probe_ms,
        h.cooldown_ms,
        h.failing_since_ms,
        h.last_error,
        h.changed_ms,
        start,
        attempts,
        failures,
        prev_attempts,
        prev_failures,
        v.degraded,
        h.disabled_ms,
        change.now_ms,
    ])?;
    Ok(())
}

/// The operational events of one endpoint's change; disables the endpoint if the change says so.
fn events_of(conn: &Connection, change: &KeyChange) -> StoreResult<Vec<NewEvent>> {
    if change.transitions.is_empty() && change.failed.is_empty() {
        return Ok(Vec::new());
    }
    let endpoint: Option<(String, String)> = conn
        .prepare_cached("SELECT tenant_id, url FROM endpoints WHERE id = ?1")?
        .query_row([&change.endpoint_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((tenant_id, url)) = endpoint else {
        return Ok(Vec::new());
    };
    let mut events = Vec::new();
    for t in &change.transitions {
        if *t == Transition::Disabled {
            conn.prepare_cached(DISABLE_FAILING_ENDPOINT)?
                .execute(params![true, change.now_ms, change.endpoint_id])?;
        }
        events.extend(health::health_event(*t, change, &tenant_id, &url));
    }
    for failed in &change.failed {
        let event: Option<(String, String)> = conn
            .prepare_cached(DELIVERY_EVENT)?
            .query_row([&failed.delivery_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((event_id, event_type)) = event {
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

/// The breakers of a tenant's endpoints among `ids` (endpoints never attempted are left out).
pub fn endpoint_circuits(
    conn: &Connection,
    tenant_id: &str,
    ids: &[String],
) -> StoreResult<Vec<EndpointCircuit>> {
    let mut read = conn.prepare_cached(&format!(
        "SELECT {} FROM dispatch_keys dk JOIN endpoints ep ON ep.id = dk.key \
         WHERE dk.key = ?1 AND ep.tenant_id = ?2",
        health::qualified_columns()
    ))?;
    let mut out = Vec::new();
    for id in ids {
        if let Some(row) = read.query_row(params![id, tenant_id], key_row).optional()? {
            let (endpoint_id, health) = row.into_health()?;
            out.push(EndpointCircuit {
                endpoint_id,
                health,
            });
        }
    }
    Ok(out)
}

/// Breakers not closed at `now_ms`, across tenants.
pub fn circuit_counts(conn: &Connection, now_ms: i64) -> StoreResult<CircuitCounts> {
    let (open, half_open): (i64, i64) = conn
        .prepare_cached(CIRCUIT_COUNTS)?
        .query_row([now_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(CircuitCounts {
        open: open.max(0) as u64,
        half_open: half_open.max(0) as u64,
    })
}

//! Accepting work: publishing an event with its fan-out, direct deliveries, and endpoint replays.
//! Each function runs inside the writer's group commit.

use herald_core::event_type::{filter_matches, filter_names};
use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{self, DELIVERY_COLUMNS, EVENT_COLUMNS};
use super::writer::WriteCtx;
use crate::error::{StoreError, StoreResult};
use crate::model::*;

/// How long an idempotency key returns the first answer.
const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// Most events one replay re-sends.
const REPLAY_LIMIT: i64 = 100_000;

pub fn publish(ctx: &mut WriteCtx, new: NewEvent) -> StoreResult<Published> {
    publish_as(ctx, new, EventKind::Event)
}

/// Publish an event of `kind` (an ordinary event, or an operational one).
pub fn publish_as(ctx: &mut WriteCtx, new: NewEvent, kind: EventKind) -> StoreResult<Published> {
    if let Some(key) = &new.idempotency_key {
        if let Some(earlier) = replay_idempotent(&ctx.conn, &new.tenant_id, key, new.now_ms)? {
            return Ok(earlier);
        }
    }
    let event = EventRecord {
        id: ctx.new_id("evt", new.now_ms),
        tenant_id: new.tenant_id,
        kind,
        event_type: new.event_type,
        payload: new.payload,
        idempotency_key: new.idempotency_key,
        correlation_id: new.correlation_id,
        traceparent: new.traceparent,
        created_ms: new.now_ms,
    };
    // Everything that can fail is read before anything is written (see `writer`).
    let targets = matching_endpoints(&ctx.conn, &event.tenant_id, &event.event_type, kind)?;
    insert_event(&ctx.conn, &event)?;
    if let Some(key) = &event.idempotency_key {
        ctx.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO idempotency_keys (tenant_id, key, event_id, created_ms) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![event.tenant_id, key, event.id, event.created_ms])?;
    }
    let mut deliveries = Vec::with_capacity(targets.len());
    for (endpoint_id, url) in targets {
        let id = ctx.new_id("dlv", event.created_ms);
        insert_fanned_out(&ctx.conn, &id, &event, &endpoint_id, &url)?;
        deliveries.push(DeliveryRef {
            id,
            endpoint_id: Some(endpoint_id),
        });
    }
    Ok(Published {
        event,
        deliveries,
        replayed: false,
    })
}

fn replay_idempotent(
    conn: &Connection,
    tenant_id: &str,
    key: &str,
    now_ms: i64,
) -> StoreResult<Option<Published>> {
    let found: Option<(String, i64)> = conn
        .prepare_cached(
            "SELECT event_id, created_ms FROM idempotency_keys WHERE tenant_id = ?1 AND key = ?2",
        )?
        .query_row([tenant_id, key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((event_id, created_ms)) = found else {
        return Ok(None);
    };
    if now_ms - created_ms > IDEMPOTENCY_WINDOW_MS {
        return Ok(None);
    }
    let event = conn
        .prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"))?
        .query_row([&event_id], rows::event)
        .optional()?;
    let Some(event) = event else { return Ok(None) };
    let mut stmt = conn
        .prepare_cached("SELECT id, endpoint_id FROM deliveries WHERE event_id = ?1 ORDER BY id")?;
    let deliveries = stmt
        .query_map([&event_id], |r| {
            Ok(DeliveryRef {
                id: r.get(0)?,
                endpoint_id: r.get(1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Some(Published {
        event,
        deliveries,
        replayed: true,
    }))
}

fn insert_event(conn: &Connection, event: &EventRecord) -> StoreResult<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))?
    .execute(params![
        event.id,
        event.tenant_id,
        event.kind.as_str(),
        event.event_type,
        event.payload,
        event.idempotency_key,
        event.correlation_id,
        event.created_ms,
        event.traceparent,
    ])?;
    Ok(())
}

/// `(endpoint id, url)` of the tenant's enabled endpoints whose filters accept `event_type` (an
/// operational event only where a filter names it).
fn matching_endpoints(
    conn: &Connection,
    tenant_id: &str,
    event_type: &str,
    kind: EventKind,
) -> StoreResult<Vec<(String, String)>> {
    let accepts = if kind == EventKind::Operational {
        filter_names
    } else {
        filter_matches
    };
    let mut stmt = conn.prepare_cached(
        "SELECT id, url, event_types FROM endpoints WHERE tenant_id = ?1 AND disabled = 0 ORDER BY id",
    )?;
    let mut rows = stmt.query([tenant_id])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let filters: Vec<String> = serde_json::from_str(&row.get::<_, String>(2)?)?;
        if accepts(&filters, event_type) {
            out.push((row.get(0)?, row.get(1)?));
        }
    }
    Ok(out)
}

fn insert_fanned_out(
    conn: &Connection,
    id: &str,
    event: &EventRecord,
    endpoint_id: &str,
    url: &str,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, dispatch_key, url, status, \
         cycle_started_ms, due_ms, correlation_id, created_ms, updated_ms) \
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, 'pending', ?6, ?6, ?7, ?6, ?6)",
    )?
    .execute(params![
        id,
        event.tenant_id,
        event.id,
        endpoint_id,
        url,
        event.created_ms,
        event.correlation_id
    ])?;
    Ok(())
}

pub fn create_direct(ctx: &mut WriteCtx, new: NewDirectDelivery) -> StoreResult<DeliveryRecord> {
    let event = EventRecord {
        id: new
            .message_id
            .clone()
            .unwrap_or_else(|| ctx.new_id("evt", new.now_ms)),
        tenant_id: new.tenant_id.clone(),
        kind: EventKind::Direct,
        event_type: "direct".into(),
        payload: new.payload,
        idempotency_key: None,
        correlation_id: new.correlation_id.clone(),
        traceparent: new.traceparent.clone(),
        created_ms: new.now_ms,
    };
    insert_event(&ctx.conn, &event)?;
    let id = ctx.new_id("dlv", new.now_ms);
    let host = herald_core::url_policy::TargetUrl::parse(&new.url)
        .map(|u| u.host_str().to_string())
        .unwrap_or_default();
    ctx.conn
        .prepare_cached(
            "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, dispatch_key, url, secret, headers, \
             retry_policy, timeout_ms, status, cycle_started_ms, due_ms, correlation_id, reference_id, \
             created_ms, updated_ms, auth) \
             VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10, ?10, ?11, ?12, ?10, ?10, ?13)",
        )?
        .execute(params![
            id,
            new.tenant_id,
            event.id,
            format!("direct:{host}"),
            new.url,
            new.secret,
            serde_json::to_string(&new.headers)?,
            serde_json::to_string(&new.retry_policy)?,
            new.timeout_ms,
            new.now_ms,
            new.correlation_id,
            new.reference_id,
            new.auth,
        ])?;
    ctx.conn
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1"
        ))?
        .query_row([&id], rows::delivery)
        .map_err(StoreError::from)
}

pub fn replay_endpoint(
    ctx: &mut WriteCtx,
    tenant_id: &str,
    endpoint_id: &str,
    since_ms: i64,
    now_ms: i64,
) -> StoreResult<u64> {
    let endpoint = super::endpoints::get_endpoint(&ctx.conn, tenant_id, endpoint_id)?;
    let events: Vec<EventRecord> = ctx
        .conn
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = ?1 AND kind = 'event' AND created_ms >= ?2 \
             ORDER BY created_ms, id LIMIT ?3"
        ))?
        .query_map(params![tenant_id, since_ms, REPLAY_LIMIT], rows::event)?
        .collect::<Result<_, _>>()?;
    let mut created = 0;
    for event in events
        .iter()
        .filter(|e| filter_matches(&endpoint.event_types, &e.event_type))
    {
        let id = ctx.new_id("dlv", now_ms);
        let mut replayed = event.clone();
        replayed.created_ms = now_ms;
        insert_fanned_out(&ctx.conn, &id, &replayed, &endpoint.id, &endpoint.url)?;
        created += 1;
    }
    Ok(created)
}

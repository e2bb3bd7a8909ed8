//! Endpoints: plain CRUD on the connection they are given.

use herald_core::event_type::filter_matches;
use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{self, ENDPOINT_COLUMNS};
use crate::error::{StoreError, StoreResult};
use crate::model::EndpointRecord;
use crate::query::{EndpointFilter, Listing, Page};

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("serializing plain data cannot fail")
}

pub fn create_endpoint(conn: &Connection, ep: &EndpointRecord) -> StoreResult<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO endpoints ({ENDPOINT_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    ))?
    .execute(params![
        ep.id,
        ep.tenant_id,
        ep.url,
        json(&ep.event_types),
        ep.secret,
        ep.previous_secret,
        ep.previous_secret_expires_ms,
        json(&ep.headers),
        json(&ep.retry_policy),
        ep.timeout_ms,
        ep.rate_limit_per_s,
        ep.max_in_flight,
        ep.disabled,
        ep.description,
        json(&ep.metadata),
        ep.created_ms,
        ep.updated_ms,
    ])?;
    Ok(())
}

pub fn get_endpoint(conn: &Connection, tenant_id: &str, id: &str) -> StoreResult<EndpointRecord> {
    conn.prepare_cached(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = ?1 AND tenant_id = ?2"
    ))?
    .query_row([id, tenant_id], rows::endpoint)
    .optional()?
    .ok_or(StoreError::NotFound("endpoint"))
}

/// Endpoints are few per tenant; the type filter is applied here so that `*` and `prefix.*` filters match the
/// way fan-out matches them.
pub fn list_endpoints(
    conn: &Connection,
    tenant_id: &str,
    filter: &EndpointFilter,
    page: &Page,
) -> StoreResult<Listing<EndpointRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE tenant_id = ?1 AND id > ?2 ORDER BY id"
    ))?;
    let after = page.after.clone().unwrap_or_default();
    let mut matching = stmt
        .query_map([tenant_id, after.as_str()], rows::endpoint)?
        .filter(|r| match (r, &filter.event_type) {
            (Ok(ep), Some(t)) => filter_matches(&ep.event_types, t),
            _ => true,
        });
    let skip = if page.after.is_some() {
        0
    } else {
        page.offset as usize
    };
    let mut items = Vec::with_capacity(page.limit.min(256));
    for row in matching.by_ref().skip(skip) {
        if items.len() == page.limit {
            let next_after = items.last().map(|ep: &EndpointRecord| ep.id.clone());
            return Ok(Listing { items, next_after });
        }
        items.push(row?);
    }
    Ok(Listing {
        items,
        next_after: None,
    })
}

pub fn update_endpoint(conn: &Connection, ep: &EndpointRecord) -> StoreResult<()> {
    if !ep.disabled {
        // Enabling a disabled endpoint starts its health afresh (a closed breaker).
        conn.prepare_cached(crate::sql::RESET_ON_ENABLE)?
            .execute(params![ep.id, ep.tenant_id, true])?;
    }
    let changed = conn
        .prepare_cached(crate::sql::UPDATE_ENDPOINT)?
        .execute(params![
            ep.url,
            json(&ep.event_types),
            json(&ep.headers),
            json(&ep.retry_policy),
            ep.timeout_ms,
            ep.rate_limit_per_s,
            ep.max_in_flight,
            ep.disabled,
            ep.description,
            json(&ep.metadata),
            ep.updated_ms,
            ep.id,
            ep.tenant_id,
        ])?;
    if changed == 0 {
        return Err(StoreError::NotFound("endpoint"));
    }
    if !ep.disabled {
        // Deliveries parked while the endpoint was disabled become due again.
        conn.prepare_cached(
            "UPDATE deliveries SET due_ms = ?2, updated_ms = ?2 \
             WHERE endpoint_id = ?1 AND status IN ('pending', 'retrying') AND due_ms IS NULL",
        )?
        .execute(params![ep.id, ep.updated_ms])?;
    }
    Ok(())
}

/// Replace (or, with `previous_until`, rotate) an endpoint's signing secret.
pub fn set_endpoint_secret(
    conn: &Connection,
    tenant_id: &str,
    id: &str,
    secret: &str,
    previous_until: Option<i64>,
    now_ms: i64,
) -> StoreResult<EndpointRecord> {
    let changed = match previous_until {
        Some(until) => conn
            .prepare_cached(crate::sql::ROTATE_ENDPOINT_SECRET)?
            .execute(params![until, secret, now_ms, id, tenant_id])?,
        None => conn
            .prepare_cached(crate::sql::SET_ENDPOINT_SECRET)?
            .execute(params![secret, now_ms, id, tenant_id])?,
    };
    if changed == 0 {
        return Err(StoreError::NotFound("endpoint"));
    }
    get_endpoint(conn, tenant_id, id)
}

pub fn recover_endpoint(
    conn: &Connection,
    tenant_id: &str,
    id: &str,
    since_ms: i64,
    now_ms: i64,
) -> StoreResult<u64> {
    get_endpoint(conn, tenant_id, id)?;
    let recovered = conn
        .prepare_cached(crate::sql::RECOVER_ENDPOINT)?
        .execute(params![
            now_ms,
            id,
            tenant_id,
            since_ms,
            crate::sql::RECOVER_LIMIT
        ])?;
    Ok(recovered as u64)
}

pub fn delete_endpoint(
    conn: &Connection,
    tenant_id: &str,
    id: &str,
    now_ms: i64,
) -> StoreResult<()> {
    let deleted = conn.execute(
        "DELETE FROM endpoints WHERE id = ?1 AND tenant_id = ?2",
        [id, tenant_id],
    )?;
    if deleted == 0 {
        return Err(StoreError::NotFound("endpoint"));
    }
    conn.execute(
        "UPDATE deliveries SET status = 'cancelled', due_ms = NULL, lease_owner = NULL, \
         last_error = 'endpoint deleted', updated_ms = ?2 \
         WHERE endpoint_id = ?1 AND status IN ('pending', 'retrying', 'in_progress')",
        params![id, now_ms],
    )?;
    conn.execute(crate::sql::FORGET_DISPATCH_KEY, [id])?;
    conn.execute(crate::sql::FORGET_KEY_PACING, [id])?;
    Ok(())
}

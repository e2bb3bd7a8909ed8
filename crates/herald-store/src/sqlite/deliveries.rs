//! Reading and operating on deliveries: the status API's queries and the operator's retry, cancel and delete.

use herald_core::status::DeliveryStatus;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::rows::{self, ATTEMPT_COLUMNS, DELIVERY_COLUMNS, EVENT_COLUMNS};
use crate::error::{StoreError, StoreResult};
use crate::model::{AttemptRecord, DeliveryRecord, EventRecord};
use crate::query::{DeliveryFilter, Listing, Page};
use crate::sql;

pub fn get_event(conn: &Connection, tenant_id: &str, id: &str) -> StoreResult<EventRecord> {
    conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1 AND tenant_id = ?2"
    ))?
    .query_row([id, tenant_id], rows::event)
    .optional()?
    .ok_or(StoreError::NotFound("event"))
}

pub fn get_delivery(conn: &Connection, tenant_id: &str, id: &str) -> StoreResult<DeliveryRecord> {
    conn.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1 AND tenant_id = ?2"
    ))?
    .query_row([id, tenant_id], rows::delivery)
    .optional()?
    .ok_or(StoreError::NotFound("delivery"))
}

pub fn list_attempts(
    conn: &Connection,
    tenant_id: &str,
    delivery_id: &str,
) -> StoreResult<Vec<AttemptRecord>> {
    get_delivery(conn, tenant_id, delivery_id)?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = ?1 ORDER BY number"
    ))?;
    let attempts = stmt
        .query_map([delivery_id], rows::attempt)?
        .collect::<Result<_, _>>()?;
    Ok(attempts)
}

/// `WHERE` clause and its parameters for a filter, starting with the tenant.
fn where_clause(tenant_id: &str, filter: &DeliveryFilter) -> (String, Vec<Value>) {
    let mut sql = String::from("tenant_id = ?");
    let mut args = vec![Value::Text(tenant_id.to_string())];
    let mut add = |column: &str, value: Value| {
        sql.push_str(&format!(" AND {column} ?"));
        args.push(value);
    };
    if let Some(status) = filter.status {
        add("status =", Value::Text(status.as_str().into()));
    }
    for (column, value) in [
        ("endpoint_id =", &filter.endpoint_id),
        ("event_id =", &filter.event_id),
        ("correlation_id =", &filter.correlation_id),
        ("reference_id =", &filter.reference_id),
    ] {
        if let Some(v) = value {
            add(column, Value::Text(v.clone()));
        }
    }
    if let Some(before) = filter.updated_before_ms {
        add("updated_ms <", Value::Integer(before));
    }
    if filter.finished_only {
        sql.push_str(" AND status IN ('delivered', 'failed', 'cancelled')");
    }
    (sql, args)
}

pub fn list_deliveries(
    conn: &Connection,
    tenant_id: &str,
    filter: &DeliveryFilter,
    page: &Page,
) -> StoreResult<Listing<DeliveryRecord>> {
    let (mut sql, mut args) = where_clause(tenant_id, filter);
    if let Some(after) = &page.after {
        sql.push_str(" AND id < ?");
        args.push(Value::Text(after.clone()));
    }
    let offset = if page.after.is_some() {
        0
    } else {
        page.offset as i64
    };
    args.push(Value::Integer(page.limit as i64 + 1));
    args.push(Value::Integer(offset));
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {sql} ORDER BY id DESC LIMIT ? OFFSET ?"
    ))?;
    let mut items: Vec<DeliveryRecord> = stmt
        .query_map(params_from_iter(args), rows::delivery)?
        .collect::<Result<_, _>>()?;
    let next_after = if items.len() > page.limit {
        items.truncate(page.limit);
        items.last().map(|d| d.id.clone())
    } else {
        None
    };
    Ok(Listing { items, next_after })
}

pub fn count_deliveries(
    conn: &Connection,
    tenant_id: &str,
    filter: &DeliveryFilter,
) -> StoreResult<u64> {
    let (sql, args) = where_clause(tenant_id, filter);
    let count: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM deliveries WHERE {sql}"))?
        .query_row(params_from_iter(args), |r| r.get(0))?;
    Ok(count as u64)
}

pub fn retry_delivery(
    conn: &Connection,
    tenant_id: &str,
    id: &str,
    now_ms: i64,
) -> StoreResult<DeliveryRecord> {
    let changed = conn
        .prepare_cached(sql::RETRY_DELIVERY)?
        .execute(params![now_ms, id, tenant_id])?;
    if changed == 0 {
        let current = get_delivery(conn, tenant_id, id)?;
        return Err(StoreError::Conflict(format!(
            "delivery is {}; it can be retried once the attempt in flight ends",
            current.status.as_str()
        )));
    }
    get_delivery(conn, tenant_id, id)
}

pub fn cancel_delivery(
    conn: &Connection,
    tenant_id: &str,
    id: &str,
    now_ms: i64,
) -> StoreResult<DeliveryRecord> {
    let changed = conn
        .prepare_cached(sql::CANCEL_DELIVERY)?
        .execute(params![now_ms, id, tenant_id])?;
    if changed == 0 {
        let current = get_delivery(conn, tenant_id, id)?;
        return Err(StoreError::Conflict(format!(
            "delivery is already {}; only unfinished deliveries can be cancelled",
            current.status.as_str()
        )));
    }
    get_delivery(conn, tenant_id, id)
}

pub fn delete_delivery(conn: &Connection, tenant_id: &str, id: &str) -> StoreResult<()> {
    let deleted = conn.execute(
        "DELETE FROM deliveries WHERE id = ?1 AND tenant_id = ?2",
        [id, tenant_id],
    )?;
    if deleted == 0 {
        return Err(StoreError::NotFound("delivery"));
    }
    conn.execute("DELETE FROM attempts WHERE delivery_id = ?1", [id])?;
    Ok(())
}

/// Deletes matching deliveries except those in flight (their worker still owns them).
pub fn delete_deliveries(
    conn: &Connection,
    tenant_id: &str,
    filter: &DeliveryFilter,
) -> StoreResult<u64> {
    let (sql, args) = where_clause(tenant_id, filter);
    let in_flight = DeliveryStatus::InProgress.as_str();
    conn.execute(
        &format!(
            "DELETE FROM attempts WHERE delivery_id IN \
             (SELECT id FROM deliveries WHERE {sql} AND status <> '{in_flight}')"
        ),
        params_from_iter(args.clone()),
    )?;
    let deleted = conn.execute(
        &format!("DELETE FROM deliveries WHERE {sql} AND status <> '{in_flight}'"),
        params_from_iter(args),
    )?;
    Ok(deleted as u64)
}

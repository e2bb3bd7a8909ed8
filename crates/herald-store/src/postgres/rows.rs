//! Mapping between PostgreSQL rows and store records (same column lists as the SQLite store).

use std::str::FromStr;

use herald_core::status::DeliveryStatus;
use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

use crate::error::{StoreError, StoreResult};
use crate::model::{
    AttemptRecord, DeliveryRecord, EndpointRecord, EventKind, EventRecord, TenantRecord,
};

/// Column `i` of `row`, as `T`.
pub fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> StoreResult<T> {
    row.try_get(i)
        .map_err(|e| StoreError::Internal(format!("unreadable column {i}: {e}")))
}

fn json<T: serde::de::DeserializeOwned>(row: &Row, i: usize) -> StoreResult<T> {
    Ok(serde_json::from_str(&get::<String>(row, i)?)?)
}

fn u32_of(v: i64) -> u32 {
    v.clamp(0, i64::from(u32::MAX)) as u32
}

/// `id, created_ms`
pub fn tenant(row: &Row) -> StoreResult<TenantRecord> {
    Ok(TenantRecord {
        id: get(row, 0)?,
        created_ms: get(row, 1)?,
    })
}

/// Row selected with `ENDPOINT_COLUMNS`.
pub fn endpoint(row: &Row) -> StoreResult<EndpointRecord> {
    Ok(EndpointRecord {
        id: get(row, 0)?,
        tenant_id: get(row, 1)?,
        url: get(row, 2)?,
        event_types: json(row, 3)?,
        secret: get(row, 4)?,
        previous_secret: get(row, 5)?,
        previous_secret_expires_ms: get(row, 6)?,
        headers: json(row, 7)?,
        retry_policy: json(row, 8)?,
        timeout_ms: u32_of(get(row, 9)?),
        rate_limit_per_s: get::<Option<i64>>(row, 10)?.map(u32_of),
        max_in_flight: u32_of(get(row, 11)?),
        disabled: get(row, 12)?,
        description: get(row, 13)?,
        metadata: json(row, 14)?,
        created_ms: get(row, 15)?,
        updated_ms: get(row, 16)?,
    })
}

/// Row selected with `DELIVERY_COLUMNS`.
pub fn delivery(row: &Row) -> StoreResult<DeliveryRecord> {
    let status_text: String = get(row, 5)?;
    let status = DeliveryStatus::from_str(&status_text)
        .map_err(|_| StoreError::Internal(format!("unknown stored status {status_text}")))?;
    let due_ms: Option<i64> = get(row, 7)?;
    let waiting = matches!(status, DeliveryStatus::Pending | DeliveryStatus::Retrying);
    Ok(DeliveryRecord {
        id: get(row, 0)?,
        tenant_id: get(row, 1)?,
        event_id: get(row, 2)?,
        endpoint_id: get(row, 3)?,
        url: get(row, 4)?,
        status,
        attempt_count: u32_of(get(row, 6)?),
        next_attempt_ms: if waiting { due_ms } else { None },
        last_status_code: get::<Option<i64>>(row, 8)?.map(|c| c.clamp(0, 999) as u16),
        last_error: get(row, 9)?,
        correlation_id: get(row, 10)?,
        reference_id: get(row, 11)?,
        created_ms: get(row, 12)?,
        updated_ms: get(row, 13)?,
    })
}

/// Row selected with `EVENT_COLUMNS`.
pub fn event(row: &Row) -> StoreResult<EventRecord> {
    let kind: String = get(row, 2)?;
    Ok(EventRecord {
        id: get(row, 0)?,
        tenant_id: get(row, 1)?,
        kind: EventKind::parse(&kind)
            .ok_or_else(|| StoreError::Internal(format!("unknown event kind {kind}")))?,
        event_type: get(row, 3)?,
        payload: get(row, 4)?,
        idempotency_key: get(row, 5)?,
        correlation_id: get(row, 6)?,
        created_ms: get(row, 7)?,
        traceparent: get(row, 8)?,
    })
}

/// Row selected with `ATTEMPT_COLUMNS`.
pub fn attempt(row: &Row) -> StoreResult<AttemptRecord> {
    Ok(AttemptRecord {
        number: u32_of(get(row, 0)?),
        started_ms: get(row, 1)?,
        duration_ms: u32_of(get(row, 2)?),
        status_code: get::<Option<i64>>(row, 3)?.map(|c| c.clamp(0, 999) as u16),
        error: get(row, 4)?,
        response_body: get(row, 5)?,
    })
}

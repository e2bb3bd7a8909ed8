//! Mapping between SQLite rows and store records.

use std::str::FromStr;

use herald_core::status::DeliveryStatus;
use rusqlite::Row;

use crate::model::{
    AttemptRecord, DeliveryRecord, EndpointRecord, EventKind, EventRecord, TenantRecord,
};
pub use crate::sql::{ATTEMPT_COLUMNS, DELIVERY_COLUMNS, ENDPOINT_COLUMNS, EVENT_COLUMNS};

fn bad_value(index: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("malformed stored {what}").into(),
    )
}

fn json_column<T: serde::de::DeserializeOwned>(
    row: &Row,
    index: usize,
    what: &str,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|_| bad_value(index, what))
}

/// Read a tenant row (`id, created_ms`).
pub fn tenant(row: &Row) -> rusqlite::Result<TenantRecord> {
    Ok(TenantRecord {
        id: row.get(0)?,
        created_ms: row.get(1)?,
    })
}

/// Read an endpoint row selected with [`ENDPOINT_COLUMNS`].
pub fn endpoint(row: &Row) -> rusqlite::Result<EndpointRecord> {
    Ok(EndpointRecord {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        url: row.get(2)?,
        event_types: json_column(row, 3, "event_types")?,
        secret: row.get(4)?,
        previous_secret: row.get(5)?,
        previous_secret_expires_ms: row.get(6)?,
        headers: json_column(row, 7, "headers")?,
        retry_policy: json_column(row, 8, "retry_policy")?,
        timeout_ms: row.get(9)?,
        rate_limit_per_s: row.get(10)?,
        max_in_flight: row.get(11)?,
        disabled: row.get(12)?,
        description: row.get(13)?,
        metadata: json_column(row, 14, "metadata")?,
        created_ms: row.get(15)?,
        updated_ms: row.get(16)?,
    })
}

/// Read a delivery row selected with [`DELIVERY_COLUMNS`].
pub fn delivery(row: &Row) -> rusqlite::Result<DeliveryRecord> {
    let status_text: String = row.get(5)?;
    let status = DeliveryStatus::from_str(&status_text).map_err(|_| bad_value(5, "status"))?;
    let due_ms: Option<i64> = row.get(7)?;
    let waiting = matches!(status, DeliveryStatus::Pending | DeliveryStatus::Retrying);
    Ok(DeliveryRecord {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        event_id: row.get(2)?,
        endpoint_id: row.get(3)?,
        url: row.get(4)?,
        status,
        attempt_count: row.get(6)?,
        next_attempt_ms: if waiting { due_ms } else { None },
        last_status_code: row.get(8)?,
        last_error: row.get(9)?,
        correlation_id: row.get(10)?,
        reference_id: row.get(11)?,
        created_ms: row.get(12)?,
        updated_ms: row.get(13)?,
    })
}

/// Read an event row selected with [`EVENT_COLUMNS`].
pub fn event(row: &Row) -> rusqlite::Result<EventRecord> {
    let kind: String = row.get(2)?;
    Ok(EventRecord {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        kind: EventKind::parse(&kind).ok_or_else(|| bad_value(2, "event kind"))?,
        event_type: row.get(3)?,
        payload: row.get(4)?,
        idempotency_key: row.get(5)?,
        correlation_id: row.get(6)?,
        created_ms: row.get(7)?,
        traceparent: row.get(8)?,
    })
}

/// Read an attempt row selected with [`ATTEMPT_COLUMNS`].
pub fn attempt(row: &Row) -> rusqlite::Result<AttemptRecord> {
    Ok(AttemptRecord {
        number: row.get(0)?,
        started_ms: row.get(1)?,
        duration_ms: row.get(2)?,
        status_code: row.get(3)?,
        error: row.get(4)?,
        response_body: row.get(5)?,
    })
}

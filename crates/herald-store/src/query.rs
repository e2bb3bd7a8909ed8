//! Filters and pagination for list, delete and cleanup operations.

use herald_core::status::DeliveryStatus;

/// One page of a listing: either keyset (`after`, stable under concurrent inserts) or offset (compatibility routes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Most records to return.
    pub limit: usize,
    /// Keyset position: return records after this id in listing order.
    pub after: Option<String>,
    /// Records to skip (used only when `after` is `None`).
    pub offset: u64,
}

impl Page {
    /// The first page of `limit` records.
    pub fn first(limit: usize) -> Self {
        Page {
            limit,
            after: None,
            offset: 0,
        }
    }
}

/// A page of records and the id to continue after, if there are more.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    /// The records.
    pub items: Vec<T>,
    /// Pass as `Page::after` to get the next page; `None` at the end.
    pub next_after: Option<String>,
}

/// Which endpoints to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointFilter {
    /// Only endpoints whose filters accept this event type.
    pub event_type: Option<String>,
}

/// Which deliveries to list or delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Status equals.
    pub status: Option<DeliveryStatus>,
    /// Endpoint equals.
    pub endpoint_id: Option<String>,
    /// Event equals.
    pub event_id: Option<String>,
    /// Correlation id equals.
    pub correlation_id: Option<String>,
    /// Reference id equals.
    pub reference_id: Option<String>,
    /// Last changed before this time.
    pub updated_before_ms: Option<i64>,
    /// Only deliveries that have ended (delivered, failed, cancelled).
    pub finished_only: bool,
}

impl DeliveryFilter {
    /// True when no condition is set (bulk operations refuse that).
    pub fn is_empty(&self) -> bool {
        self == &DeliveryFilter::default()
    }
}

/// A listing from `items` read with one row more than `limit`: that extra row, if it came, says there is a
/// next page, which starts after the last kept item (`key`).
pub fn into_listing<T>(items: &mut Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> Listing<T> {
    let next_after = if items.len() > limit {
        items.truncate(limit);
        items.last().map(&key)
    } else {
        None
    };
    Listing {
        items: std::mem::take(items),
        next_after,
    }
}

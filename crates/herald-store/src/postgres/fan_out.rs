//! The fan-out of published events on PostgreSQL: their delivery rows, inserted in one statement, and
//! the notification that wakes the engines of every node.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;

use super::endpoints::{NOTIFY_PARAMS, NOTIFY_WORK};
use super::pg_error;
use super::pipelined::Write;
use crate::error::StoreResult;
use crate::model::*;

/// One fanned-out delivery to insert, due at its event's time.
pub struct NewDeliveryRow {
    /// `dlv_…`
    pub id: String,
    /// The event it carries (tenant, correlation and time are taken from it).
    pub event: EventRecord,
    /// Target endpoint.
    pub endpoint_id: String,
    /// The endpoint's URL at creation.
    pub url: String,
}

/// Insert `rows` (`$1`…`$7`: ids, tenants, events, endpoints, URLs, correlation ids, times), due at once.
pub(super) const INSERT_DELIVERIES: &str = "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, dispatch_key, url, status, \
     cycle_started_ms, due_ms, correlation_id, created_ms, updated_ms) \
     SELECT u.id, u.tenant_id, u.event_id, u.endpoint_id, u.endpoint_id, u.url, 'pending', u.created, \
     u.created, u.correlation_id, u.created, u.created \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[]) \
     AS u(id, tenant_id, event_id, endpoint_id, url, correlation_id, created)";

/// Fanned-out deliveries as the parameters of one insert, and the notification that wakes listening nodes.
pub(super) struct FanOut<'a> {
    ids: Vec<&'a str>,
    tenants: Vec<&'a str>,
    events: Vec<&'a str>,
    endpoints: Vec<&'a str>,
    urls: Vec<&'a str>,
    correlation_ids: Vec<&'a str>,
    created: Vec<i64>,
}

impl<'a> FanOut<'a> {
    /// The columns of `rows`.
    pub(super) fn new(rows: &'a [NewDeliveryRow]) -> FanOut<'a> {
        let col = |f: fn(&'a NewDeliveryRow) -> &'a str| rows.iter().map(f).collect::<Vec<&str>>();
        FanOut {
            ids: col(|r| &r.id),
            tenants: col(|r| &r.event.tenant_id),
            events: col(|r| &r.event.id),
            endpoints: col(|r| &r.endpoint_id),
            urls: col(|r| &r.url),
            correlation_ids: col(|r| &r.event.correlation_id),
            created: rows.iter().map(|r| r.event.created_ms).collect(),
        }
    }

    /// The insert's parameters.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 7] {
        [
            &self.ids,
            &self.tenants,
            &self.events,
            &self.endpoints,
            &self.urls,
            &self.correlation_ids,
            &self.created,
        ]
    }

    /// The insert and the notification, prepared (once per connection).
    pub(super) async fn prepare(&self, tx: &impl GenericClient) -> StoreResult<[Statement; 2]> {
        let insert = tx
            .prepare_cached(INSERT_DELIVERIES)
            .await
            .map_err(pg_error)?;
        let notify = tx.prepare_cached(NOTIFY_WORK).await.map_err(pg_error)?;
        Ok([insert, notify])
    }

    /// The insert (with `params`, from [`FanOut::params`]) as a transaction's last write, and the
    /// notification to send once it committed; neither without rows.
    pub(super) fn writes<'s>(
        &self,
        statements: &'s [Statement; 2],
        params: &'s [&'s (dyn ToSql + Sync); 7],
    ) -> (Vec<Write<'s>>, Vec<Write<'s>>) {
        if self.ids.is_empty() {
            return (Vec::new(), Vec::new());
        }
        (
            vec![(&statements[0], params)],
            vec![(&statements[1], NOTIFY_PARAMS)],
        )
    }
}

/// Insert fanned-out deliveries in one statement and notify listening nodes.
pub async fn insert_deliveries(
    tx: &impl GenericClient,
    rows: &[NewDeliveryRow],
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let fan_out = FanOut::new(rows);
    let [insert, notify] = fan_out.prepare(tx).await?;
    let params = fan_out.params();
    // Pipelined, the notification after the insert: one round trip for both, and the insert's error if
    // it fails.
    let insert = async { tx.execute(&insert, &params).await.map_err(pg_error) };
    let notify = async { tx.execute(&notify, NOTIFY_PARAMS).await.map_err(pg_error) };
    tokio::try_join!(biased; insert, notify)?;
    Ok(())
}

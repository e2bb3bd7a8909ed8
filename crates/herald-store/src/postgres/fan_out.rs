//! The fan-out of published events on PostgreSQL: their delivery rows, inserted in one statement, and
//! the notification that wakes the engines of every node.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;

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

/// Notify `$1` (the work channel) with `$2`, the dispatch keys given work, comma-separated.
pub(super) const NOTIFY_KEYS: &str = "SELECT pg_notify($1, $2)";

/// Most keys a notification names; a batch that gave work to more names none, and the nodes' walks find
/// them. Keeps each notification small however wide the fan-out.
pub const MOST_NOTIFIED_KEYS: usize = 32;

/// The payload that names `keys` ([`NOTIFY_KEYS`]): each once, in order, or empty past
/// [`MOST_NOTIFIED_KEYS`].
fn key_payload(keys: &[&str]) -> String {
    let mut named: Vec<&str> = Vec::new();
    for key in keys {
        if !named.contains(key) {
            if named.len() == MOST_NOTIFIED_KEYS {
                return String::new();
            }
            named.push(key);
        }
    }
    named.join(",")
}

/// The dispatch keys a work notification's `payload` names ([`NOTIFY_KEYS`]; none if empty).
pub fn notified_keys(payload: &str) -> impl Iterator<Item = &str> {
    payload.split(',').filter(|k| !k.is_empty())
}

/// Fanned-out deliveries as the parameters of one insert, and the notification that wakes listening nodes.
pub(super) struct FanOut<'a> {
    ids: Vec<&'a str>,
    tenants: Vec<&'a str>,
    events: Vec<&'a str>,
    endpoints: Vec<&'a str>,
    urls: Vec<&'a str>,
    correlation_ids: Vec<&'a str>,
    created: Vec<i64>,
    /// The notification's payload: the keys given work.
    keys: String,
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
            keys: key_payload(&col(|r| &r.endpoint_id)),
        }
    }

    /// The notification's parameters: the work channel and the keys given work.
    pub(super) fn notify_params(&self) -> [&(dyn ToSql + Sync); 2] {
        [&super::WORK_CHANNEL, &self.keys]
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
        let notify = tx.prepare_cached(NOTIFY_KEYS).await.map_err(pg_error)?;
        Ok([insert, notify])
    }

    /// The insert (with `params`, from [`FanOut::params`]) as a transaction's last write, and the
    /// notification (with `notify`, from [`FanOut::notify_params`]) to send once it committed; neither
    /// without rows.
    pub(super) fn writes<'s>(
        &self,
        statements: &'s [Statement; 2],
        (params, notify): (
            &'s [&'s (dyn ToSql + Sync); 7],
            &'s [&'s (dyn ToSql + Sync); 2],
        ),
    ) -> (Vec<Write<'s>>, Vec<Write<'s>>) {
        if self.ids.is_empty() {
            return (Vec::new(), Vec::new());
        }
        (
            vec![(&statements[0], params)],
            vec![(&statements[1], notify)],
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
    let (params, notify_params) = (fan_out.params(), fan_out.notify_params());
    // Pipelined, the notification after the insert: one round trip for both, and the insert's error if
    // it fails.
    let insert = async { tx.execute(&insert, &params).await.map_err(pg_error) };
    let notify = async { tx.execute(&notify, &notify_params).await.map_err(pg_error) };
    tokio::try_join!(biased; insert, notify)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_names_each_key_once_up_to_a_bound() {
        assert_eq!(key_payload(&["b", "a", "b"]), "b,a");
        assert_eq!(notified_keys("b,a").collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(notified_keys("").count(), 0);
        let many: Vec<String> = (0..=MOST_NOTIFIED_KEYS).map(|i| format!("k{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            key_payload(&many[..MOST_NOTIFIED_KEYS]).split(',').count(),
            MOST_NOTIFIED_KEYS
        );
        assert_eq!(
            key_payload(&many),
            "",
            "past the bound a notification names none"
        );
    }
}

//! Accepting work on PostgreSQL besides publishes (see `batch.rs`): direct deliveries, endpoint replays, and the
//! idempotency-key check. Each runs in one transaction and notifies listening nodes on commit.

use deadpool_postgres::GenericClient;
use herald_core::event_type::filter_matches;

use super::endpoints::{get_endpoint, notify_work};
use super::fan_out::{insert_deliveries, NewDeliveryRow};
use super::rows;
use super::{pg_error, IdSource, PostgresStore};
use crate::error::StoreResult;
use crate::model::*;
use crate::sql::{DELIVERY_COLUMNS, EVENT_COLUMNS};

const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
const REPLAY_LIMIT: i64 = 100_000;

async fn insert_event(c: &impl GenericClient, e: &EventRecord) -> StoreResult<()> {
    let sql =
        format!("INSERT INTO events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
    let stmt = c.prepare_cached(&sql).await.map_err(pg_error)?;
    c.execute(
        &stmt,
        &[
            &e.id,
            &e.tenant_id,
            &e.kind.as_str(),
            &e.event_type,
            &e.payload,
            &e.idempotency_key,
            &e.correlation_id,
            &e.created_ms,
            &e.traceparent,
        ],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

/// The earlier answer for an idempotency key used within 24 h, claiming the key otherwise.
pub(super) async fn claim_key(
    c: &impl GenericClient,
    tenant: &str,
    key: &str,
    event_id: &str,
    now_ms: i64,
) -> StoreResult<Option<Published>> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO idempotency_keys (tenant_id, key, event_id, created_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, key) DO UPDATE SET event_id = EXCLUDED.event_id, created_ms = EXCLUDED.created_ms \
             WHERE idempotency_keys.created_ms < $5 RETURNING event_id",
        )
        .await
        .map_err(pg_error)?;
    let cutoff = now_ms - IDEMPOTENCY_WINDOW_MS;
    if c.query_opt(&stmt, &[&tenant, &key, &event_id, &now_ms, &cutoff])
        .await
        .map_err(pg_error)?
        .is_some()
    {
        return Ok(None);
    }
    let earlier: String = c
        .query_one(
            "SELECT event_id FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
            &[&tenant, &key],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1");
    let event = rows::event(
        &c.query_one(sql.as_str(), &[&earlier])
            .await
            .map_err(pg_error)?,
    )?;
    let refs = c
        .query(
            "SELECT id, endpoint_id FROM deliveries WHERE event_id = $1 ORDER BY id",
            &[&earlier],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|r| {
            Ok(DeliveryRef {
                id: rows::get(r, 0)?,
                endpoint_id: rows::get(r, 1)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Some(Published {
        event,
        deliveries: refs,
        replayed: true,
    }))
}

pub async fn create_direct(
    store: &PostgresStore,
    new: NewDirectDelivery,
) -> StoreResult<DeliveryRecord> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg_error)?;
    let record = insert_direct(&tx, &store.ids, new).await?;
    tx.commit().await.map_err(pg_error)?;
    Ok(record)
}

/// Insert a direct delivery (and the message it carries) inside the caller's transaction.
pub(super) async fn insert_direct(
    tx: &impl GenericClient,
    ids: &IdSource,
    new: NewDirectDelivery,
) -> StoreResult<DeliveryRecord> {
    let event = EventRecord {
        id: new
            .message_id
            .clone()
            .unwrap_or_else(|| ids.next("evt", new.now_ms)),
        tenant_id: new.tenant_id.clone(),
        kind: EventKind::Direct,
        event_type: "direct".into(),
        payload: new.payload,
        idempotency_key: None,
        correlation_id: new.correlation_id.clone(),
        traceparent: new.traceparent.clone(),
        created_ms: new.now_ms,
    };
    insert_event(tx, &event).await?;
    let id = ids.next("dlv", new.now_ms);
    let host = herald_core::url_policy::TargetUrl::parse(&new.url)
        .map(|u| u.host_str().to_string())
        .unwrap_or_default();
    tx.execute(
        "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, dispatch_key, url, secret, headers, \
         retry_policy, timeout_ms, status, cycle_started_ms, due_ms, correlation_id, reference_id, created_ms, \
         updated_ms, auth) \
         VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $8, $9, 'pending', $10, $10, $11, $12, $10, $10, $13)",
        &[
            &id,
            &new.tenant_id,
            &event.id,
            &format!("direct:{host}"),
            &new.url,
            &new.secret,
            &serde_json::to_string(&new.headers)?,
            &serde_json::to_string(&new.retry_policy)?,
            &i64::from(new.timeout_ms),
            &new.now_ms,
            &new.correlation_id,
            &new.reference_id,
            &new.auth,
        ],
    )
    .await
    .map_err(pg_error)?;
    notify_work(tx).await?;
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1");
    rows::delivery(&tx.query_one(sql.as_str(), &[&id]).await.map_err(pg_error)?)
}

pub async fn replay_endpoint(
    store: &PostgresStore,
    tenant_id: &str,
    id: &str,
    since_ms: i64,
    now_ms: i64,
) -> StoreResult<u64> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg_error)?;
    let endpoint = get_endpoint(&tx, tenant_id, id).await?;
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND kind = 'event' AND created_ms >= $2 \
         ORDER BY created_ms, id LIMIT $3"
    );
    let found = tx
        .query(sql.as_str(), &[&tenant_id, &since_ms, &REPLAY_LIMIT])
        .await
        .map_err(pg_error)?;
    let mut count = 0;
    let mut rows_to_insert = Vec::new();
    for row in &found {
        let event = rows::event(row)?;
        if filter_matches(&endpoint.event_types, &event.event_type) {
            let mut replayed = event.clone();
            replayed.created_ms = now_ms;
            rows_to_insert.push(NewDeliveryRow {
                id: store.new_id("dlv", now_ms),
                event: replayed,
                endpoint_id: endpoint.id.clone(),
                url: endpoint.url.clone(),
            });
            count += 1;
        }
    }
    insert_deliveries(&tx, &rows_to_insert).await?;
    tx.commit().await.map_err(pg_error)?;
    Ok(count)
}

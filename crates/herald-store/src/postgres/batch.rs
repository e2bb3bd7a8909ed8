//! Group commit for publishes on PostgreSQL. A few batcher tasks each take whatever publishes are queued and
//! write them in one transaction: the events with one statement, the fan-out with another, one notification,
//! one commit. Concurrent publishers therefore share round trips and fsyncs, as they do on the SQLite writer.
//! If a batch fails for a reason other than an unreachable database, its publishes are retried one by one so
//! that one bad publish cannot fail the others.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use herald_core::event_type::{filter_matches, filter_names};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::fan_out::{insert_deliveries, FanOut, NewDeliveryRow};
use super::pipelined::PipelinedTx;
use super::publish::claim_key;
use super::{pg_error, rows, IdSource};
use crate::error::{StoreError, StoreResult};
use crate::model::*;

/// Batcher tasks per node (each holds one connection while it writes).
const BATCHERS: usize = 4;
/// Most publishes folded into one transaction.
const MAX_BATCH: usize = 256;

type Job = (NewEvent, oneshot::Sender<StoreResult<Published>>);

/// Handle used by `Store::publish`.
pub struct Publisher {
    jobs: mpsc::Sender<Job>,
}

impl Publisher {
    /// Start the batcher tasks.
    pub fn start(pool: Pool, ids: IdSource, timeout: Duration) -> Publisher {
        let (jobs, queue) = mpsc::channel::<Job>(8 * MAX_BATCH);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..BATCHERS {
            tokio::spawn(run(queue.clone(), pool.clone(), ids.clone(), timeout));
        }
        Publisher { jobs }
    }

    /// Publish through the next batch; resolves after its commit.
    pub async fn publish(&self, event: NewEvent) -> StoreResult<Published> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((event, reply))
            .await
            .map_err(|_| StoreError::Unavailable("publisher stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("publisher stopped".into()))?
    }
}

async fn run(queue: Arc<Mutex<mpsc::Receiver<Job>>>, pool: Pool, ids: IdSource, timeout: Duration) {
    loop {
        let mut batch = Vec::new();
        {
            let mut queue = queue.lock().await;
            match queue.recv().await {
                Some(job) => batch.push(job),
                None => return,
            }
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        let events: Vec<NewEvent> = batch.iter().map(|(e, _)| e.clone()).collect();
        match write(&pool, &ids, events, timeout).await {
            Ok(results) => {
                for ((_, reply), result) in batch.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(e) if batch.len() == 1 => {
                let (_, reply) = batch.pop().expect("one job");
                let _ = reply.send(Err(e));
            }
            // The database is away: every publish of the batch would fail the same way, so answer them all
            // at once rather than waiting out the timeout once per publish.
            Err(StoreError::Unavailable(reason)) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(StoreError::Unavailable(reason.clone())));
                }
            }
            Err(_) => {
                for (event, reply) in batch {
                    let one = write(&pool, &ids, vec![event], timeout).await;
                    let _ = reply.send(one.map(|mut r| r.remove(0)));
                }
            }
        }
    }
}

async fn write(
    pool: &Pool,
    ids: &IdSource,
    events: Vec<NewEvent>,
    timeout: Duration,
) -> StoreResult<Vec<Published>> {
    let work = async {
        let client = pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("no database connection: {e}")))?;
        let tx = PipelinedTx::new(client);
        let staged = tx
            .first(stage_all(tx.client(), ids, events, EventKind::Event))
            .await?;
        // The fan-out goes out with the `COMMIT`, and its notification right behind it, on its own:
        // PostgreSQL makes every transaction that notifies commit one after the other, fsync included,
        // which would undo the group commit of concurrent batches. A notification that a crash loses
        // costs the other nodes a poll interval, nothing more.
        let fan_out = FanOut::new(&staged.deliveries);
        let statements = fan_out.prepare(tx.client()).await?;
        let (params, notify) = (fan_out.params(), fan_out.notify_params());
        let (writes, after) = fan_out.writes(&statements, (&params, &notify));
        tx.commit_then(&writes, &after).await?;
        Ok(staged.answers)
    };
    tokio::time::timeout(timeout * 2, work)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the database did not answer in time".into(),
            ))
        })
}

/// Store every event (all of `kind`) and its fan-out inside `tx`; an event whose idempotency key was used in
/// the last 24 h gets the earlier answer instead.
pub(super) async fn publish_all(
    tx: &impl GenericClient,
    ids: &IdSource,
    events: Vec<NewEvent>,
    kind: EventKind,
) -> StoreResult<Vec<Published>> {
    let staged = stage_all(tx, ids, events, kind).await?;
    insert_deliveries(tx, &staged.deliveries).await?;
    Ok(staged.answers)
}

/// What [`stage_all`] wrote, and the fan-out it left to insert.
pub(super) struct Staged {
    /// One answer per publish, in order.
    pub(super) answers: Vec<Published>,
    /// The deliveries the new events fan out to, not yet inserted.
    pub(super) deliveries: Vec<NewDeliveryRow>,
}

/// Store every event (all of `kind`) inside `tx`, as [`publish_all`] does, and return its fan-out
/// without inserting it.
async fn stage_all(
    tx: &impl GenericClient,
    ids: &IdSource,
    events: Vec<NewEvent>,
    kind: EventKind,
) -> StoreResult<Staged> {
    let mut answers: Vec<Option<Published>> = Vec::with_capacity(events.len());
    let mut fresh: Vec<(usize, EventRecord)> = Vec::with_capacity(events.len());
    for (i, new) in events.into_iter().enumerate() {
        let event = EventRecord {
            id: ids.next("evt", new.now_ms),
            tenant_id: new.tenant_id,
            kind,
            event_type: new.event_type,
            payload: new.payload,
            idempotency_key: new.idempotency_key,
            correlation_id: new.correlation_id,
            traceparent: new.traceparent,
            created_ms: new.now_ms,
        };
        if let Some(key) = &event.idempotency_key {
            if let Some(earlier) =
                claim_key(tx, &event.tenant_id, key, &event.id, event.created_ms).await?
            {
                answers.push(Some(earlier));
                continue;
            }
        }
        answers.push(None);
        fresh.push((i, event));
    }
    let mut tenants: Vec<&str> = fresh.iter().map(|(_, e)| e.tenant_id.as_str()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    // Sent together (pipelined): the events and the endpoints they fan out to cost one round trip. In
    // this order, so that when the insert fails (the statement after it then fails only because the
    // transaction did), its error is the one reported.
    let (_, endpoints) = tokio::try_join!(
        biased;
        insert_events(tx, fresh.iter().map(|(_, e)| e)),
        fan_out_targets(tx, &tenants)
    )?;

    // An operational event goes only where a filter names it.
    let accepts = if kind == EventKind::Operational {
        filter_names
    } else {
        filter_matches
    };
    let mut deliveries = Vec::new();
    for (i, event) in fresh {
        let mut refs = Vec::new();
        for (endpoint_id, url, filters) in endpoints.get(&event.tenant_id).into_iter().flatten() {
            if accepts(filters, &event.event_type) {
                let id = ids.next("dlv", event.created_ms);
                deliveries.push(NewDeliveryRow {
                    id: id.clone(),
                    event: event.clone(),
                    endpoint_id: endpoint_id.clone(),
                    url: url.clone(),
                });
                refs.push(DeliveryRef {
                    id,
                    endpoint_id: Some(endpoint_id.clone()),
                });
            }
        }
        answers[i] = Some(Published {
            event,
            deliveries: refs,
            replayed: false,
        });
    }
    Ok(Staged {
        answers: answers
            .into_iter()
            .map(|a| a.expect("every event answered"))
            .collect(),
        deliveries,
    })
}

/// The enabled endpoints of the tenants `$1`, looked up tenant by tenant: as `tenant_id = ANY($1)`,
/// a plan made while `endpoints` was young reads every tenant's endpoints on each publish.
pub(super) const FAN_OUT_TARGETS: &str = "SELECT ep.tenant_id, ep.id, ep.url, ep.event_types \
     FROM UNNEST($1::text[]) AS t(id) \
     CROSS JOIN LATERAL (SELECT tenant_id, id, url, event_types FROM endpoints \
                         WHERE tenant_id = t.id AND NOT disabled OFFSET 0) ep \
     ORDER BY ep.id";

/// Insert events (`$1`…`$9`, one array per column).
pub(super) const INSERT_EVENTS: &str = "INSERT INTO events (id, tenant_id, kind, event_type, payload, idempotency_key, correlation_id, created_ms, \
     traceparent) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
     $7::text[], $8::bigint[], $9::text[])";

/// The enabled endpoints of `tenants`, by tenant: id, URL and event-type filters.
async fn fan_out_targets(
    tx: &impl GenericClient,
    tenants: &[&str],
) -> StoreResult<HashMap<String, Vec<(String, String, Vec<String>)>>> {
    let mut endpoints: HashMap<String, Vec<(String, String, Vec<String>)>> = HashMap::new();
    let stmt = tx.prepare_cached(FAN_OUT_TARGETS).await.map_err(pg_error)?;
    for row in tx.query(&stmt, &[&tenants]).await.map_err(pg_error)? {
        let filters: Vec<String> = serde_json::from_str(&rows::get::<String>(&row, 3)?)?;
        endpoints.entry(rows::get(&row, 0)?).or_default().push((
            rows::get(&row, 1)?,
            rows::get(&row, 2)?,
            filters,
        ));
    }
    Ok(endpoints)
}

async fn insert_events<'a>(
    tx: &impl GenericClient,
    events: impl Iterator<Item = &'a EventRecord>,
) -> StoreResult<()> {
    let events: Vec<&EventRecord> = events.collect();
    if events.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&EventRecord) -> &str| events.iter().map(|e| f(e)).collect::<Vec<&str>>();
    let keys: Vec<Option<&str>> = events
        .iter()
        .map(|e| e.idempotency_key.as_deref())
        .collect();
    let created: Vec<i64> = events.iter().map(|e| e.created_ms).collect();
    let stmt = tx.prepare_cached(INSERT_EVENTS).await.map_err(pg_error)?;
    tx.execute(
        &stmt,
        &[
            &col(|e| &e.id),
            &col(|e| &e.tenant_id),
            &col(|e| e.kind.as_str()),
            &col(|e| &e.event_type),
            &col(|e| &e.payload),
            &keys,
            &col(|e| &e.correlation_id),
            &created,
            &events
                .iter()
                .map(|e| e.traceparent.as_deref())
                .collect::<Vec<Option<&str>>>(),
        ],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

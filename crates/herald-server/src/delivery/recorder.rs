//! Writes attempt results in batches: whatever has queued up while the previous batch committed goes into the
//! next one, so recording costs one commit per batch rather than one per delivery.
//!
//! The same commit claims work for the slots the batch freed ([`Store::record_and_claim`]), so a busy
//! endpoint's next deliveries are leased without a round trip of their own. If that combined write fails,
//! its claim is given back and the results are written on their own, as below.
//!
//! No result can block the others. While the store is unavailable a batch is retried with backoff (the
//! results wait in memory, and the bounded queue in front of the recorder makes attempts wait too). A batch
//! the store refuses for any other reason is split in halves until the refused result stands alone; that one
//! is written again without its response body, and if even that fails it is dropped with an error in the log:
//! its lease then expires and the delivery is attempted again (at-least-once).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use herald_store::{AttemptResult, NextState, Store, StoreError};
use tokio::sync::{mpsc, watch, Mutex, OwnedSemaphorePermit, Semaphore};

use super::dispatcher::Dispatch;
use crate::failpoint;

/// Most results per commit.
const MAX_BATCH: usize = 2048;

/// Where the recorder refills freed slots: the engine's dispatcher state while it runs (weak, so the
/// recorder never keeps the attempt queue open), and whether the engine is stopping (then nothing is claimed).
pub struct Refill {
    pub dispatch: Weak<Dispatch>,
    pub stop: watch::Receiver<bool>,
}

/// Batches written at once. One: results gather in the queue while a batch is written, so the next batch
/// (and its refill claim) is as large as the work allows. Measured on both stores, two or four concurrent
/// batches were no faster on SQLite and up to 2.5 times slower on PostgreSQL, whose claims queue on the
/// claim lock. The refill's attempts still start before the batch's commit is durable.
const BATCHES_IN_FLIGHT: usize = 1;

/// Record results until every sender is gone, the queue is empty and every batch is written.
pub async fn run(
    store: Arc<dyn Store>,
    owner: String,
    metrics: Arc<crate::metrics::Metrics>,
    telemetry: Arc<crate::telemetry::Telemetry>,
    results: Arc<Mutex<mpsc::Receiver<AttemptResult>>>,
    refill: Refill,
) {
    let mut results = results.lock().await;
    let writing = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        failpoint::check(failpoint::points::RECORDER, &owner);
        let turn = writing
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        if results.recv_many(&mut batch, MAX_BATCH).await == 0 {
            break;
        }
        let dispatch = refill.dispatch.upgrade();
        let refilling = !*refill.stop.borrow();
        tokio::spawn(write_batch(
            store.clone(),
            (metrics.clone(), telemetry.clone()),
            std::mem::take(&mut batch),
            (dispatch, refilling),
            turn,
        ));
    }
    let _ = writing.acquire_many(BATCHES_IN_FLIGHT as u32).await;
}

/// Write one batch once the claims that leased its deliveries have committed and, when slots are free and
/// `refilling`, claim their refill in the same commit; the refill's attempts start as soon as the claim is
/// made, before the commit is durable.
async fn write_batch(
    store: Arc<dyn Store>,
    (metrics, telemetry): (
        Arc<crate::metrics::Metrics>,
        Arc<crate::telemetry::Telemetry>,
    ),
    batch: Vec<AttemptResult>,
    (dispatch, refilling): (Option<Arc<Dispatch>>, bool),
    _turn: OwnedSemaphorePermit,
) {
    if let Some(dispatch) = &dispatch {
        // The batch's leases are freed in the commit that records it, which its refill claims in. Each
        // result was counted before it was sent, and the channel orders that before this.
        dispatch
            .context
            .unrecorded
            .fetch_sub(batch.len(), Ordering::Relaxed);
        dispatch
            .committing
            .settled(batch.iter().map(|r| r.owner.as_str()))
            .await;
    }
    let dispatch = dispatch.filter(|_| refilling);
    let (n, started) = (batch.len(), std::time::Instant::now());
    let mut span = telemetry.span("record", None);
    span.count("herald.results", n);
    let earliest_retry = batch
        .iter()
        .filter_map(|r| match r.next {
            NextState::RetryAt(at) => Some(at),
            _ => None,
        })
        .min();
    let reservation = dispatch.as_ref().and_then(|d| d.reserve());
    match (dispatch, reservation) {
        (Some(dispatch), Some(reservation)) => {
            let (owner, request) = (reservation.owner.clone(), reservation.request.clone());
            let claimed = dispatch
                .claim_with(reservation, |claimed| {
                    store.record_and_claim(batch.clone(), &request, claimed)
                })
                .await;
            span.count("herald.claimed", claimed.count);
            tracing::debug!(claimed = claimed.count, "refilled freed slots");
            match claimed.written {
                Ok(()) if claimed.more => dispatch.work_ready.notify_one(),
                Ok(()) => {
                    if let Some(at) = earliest_retry {
                        dispatch.due_at(at);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, results = n,
                        "cannot record attempts and refill their slots; recording them alone");
                    dispatch.unsettled(&owner);
                    record(store.as_ref(), batch).await;
                    dispatch.work_ready.notify_one();
                }
            }
        }
        (dispatch, _) => {
            record(store.as_ref(), batch).await;
            // The slots these results freed are the dispatcher's to refill.
            if let Some(dispatch) = dispatch {
                dispatch.work_ready.notify_one();
            }
        }
    }
    let elapsed = started.elapsed();
    tracing::debug!(
        results = n,
        elapsed_us = elapsed.as_micros() as u64,
        "recorded a batch"
    );
    metrics.recorded(n, elapsed.as_secs_f64());
}

/// Where results are written: the store, or a stand-in in tests.
#[async_trait::async_trait]
trait ResultSink: Send + Sync {
    async fn record_attempts(&self, batch: Vec<AttemptResult>) -> Result<(), StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
}

#[async_trait::async_trait]
impl ResultSink for dyn Store {
    async fn record_attempts(&self, batch: Vec<AttemptResult>) -> Result<(), StoreError> {
        Store::record_attempts(self, batch).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Store::ping(self).await
    }
}

/// Write `batch`, however long the store is away, splitting it if the store refuses it.
async fn record<S: ResultSink + ?Sized>(store: &S, batch: Vec<AttemptResult>) {
    let mut pending = vec![batch];
    while let Some(batch) = pending.pop() {
        match write(store, &batch).await {
            Ok(()) => {}
            Err(e) if batch.len() > 1 => {
                tracing::warn!(error = %e, results = batch.len(), "the store refused a batch of results; splitting it");
                let mut first = batch;
                let second = first.split_off(first.len() / 2);
                pending.push(second);
                pending.push(first);
            }
            Err(e) => {
                let mut bare = batch;
                let result = &mut bare[0];
                tracing::warn!(error = %e, delivery_id = %result.delivery_id,
                    "the store refused an attempt result; writing it without the response body");
                result.attempt.response_body = None;
                if let Err(e) = write(store, &bare).await {
                    tracing::error!(error = %e, delivery_id = %bare[0].delivery_id,
                        "cannot record an attempt result; the delivery will be attempted again when its lease expires");
                }
            }
        }
    }
}

/// One write, retried while the store is unavailable; any other error is returned. An error while the store
/// does not even answer a ping counts as unavailability, whatever it said.
async fn write<S: ResultSink + ?Sized>(
    store: &S,
    batch: &[AttemptResult],
) -> Result<(), StoreError> {
    let mut backoff = Duration::from_millis(50);
    loop {
        let error = match store.record_attempts(batch.to_vec()).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Unavailable(e)) => e,
            Err(e) if store.ping().await.is_err() => e.to_string(),
            Err(e) => return Err(e),
        };
        tracing::warn!(error = %error, results = batch.len(), "cannot record attempts yet; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use herald_store::{AttemptRecord, NextState};

    use super::*;

    /// Refuses any batch holding a result of `poison` with a response body; counts writes.
    #[derive(Default)]
    struct Picky {
        written: Mutex<Vec<AttemptResult>>,
        refusals: Mutex<u32>,
    }

    #[async_trait::async_trait]
    impl ResultSink for Picky {
        async fn record_attempts(&self, batch: Vec<AttemptResult>) -> Result<(), StoreError> {
            if batch
                .iter()
                .any(|r| r.delivery_id == "poison" && r.attempt.response_body.is_some())
            {
                *self.refusals.lock().unwrap() += 1;
                return Err(StoreError::Invalid("cannot hold that".into()));
            }
            self.written.lock().unwrap().extend(batch);
            Ok(())
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    fn result(id: &str) -> AttemptResult {
        AttemptResult {
            delivery_id: id.into(),
            owner: "node.0".into(),
            attempt: AttemptRecord {
                number: 1,
                started_ms: 0,
                duration_ms: 1,
                status_code: Some(200),
                error: None,
                response_body: Some("body".into()),
            },
            was_4xx: false,
            next: NextState::Delivered,
            health: None,
            now_ms: 1,
        }
    }

    #[tokio::test]
    async fn a_refused_result_is_isolated_and_written_without_its_body() {
        let sink = Picky::default();
        let mut batch: Vec<AttemptResult> = (0..15).map(|i| result(&format!("d{i}"))).collect();
        batch.insert(7, result("poison"));
        record(&sink, batch).await;
        let written = sink.written.lock().unwrap();
        assert_eq!(written.len(), 16, "every result is written");
        let poison = written.iter().find(|r| r.delivery_id == "poison").unwrap();
        assert_eq!(poison.attempt.response_body, None);
        assert!(written
            .iter()
            .filter(|r| r.delivery_id != "poison")
            .all(|r| r.attempt.response_body.is_some()));
        // Halving 16 down to the one bad result: 1 + 4 refused batches, then its body-less write works.
        assert_eq!(*sink.refusals.lock().unwrap(), 5);
    }
}

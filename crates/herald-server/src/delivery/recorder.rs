//! Writes attempt results in batches: whatever has queued up while the previous batch committed goes into the
//! next one, so recording costs one commit per batch rather than one per delivery.

use std::sync::Arc;
use std::time::Duration;

use herald_store::{AttemptResult, Store};
use tokio::sync::mpsc;

/// Most results per commit.
const MAX_BATCH: usize = 2048;

/// Record results until every sender is gone and the queue is empty. A failed write is retried (with backoff)
/// until it succeeds: the results stay in memory meanwhile, and if the node dies first the leases expire and
/// the deliveries are attempted again (at-least-once).
pub async fn run(store: Arc<dyn Store>, mut results: mpsc::UnboundedReceiver<AttemptResult>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = results.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match results.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            match store.record_attempts(batch.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, results = batch.len(), "cannot record attempts yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}

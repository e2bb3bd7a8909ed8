//! Purges finished deliveries past their retention in small batches, so the dead-letter set holds 30 days (by
//! default) and the database does not grow without bound.

use std::sync::Arc;
use std::time::Duration;

use herald_store::Store;

use crate::app::now_ms;
use crate::config::DeliveryConfig;

/// Rows deleted per transaction: small enough never to hold the writer for long.
const BATCH: usize = 500;
const DAY_MS: i64 = 86_400_000;

/// Purge now and then every `purge_interval_ms`, until the task is dropped.
pub async fn run(store: Arc<dyn Store>, config: DeliveryConfig) {
    let mut tick = tokio::time::interval(Duration::from_millis(config.purge_interval_ms.max(1000)));
    loop {
        tick.tick().await;
        let now = now_ms();
        let failed_before = now - i64::from(config.dead_letter_ttl_days) * DAY_MS;
        let others_before = now - i64::from(config.retention_days) * DAY_MS;
        let mut purged = 0;
        loop {
            match store
                .purge_finished(failed_before, others_before, BATCH)
                .await
            {
                Ok(n) => {
                    purged += n;
                    if (n as usize) < BATCH {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "purging finished deliveries failed; will try again");
                    break;
                }
            }
        }
        if purged > 0 {
            tracing::info!(purged, "purged finished deliveries past retention");
        }
    }
}

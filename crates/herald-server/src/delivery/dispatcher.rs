//! The dispatcher loop: claim due deliveries under a lease and start an attempt task for each.
//!
//! Every claim leases its rows to an owner id of its own (`<node>.<n>`). When a claim fails, its answer may
//! have been lost after the database committed it; the dispatcher then gives back every lease held by that
//! claim's owner id before claiming again, so a database hiccup delays those deliveries by a retry, not by
//! the lease length.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_store::{ClaimRequest, Store};
use tokio::sync::{watch, Notify, Semaphore};

use super::attempt::{self, AttemptContext};
use crate::app::now_ms;
use crate::config::DeliveryConfig;
use crate::failpoint;

/// Most deliveries claimed in one go.
const CLAIM_BATCH: usize = 512;
/// Free slots worth a claim while a backlog is draining.
const MIN_CLAIM: usize = 32;
/// Longest wait for [`MIN_CLAIM`] slots before claiming anyway.
const CLAIM_GATHER: Duration = Duration::from_millis(2);

/// What the dispatcher keeps across restarts.
pub struct Dispatch {
    pub store: Arc<dyn Store>,
    pub config: DeliveryConfig,
    pub work_ready: Arc<Notify>,
    pub permits: Arc<Semaphore>,
    pub context: Arc<AttemptContext>,
    /// Owner ids of claims whose answer never came: their leases are given back before the next claim.
    pub unsettled: Mutex<Vec<String>>,
    claims: AtomicU64,
}

impl Dispatch {
    /// Dispatcher state for one engine.
    pub fn new(
        store: Arc<dyn Store>,
        config: DeliveryConfig,
        work_ready: Arc<Notify>,
        permits: Arc<Semaphore>,
        context: Arc<AttemptContext>,
    ) -> Dispatch {
        Dispatch {
            store,
            config,
            work_ready,
            permits,
            context,
            unsettled: Mutex::new(Vec::new()),
            claims: AtomicU64::new(0),
        }
    }

    /// Give back the leases of failed claims; false if the store still fails.
    async fn settle(&self) -> bool {
        let owners: Vec<String> = std::mem::take(&mut *self.unsettled.lock().expect("unsettled"));
        for (i, owner) in owners.iter().enumerate() {
            match self.store.release_owner(owner, now_ms()).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(owner = %owner, released = n, "gave back the leases of a claim whose answer was lost")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot give back the leases of a failed claim yet");
                    self.unsettled
                        .lock()
                        .expect("unsettled")
                        .extend_from_slice(&owners[i..]);
                    return false;
                }
            }
        }
        true
    }

    /// Claim and dispatch until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let ctx = &self.context;
        let mut failures = 0u32;
        let mut backlog = false;
        loop {
            if *shutdown.borrow() {
                return;
            }
            failpoint::check(failpoint::points::DISPATCHER, &ctx.owner);
            if !self.settle().await {
                failures += 1;
                if wait_or_stop(&mut shutdown, backoff(failures)).await {
                    return;
                }
                continue;
            }
            if self.permits.available_permits() == 0 {
                tokio::select! {
                    _ = ctx.slot_freed.notified() => continue,
                    _ = shutdown.changed() => return,
                }
            }
            if backlog {
                // More work is waiting: let a few slots free up so the next claim is a batch, not one row
                // (each claim is a transaction).
                let gather = async {
                    while self.permits.available_permits() < MIN_CLAIM.min(self.config.concurrency)
                    {
                        ctx.slot_freed.notified().await;
                    }
                };
                let _ = tokio::time::timeout(CLAIM_GATHER, gather).await;
            }
            let free = self.permits.available_permits().min(CLAIM_BATCH);
            let owner: Arc<str> = format!(
                "{}.{}",
                ctx.owner,
                self.claims.fetch_add(1, Ordering::Relaxed)
            )
            .into();
            let request = ClaimRequest {
                owner: owner.to_string(),
                now_ms: now_ms(),
                lease_ms: self.config.lease_ms,
                limit: free,
                saturated: ctx.limits.saturated(),
                default_max_in_flight: self.config.default_max_in_flight,
            };
            let claimed = match self.store.claim_due(&request).await {
                Ok(claimed) => {
                    failures = 0;
                    claimed
                }
                Err(e) => {
                    failures += 1;
                    self.unsettled
                        .lock()
                        .expect("unsettled")
                        .push(owner.to_string());
                    let wait = backoff(failures);
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot claim deliveries");
                    if wait_or_stop(&mut shutdown, wait).await {
                        return;
                    }
                    continue;
                }
            };
            ctx.metrics.claimed(claimed.len());
            let full_batch = claimed.len() == free;
            backlog = full_batch;
            for delivery in claimed {
                let permit = self
                    .permits
                    .clone()
                    .try_acquire_owned()
                    .expect("a permit per claimed delivery");
                ctx.limits
                    .acquire(&delivery.dispatch_key, delivery.max_in_flight);
                tokio::spawn(attempt::run(ctx.clone(), owner.clone(), delivery, permit));
            }
            if full_batch {
                continue;
            }
            let idle = idle_wait(self.store.as_ref(), self.config.poll_interval_ms).await;
            tokio::select! {
                _ = self.work_ready.notified() => {}
                _ = ctx.slot_freed.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// 200 ms doubling to 6.4 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100 * 2u64.pow(failures.clamp(1, 6)))
}

/// Sleep `wait`; true if shutdown came first.
async fn wait_or_stop(shutdown: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

/// How long to sleep when nothing more could be claimed: until the next delivery falls due, at most the poll
/// interval. Work that is due but could not be claimed waits for its endpoint's slots to free up instead.
async fn idle_wait(store: &dyn Store, poll_interval_ms: u64) -> Duration {
    let poll = Duration::from_millis(poll_interval_ms);
    match store.next_due_ms().await {
        Ok(Some(due)) => {
            let wait = due - now_ms();
            if wait > 0 {
                poll.min(Duration::from_millis(wait as u64))
            } else {
                poll
            }
        }
        _ => poll,
    }
}

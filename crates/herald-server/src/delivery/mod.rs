//! The delivery engine: claims due deliveries from the store under a lease, sends them concurrently, and records
//! the outcomes in batches.
//!
//! ```text
//! publish ──commit──► work_ready ──► dispatcher ──claim_due (lease)──► attempt tasks ──► recorder ──record_attempts
//!                                       ▲                                    │
//!                                       └──────────── slot_freed ◄───────────┘
//! ```
//! Isolation: a global semaphore bounds requests in flight; per-endpoint limits ([`limits`]) keep one slow
//! endpoint from taking them all, and saturated endpoints are skipped in the claim itself.

mod attempt;
pub mod client;
mod janitor;
mod limits;
mod recorder;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use herald_store::{ClaimRequest, Store};
use tokio::sync::{mpsc, Notify, Semaphore};

use crate::app::now_ms;
use crate::config::DeliveryConfig;
use attempt::AttemptContext;
use client::DeliveryClient;
use herald_core::url_policy::UrlPolicy;

/// Most deliveries claimed in one go.
const CLAIM_BATCH: usize = 512;
/// Free slots worth a claim while a backlog is draining.
const MIN_CLAIM: usize = 32;
/// Longest wait for [`MIN_CLAIM`] slots before claiming anyway.
const CLAIM_GATHER: Duration = Duration::from_millis(2);
/// How long shutdown waits for attempts in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Live figures of a running engine, for `/health`.
#[derive(Clone)]
pub struct EngineStatus {
    permits: Arc<Semaphore>,
    capacity: usize,
}

impl EngineStatus {
    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }
    /// Most requests in flight at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// A configured engine, ready to [`run`](Engine::run).
pub struct Engine {
    store: Arc<dyn Store>,
    config: DeliveryConfig,
    work_ready: Arc<Notify>,
    permits: Arc<Semaphore>,
    context: Arc<AttemptContext>,
    results: mpsc::UnboundedReceiver<herald_store::AttemptResult>,
}

impl Engine {
    /// An engine for `store` that wakes on `work_ready` and leases work as `owner`.
    pub fn new(
        store: Arc<dyn Store>,
        config: DeliveryConfig,
        url_policy: Arc<UrlPolicy>,
        work_ready: Arc<Notify>,
        owner: String,
        authenticator: crate::auth_client::ServiceAuthenticator,
    ) -> Engine {
        let (results_tx, results) = mpsc::unbounded_channel();
        let context = Arc::new(AttemptContext {
            client: DeliveryClient::new(url_policy),
            limits: Default::default(),
            results: results_tx,
            slot_freed: Notify::new(),
            owner,
            authenticator,
        });
        Engine {
            permits: Arc::new(Semaphore::new(config.concurrency)),
            store,
            config,
            work_ready,
            context,
            results,
        }
    }

    /// Handle for `/health`.
    pub fn status(&self) -> EngineStatus {
        EngineStatus {
            permits: self.permits.clone(),
            capacity: self.config.concurrency,
        }
    }

    /// Deliver until `shutdown` resolves, then stop claiming, let attempts in flight finish (up to 30 s) and
    /// record their results.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Engine {
            store,
            config,
            work_ready,
            permits,
            context,
            results,
        } = self;
        let recorder = tokio::spawn(recorder::run(store.clone(), results));
        let janitor = tokio::spawn(janitor::run(store.clone(), config.clone()));
        tokio::pin!(shutdown);
        let mut failures = 0u32;
        let mut backlog = false;
        loop {
            if permits.available_permits() == 0 {
                tokio::select! {
                    _ = context.slot_freed.notified() => continue,
                    _ = &mut shutdown => break,
                }
            }
            if backlog {
                // More work is waiting: let a few slots free up so the next claim is a batch, not one row
                // (each claim is a transaction).
                let gather = async {
                    while permits.available_permits() < MIN_CLAIM.min(config.concurrency) {
                        context.slot_freed.notified().await;
                    }
                };
                let _ = tokio::time::timeout(CLAIM_GATHER, gather).await;
            }
            let free = permits.available_permits().min(CLAIM_BATCH);
            let saturated = context.limits.saturated();
            let request = ClaimRequest {
                owner: context.owner.clone(),
                now_ms: now_ms(),
                lease_ms: config.lease_ms,
                limit: free,
                saturated,
                default_max_in_flight: config.default_max_in_flight,
            };
            let claimed = match store.claim_due(&request).await {
                Ok(claimed) => {
                    failures = 0;
                    claimed
                }
                Err(e) => {
                    failures += 1;
                    let wait = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot claim deliveries");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => continue,
                        _ = &mut shutdown => break,
                    }
                }
            };
            let full_batch = claimed.len() == free;
            backlog = full_batch;
            for delivery in claimed {
                let permit = permits
                    .clone()
                    .try_acquire_owned()
                    .expect("a permit per claimed delivery");
                context
                    .limits
                    .acquire(&delivery.dispatch_key, delivery.max_in_flight);
                tokio::spawn(attempt::run(context.clone(), delivery, permit));
            }
            if full_batch {
                continue;
            }
            let idle = idle_wait(store.as_ref(), config.poll_interval_ms).await;
            tokio::select! {
                _ = work_ready.notified() => {}
                _ = context.slot_freed.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = &mut shutdown => break,
            }
        }
        janitor.abort();
        let all = config.concurrency as u32;
        if tokio::time::timeout(SHUTDOWN_GRACE, permits.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("attempts still in flight at shutdown; their leases will expire and they will be retried");
        }
        drop(context);
        if tokio::time::timeout(Duration::from_secs(10), recorder)
            .await
            .is_err()
        {
            tracing::warn!("some attempt results were not recorded before shutdown; those deliveries will be retried");
        }
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

//! The delivery engine: claims due deliveries from the store under a lease, sends them concurrently, and records
//! the outcomes in batches, refilling the slots they free in the same commit. A claim's attempts start as
//! soon as its leases are written, before its commit; their results wait for that commit.
//!
//! ```text
//! publish ──commit──► work_ready ──► dispatcher ──claim (lease)──► attempt tasks ──► recorder
//!                                                                      ▲                │
//!                                                                      └─ record_and_claim (refill)
//! ```
//! Isolation: a global semaphore bounds requests in flight; the store gives each endpoint at most its free
//! slots and shares every claim round robin across endpoints, so one slow or busy endpoint cannot take
//! the capacity the others need.

mod attempt;
pub mod client;
mod committing;
mod dispatcher;
pub mod hints;
mod idle;
mod janitor;
mod limits;
mod recorder;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_store::{AttemptResult, Store};
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::config::DeliveryConfig;
use crate::metrics::Metrics;
use crate::telemetry::Telemetry;

/// What the engine reports to: this node's metrics and its span exporter.
pub struct Instruments {
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Spans (or nothing).
    pub telemetry: Arc<Telemetry>,
}
use crate::outbound::Outbound;
use attempt::AttemptContext;
use client::DeliveryClient;
use dispatcher::Dispatch;

/// How long shutdown waits for attempts in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Pause before a task that panicked is started again.
const RESTART_DELAY: Duration = Duration::from_millis(200);

/// Whether the engine's long-running tasks are up, and how often they had to be restarted.
#[derive(Default)]
struct Liveness {
    dispatcher: AtomicBool,
    recorder: AtomicBool,
    restarts: AtomicU64,
}

/// Live figures of a running engine, for `/health`.
#[derive(Clone)]
pub struct EngineStatus {
    permits: Arc<Semaphore>,
    capacity: usize,
    liveness: Arc<Liveness>,
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
    /// Whether the dispatcher and the recorder are both running.
    pub fn running(&self) -> bool {
        self.liveness.dispatcher.load(Ordering::Acquire)
            && self.liveness.recorder.load(Ordering::Acquire)
    }
    /// How many times a panicked dispatcher or recorder was restarted.
    pub fn restarts(&self) -> u64 {
        self.liveness.restarts.load(Ordering::Relaxed)
    }
}

/// A configured engine, ready to [`run`](Engine::run).
pub struct Engine {
    dispatch: Arc<Dispatch>,
    results: Arc<tokio::sync::Mutex<mpsc::Receiver<AttemptResult>>>,
    liveness: Arc<Liveness>,
}

impl Engine {
    /// An engine for `store` that wakes on `work_ready` and leases work as `owner`; its requests go through
    /// `outbound`.
    pub fn new(
        store: Arc<dyn Store>,
        config: DeliveryConfig,
        outbound: &Outbound,
        work_ready: Arc<Notify>,
        owner: String,
        authenticator: crate::auth_client::ServiceAuthenticator,
        instruments: Instruments,
    ) -> Engine {
        let Instruments { metrics, telemetry } = instruments;
        // Bounded: when results cannot be written, attempts wait with their slots held, so claiming slows
        // down instead of results piling up in memory.
        let (results_tx, results) = mpsc::channel(config.concurrency.max(1));
        let context = Arc::new(AttemptContext {
            client: DeliveryClient::new(outbound),
            limits: limits::Limits::new(dispatcher::most_waiting(config.concurrency)),
            results: results_tx,
            slot_freed: Notify::new(),
            owner,
            authenticator,
            store: store.clone(),
            metrics,
            health: config.health,
            telemetry,
            hints: Arc::default(),
            unrecorded: Default::default(),
        });
        let permits = Arc::new(Semaphore::new(config.concurrency));
        Engine {
            dispatch: Arc::new(Dispatch::new(store, config, work_ready, permits, context)),
            results: Arc::new(tokio::sync::Mutex::new(results)),
            liveness: Arc::default(),
        }
    }

    /// Where this node's publishes hint the keys they gave work ([`hints`]).
    pub fn hints(&self) -> Arc<hints::Hints> {
        self.dispatch.context.hints.clone()
    }

    /// Handle for `/health`.
    pub fn status(&self) -> EngineStatus {
        EngineStatus {
            permits: self.dispatch.permits.clone(),
            capacity: self.dispatch.config.concurrency,
            liveness: self.liveness.clone(),
        }
    }

    /// Deliver until `shutdown` resolves, then stop claiming, let attempts in flight finish (up to 30 s) and
    /// record their results. A dispatcher or recorder that panics is restarted; `/health` answers 503 until
    /// it runs again.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Engine {
            dispatch,
            results,
            liveness,
        } = self;
        let (stop_tx, stop) = watch::channel(false);
        let recorder = tokio::spawn(supervise_recorder(
            dispatch.clone(),
            stop.clone(),
            results,
            liveness.clone(),
        ));
        let janitor = tokio::spawn(janitor::run(
            dispatch.store.clone(),
            dispatch.config.clone(),
        ));
        let dispatcher = tokio::spawn(supervise_dispatcher(dispatch.clone(), stop, liveness));
        shutdown.await;
        let _ = stop_tx.send(true);
        let _ = dispatcher.await;
        janitor.abort();
        let all = dispatch.config.concurrency as u32;
        if tokio::time::timeout(SHUTDOWN_GRACE, dispatch.permits.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("attempts still in flight at shutdown; their leases will expire and they will be retried");
        }
        // The recorder ends once every sender (the attempt context) is gone and the queue is drained.
        drop(dispatch);
        if tokio::time::timeout(Duration::from_secs(10), recorder)
            .await
            .is_err()
        {
            tracing::warn!("some attempt results were not recorded before shutdown; those deliveries will be retried");
        }
    }
}

/// Whether a finished task panicked (logged), as opposed to ending normally.
fn panicked(ended: Result<(), tokio::task::JoinError>, what: &str) -> bool {
    match ended {
        Ok(()) => false,
        Err(e) if e.is_panic() => {
            tracing::error!(task = what, "{what} panicked; restarting it");
            true
        }
        Err(_) => false,
    }
}

async fn supervise_dispatcher(
    dispatch: Arc<Dispatch>,
    stop: watch::Receiver<bool>,
    liveness: Arc<Liveness>,
) {
    loop {
        liveness.dispatcher.store(true, Ordering::Release);
        let task: JoinHandle<()> = tokio::spawn(dispatch.clone().run(stop.clone()));
        let ended = task.await;
        liveness.dispatcher.store(false, Ordering::Release);
        if !panicked(ended, "the dispatcher") || *stop.borrow() {
            return;
        }
        liveness.restarts.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(RESTART_DELAY).await;
    }
}

async fn supervise_recorder(
    dispatch: Arc<Dispatch>,
    stop: watch::Receiver<bool>,
    results: Arc<tokio::sync::Mutex<mpsc::Receiver<AttemptResult>>>,
    liveness: Arc<Liveness>,
) {
    let store = dispatch.store.clone();
    let owner = dispatch.context.owner.clone();
    let metrics = dispatch.context.metrics.clone();
    let telemetry = dispatch.context.telemetry.clone();
    let weak = Arc::downgrade(&dispatch);
    drop(dispatch);
    loop {
        liveness.recorder.store(true, Ordering::Release);
        let task = tokio::spawn(recorder::run(
            store.clone(),
            owner.clone(),
            metrics.clone(),
            telemetry.clone(),
            results.clone(),
            recorder::Refill {
                dispatch: weak.clone(),
                stop: stop.clone(),
            },
        ));
        let ended = task.await;
        liveness.recorder.store(false, Ordering::Release);
        if !panicked(ended, "the recorder") {
            return;
        }
        liveness.restarts.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(RESTART_DELAY).await;
    }
}

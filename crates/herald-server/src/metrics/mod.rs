//! Prometheus metrics: typed families in one registry (the `prometheus-client` crate), updated on the hot
//! path with atomic operations and encoded at scrape time in the Prometheus text format.
//!
//! Seed 003's names are kept verbatim so its dashboards keep working (`webhook_delivery_total`,
//! `webhook_delivery_seconds`, `task_processing_total`, `task_processing_seconds`); Herald's own start with
//! `herald_`. Labels stay low-cardinality: outcome classes, job kinds and the node name, never an endpoint,
//! event or job id.

mod text;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use herald_store::{CircuitCounts, StoreStats};

/// `worker_id` of seed 003's metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Worker {
    worker_id: String,
}

/// `status` and `worker_id` of `webhook_delivery_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryStatus {
    status: &'static str,
    worker_id: String,
}

/// `mode` and `worker_id` of `task_processing_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskMode {
    mode: &'static str,
    worker_id: String,
}

/// `status`, `mode` and `worker_id` of `task_processing_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskStatus {
    status: &'static str,
    mode: &'static str,
    worker_id: String,
}

/// One label, `outcome`, `state` or `status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueState {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Service {
    service: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobState {
    status: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// How an attempt ended, for the delivery counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    /// 2xx: the delivery is done.
    Delivered,
    /// Failed; another attempt is scheduled.
    Retrying,
    /// Failed for good (the dead-letter set).
    Failed,
}

impl AttemptEnd {
    const ALL: [AttemptEnd; 3] = [
        AttemptEnd::Delivered,
        AttemptEnd::Retrying,
        AttemptEnd::Failed,
    ];

    fn index(self) -> usize {
        match self {
            AttemptEnd::Delivered => 0,
            AttemptEnd::Retrying => 1,
            AttemptEnd::Failed => 2,
        }
    }

    fn seed_status(self) -> &'static str {
        match self {
            AttemptEnd::Delivered => "success",
            AttemptEnd::Retrying => "retry",
            AttemptEnd::Failed => "failure",
        }
    }
    fn outcome(self) -> &'static str {
        match self {
            AttemptEnd::Delivered => "delivered",
            AttemptEnd::Retrying => "retrying",
            AttemptEnd::Failed => "failed",
        }
    }
}

/// What a scrape reads from the store and the node, set just before encoding.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Queue counts, when the store answered.
    pub queue: Option<StoreStats>,
    /// Seconds the oldest due delivery has waited.
    pub oldest_due_age_s: Option<f64>,
    /// Jobs per status.
    pub jobs: Vec<(String, u64)>,
    /// Long polls held on this node.
    pub long_polls: u64,
    /// Requests in flight on this node's engine.
    pub engine_in_flight: Option<u64>,
    /// Endpoint breakers not closed, when the store answered.
    pub circuits: Option<CircuitCounts>,
}

/// Every metric of a node.
pub struct Metrics {
    registry: Registry,
    worker: Worker,
    webhook_delivery: Family<DeliveryStatus, Counter>,
    webhook_delivery_seconds: Histograms<Worker>,
    task_processing: Family<TaskStatus, Counter>,
    task_processing_seconds: Histograms<TaskMode>,
    events_published: Counter,
    deliveries: Family<Outcome, Counter>,
    attempt_seconds: Histogram,
    claim_batch: Histogram,
    record_batch: Histogram,
    record_commit_seconds: Histogram,
    queue: Family<QueueState, Gauge>,
    breakers: Family<QueueState, Gauge>,
    breaker_status: Family<Service, Gauge>,
    oldest_due_age: Gauge<f64, AtomicU64>,
    jobs: Family<JobState, Gauge>,
    long_polls: Gauge,
    engine_in_flight: Gauge,
    scrape_errors: Counter,
    /// Handles resolved once, so that counting an attempt is a few atomic operations with no lookup or
    /// allocation: per [`AttemptEnd`] (delivered, retrying, failed) the seed 003 and the Herald counter.
    attempt_counters: [(Counter, Counter); 3],
    attempt_seconds_seed: Histogram,
}

fn seconds_buckets() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn batch_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 13))
}

impl Metrics {
    /// The registry of a node named `worker_id` (seed 003's label).
    pub fn new(worker_id: &str) -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            worker: Worker {
                worker_id: worker_id.to_string(),
            },
            webhook_delivery: Family::default(),
            webhook_delivery_seconds: Family::new_with_constructor(seconds_buckets),
            task_processing: Family::default(),
            task_processing_seconds: Family::new_with_constructor(seconds_buckets),
            events_published: Counter::default(),
            deliveries: Family::default(),
            attempt_seconds: seconds_buckets(),
            claim_batch: batch_buckets(),
            record_batch: batch_buckets(),
            record_commit_seconds: seconds_buckets(),
            queue: Family::default(),
            breakers: Family::default(),
            breaker_status: Family::default(),
            oldest_due_age: Gauge::default(),
            jobs: Family::default(),
            long_polls: Gauge::default(),
            engine_in_flight: Gauge::default(),
            scrape_errors: Counter::default(),
            attempt_counters: Default::default(),
            attempt_seconds_seed: Histogram::new(std::iter::empty()),
            registry: Registry::default(),
        };
        let attempt_counters = AttemptEnd::ALL.map(|end| {
            let seed = m
                .webhook_delivery
                .get_or_create(&DeliveryStatus {
                    status: end.seed_status(),
                    worker_id: worker_id.to_string(),
                })
                .clone();
            let herald = m
                .deliveries
                .get_or_create(&Outcome {
                    outcome: end.outcome(),
                })
                .clone();
            (seed, herald)
        });
        let attempt_seconds_seed = m.webhook_delivery_seconds.get_or_create(&m.worker).clone();
        registry.register(
            "webhook_delivery",
            "Delivery attempts by result (success, retry, failure)",
            m.webhook_delivery.clone(),
        );
        registry.register(
            "webhook_delivery_seconds",
            "Duration of delivery attempts",
            m.webhook_delivery_seconds.clone(),
        );
        registry.register(
            "task_processing",
            "Jobs ended, by status and route kind (mode)",
            m.task_processing.clone(),
        );
        registry.register(
            "task_processing_seconds",
            "Time from a job's creation to its end, by route kind (mode)",
            m.task_processing_seconds.clone(),
        );
        registry.register(
            "herald_events_published",
            "Events published (committed)",
            m.events_published.clone(),
        );
        registry.register(
            "herald_deliveries",
            "Delivery attempts by outcome class",
            m.deliveries.clone(),
        );
        registry.register(
            "herald_attempt_duration_seconds",
            "Duration of delivery attempts",
            m.attempt_seconds.clone(),
        );
        registry.register(
            "herald_claim_batch_size",
            "Deliveries leased per claim",
            m.claim_batch.clone(),
        );
        registry.register(
            "herald_record_batch_size",
            "Attempt results written per commit",
            m.record_batch.clone(),
        );
        registry.register(
            "herald_store_commit_seconds",
            "Time to commit a batch of attempt results",
            m.record_commit_seconds.clone(),
        );
        registry.register(
            "herald_queue_deliveries",
            "Unfinished deliveries by state (due, scheduled, in_flight) and the dead-letter set (failed)",
            m.queue.clone(),
        );
        registry.register(
            "herald_oldest_due_age_seconds",
            "How long the oldest due delivery has waited (the delivery lag)",
            m.oldest_due_age.clone(),
        );
        registry.register(
            "circuit_breaker_status",
            "Endpoint circuit breakers open or half-open (0: all closed)",
            m.breaker_status.clone(),
        );
        registry.register(
            "herald_circuit_breakers",
            "Endpoint circuit breakers by state (open, half_open)",
            m.breakers.clone(),
        );
        registry.register("herald_jobs", "Jobs by status", m.jobs.clone());
        registry.register(
            "herald_long_polls",
            "Long polls held on this node",
            m.long_polls.clone(),
        );
        registry.register(
            "herald_engine_in_flight",
            "Delivery requests in flight on this node",
            m.engine_in_flight.clone(),
        );
        registry.register(
            "herald_scrape_errors",
            "Scrapes whose store figures could not be read",
            m.scrape_errors.clone(),
        );
        Metrics {
            registry,
            attempt_counters,
            attempt_seconds_seed,
            ..m
        }
    }

    /// One delivery attempt ended after `seconds`.
    pub fn attempt(&self, end: AttemptEnd, seconds: f64) {
        let (seed, herald) = &self.attempt_counters[end.index()];
        seed.inc();
        herald.inc();
        self.attempt_seconds_seed.observe(seconds);
        self.attempt_seconds.observe(seconds);
    }

    /// `n` events were committed.
    pub fn published(&self, n: u64) {
        self.events_published.inc_by(n);
    }

    /// A job of route kind `mode` ended `succeeded` or `failed`, `seconds` after it was created.
    pub fn job_ended(&self, mode: &'static str, status: &'static str, seconds: f64) {
        self.task_processing
            .get_or_create(&TaskStatus {
                status,
                mode,
                worker_id: self.worker.worker_id.clone(),
            })
            .inc();
        self.task_processing_seconds
            .get_or_create(&TaskMode {
                mode,
                worker_id: self.worker.worker_id.clone(),
            })
            .observe(seconds);
    }

    /// A claim leased `n` deliveries.
    pub fn claimed(&self, n: usize) {
        self.claim_batch.observe(n as f64);
    }

    /// A batch of `n` results was committed in `seconds`.
    pub fn recorded(&self, n: usize, seconds: f64) {
        self.record_batch.observe(n as f64);
        self.record_commit_seconds.observe(seconds);
    }

    /// The exposition (OpenMetrics text) with the scrape-time figures of `now`.
    pub fn encode(&self, now: &Snapshot) -> String {
        match &now.queue {
            Some(q) => {
                for (state, n) in [
                    ("due", q.due),
                    ("scheduled", q.scheduled),
                    ("in_flight", q.in_flight),
                    ("failed", q.failed),
                ] {
                    self.queue
                        .get_or_create(&QueueState { state })
                        .set(n as i64);
                }
            }
            None => {
                self.scrape_errors.inc();
            }
        }
        if let Some(c) = &now.circuits {
            self.breakers
                .get_or_create(&QueueState { state: "open" })
                .set(c.open as i64);
            self.breakers
                .get_or_create(&QueueState { state: "half_open" })
                .set(c.half_open as i64);
            self.breaker_status
                .get_or_create(&Service {
                    service: "endpoints",
                })
                .set((c.open + c.half_open) as i64);
        }
        self.oldest_due_age.set(now.oldest_due_age_s.unwrap_or(0.0));
        for (status, n) in &now.jobs {
            self.jobs
                .get_or_create(&JobState {
                    status: status.clone(),
                })
                .set(*n as i64);
        }
        self.long_polls.set(now.long_polls as i64);
        self.engine_in_flight
            .set(now.engine_in_flight.unwrap_or(0) as i64);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        text::prometheus_text(&out)
    }
}

#[cfg(test)]
mod tests;

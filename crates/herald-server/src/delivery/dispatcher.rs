//! The dispatcher loop: claim due deliveries under a lease and start an attempt task for each.
//!
//! The dispatcher claims when work arrives (a publish), when it falls due, and while a claim says more is
//! left. Slots freed by finished attempts are refilled by the recorder, which claims in the same commit
//! that records the results ([`Dispatch::reserve`], [`Dispatch::claim_with`]); both resume the same round
//! robin over dispatch keys. Either claim's attempts start as soon as its leases are written, while its
//! commit is made durable: the time from a publish to its request is the claim's reads, not its fsync.
//!
//! Every claim leases its rows to an owner id of its own (`<node>.<n>`). When a claim fails, its answer may
//! have been lost after the database committed it; the dispatcher then gives back every lease held by that
//! claim's owner id before claiming again, so a database hiccup delays those deliveries by a retry, not by
//! the lease length.

use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_store::error::StoreResult;
use herald_store::{Claim, ClaimRequest, Store};
use tokio::sync::{oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};

use super::attempt::{self, AttemptContext, Leased};
use super::committing::Committing;
use super::idle::{self, EmptyLap};
use super::limits::{Turns, Waiting};
use crate::app::now_ms;
use crate::config::DeliveryConfig;
use crate::failpoint;

/// Leases a busy endpoint may have on this node, as a multiple of the requests it may have in flight
/// ([`ClaimRequest::lease_window`]). The leases beyond `max_in_flight` wait in order and start the moment
/// a response comes back, so an endpoint with the default `max_in_flight` (16) is not held to 16
/// requests per store commit. Measured on one default endpoint (docs/BENCHMARKS.md): PostgreSQL
/// delivered 4,220–4,683/s with a window of 2, 5,138–5,525/s with 4, 5,984–6,320/s with 8 and
/// 6,772–6,928/s with 16, against 7,034–7,316/s with `max_in_flight` 512.
/// A claim uses the window only with slots no endpoint could fill with requests it can send now
/// (`herald_store::claiming::step_shares`): waiting leases hold slots.
const LEASE_WINDOW: u32 = 16;
/// At most this share of the global concurrency waits for an endpoint's turn ([`most_waiting`]).
const WAITING_SHARE: usize = 4;

/// How many leased deliveries may wait for their endpoint's turn on a node of `concurrency`. A claim
/// leases ahead only into the room left ([`ClaimRequest::most_ahead`]), and a delivery that would wait
/// past it is handed back, so endpoints that hang cannot park the node's capacity in waiting leases.
pub fn most_waiting(concurrency: usize) -> usize {
    concurrency / WAITING_SHARE
}

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
    /// Where the round robin over dispatch keys resumes.
    cursor: Mutex<String>,
    /// When the idle dispatcher wakes up by itself (ms; `i64::MAX` while it is busy claiming).
    sleeping_until: AtomicI64,
    /// Claims handed over before their commit: their results wait for it.
    pub committing: Committing,
}

/// What [`Dispatch::claim_with`] did.
pub struct Claimed {
    /// The store call's outcome: on an error the claim's leases may not have been kept.
    pub written: StoreResult<()>,
    /// Deliveries the claim handed over.
    pub count: usize,
    /// Whether the claim left work behind.
    pub more: bool,
}

/// Slots held for one claim: its owner id, the request, and a permit per deliverable row.
pub struct Reservation {
    pub owner: Arc<str>,
    pub request: ClaimRequest,
    permits: OwnedSemaphorePermit,
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
            cursor: Mutex::new(String::new()),
            sleeping_until: AtomicI64::new(i64::MAX),
            committing: Committing::default(),
        }
    }

    /// Wake the idle dispatcher if work falls due at `due_ms`, before it would wake by itself.
    pub fn due_at(&self, due_ms: i64) {
        if due_ms < self.sleeping_until.load(Ordering::Acquire) {
            self.work_ready.notify_one();
        }
    }

    /// Take the free slots (at most one claim's worth) for a claim under a new owner id; `None` if no slot is
    /// free.
    pub fn reserve(&self) -> Option<Reservation> {
        let free = self.permits.available_permits().min(CLAIM_BATCH);
        if free == 0 {
            return None;
        }
        let permits = self
            .permits
            .clone()
            .try_acquire_many_owned(free as u32)
            .ok()?;
        let owner: Arc<str> = format!(
            "{}.{}",
            self.context.owner,
            self.claims.fetch_add(1, Ordering::Relaxed)
        )
        .into();
        let request = ClaimRequest {
            owner: owner.to_string(),
            now_ms: now_ms(),
            lease_ms: self.config.lease_ms,
            limit: free,
            node: self.context.owner.clone(),
            after_key: self.cursor.lock().expect("cursor").clone(),
            default_max_in_flight: self.config.default_max_in_flight,
            lease_window: LEASE_WINDOW,
            // Leases of finished requests whose results are not yet written still count in the store:
            // a key the store sees as full may in truth start that many at once.
            most_ahead: most_waiting(self.config.concurrency)
                .saturating_sub(self.context.limits.waiting())
                + self.context.unrecorded.load(Ordering::Relaxed),
            narrow_keys: self.context.limits.failing(),
            hinted_keys: self.context.hints.take(),
        };
        Some(Reservation {
            owner,
            request,
            permits,
        })
    }

    /// Hand every delivery of `claim`, each with one of the reserved slots, to its endpoint's turn: it
    /// starts now if the endpoint has fewer requests in flight on this node than it may, and as soon as
    /// one finishes otherwise. The slots left over are freed. Returns whether the claim left work behind.
    pub fn start(&self, claim: Claim, reservation: Reservation) -> bool {
        let Reservation {
            owner,
            mut permits,
            request,
        } = reservation;
        *self.cursor.lock().expect("cursor") = claim.next_key;
        let ctx = &self.context;
        if claim.deliveries.len() >= request.limit && !request.hinted_keys.is_empty() {
            // The limit ran out before every hinted key had its turn: the next claim visits them.
            let served: std::collections::HashSet<&str> = claim
                .deliveries
                .iter()
                .map(|d| d.dispatch_key.as_str())
                .collect();
            let unserved = request
                .hinted_keys
                .iter()
                .map(String::as_str)
                .filter(|k| !served.contains(k));
            ctx.hints.add_first(unserved);
        }
        ctx.metrics.claimed(claim.deliveries.len());
        let start_by = std::time::Instant::now() + waiting_allowance(self.config.lease_ms);
        let mut all = Turns::default();
        for delivery in claim.deliveries {
            let permit = permits.split(1).expect("a permit per claimed delivery");
            let key = delivery.dispatch_key.clone();
            let peers = claim.peer_leases.get(&key).copied().unwrap_or(0);
            let cap = delivery.max_in_flight.saturating_sub(peers);
            let leased = Leased {
                lease_owner: owner.clone(),
                delivery,
                permit,
            };
            let turns = ctx.limits.admit(
                &key,
                cap,
                Waiting {
                    item: leased,
                    start_by,
                },
            );
            all.start.extend(turns.start);
            all.handed_back.extend(turns.handed_back);
        }
        attempt::launch(ctx, all);
        // The slots left over are free again: a dispatcher waiting for one may go on.
        drop(permits);
        ctx.slot_freed.notify_one();
        claim.more
    }

    /// Claim for `reservation` through `write`, a store call that hands its claim over before it commits
    /// ([`Store::record_and_claim`]), and start the claim's attempts the moment it is handed over, while
    /// the commit is made durable. Results of those attempts are written only once it is done
    /// ([`Committing`]). Returns once the call is done.
    pub async fn claim_with<F>(
        &self,
        reservation: Reservation,
        write: impl FnOnce(oneshot::Sender<Claim>) -> F,
    ) -> Claimed
    where
        F: Future<Output = StoreResult<()>>,
    {
        let (claimed, claim) = oneshot::channel::<Claim>();
        let _settling = self.committing.begin(reservation.owner.clone());
        let starting = async {
            match claim.await {
                Ok(claim) => {
                    let count = claim.deliveries.len();
                    (count, self.start(claim, reservation))
                }
                Err(_) => {
                    drop(reservation);
                    self.context.slot_freed.notify_one();
                    (0, false)
                }
            }
        };
        let (written, (count, more)) = tokio::join!(write(claimed), starting);
        Claimed {
            written,
            count,
            more,
        }
    }

    /// Note that a claim under `owner` failed: its leases are given back before the next claim.
    pub fn unsettled(&self, owner: &str) {
        self.unsettled
            .lock()
            .expect("unsettled")
            .push(owner.to_string());
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
        let mut empty_run = EmptyLap::default();
        // Idle, and whether the last idle wait ended with nothing due.
        let (mut idle, mut quiet) = (false, false);
        loop {
            if *shutdown.borrow() {
                return;
            }
            failpoint::check(failpoint::points::DISPATCHER, &ctx.owner);
            if idle {
                // Slots freed by finished attempts are refilled by the recorder; the dispatcher waits
                // for new work or for the next delivery to fall due. It listens for new work while it
                // asks when that is, so a publish meanwhile is claimed at once.
                let poll = Duration::from_millis(self.config.poll_interval_ms);
                let until_due = idle::until_due(self.store.as_ref(), poll, quiet, |until| {
                    self.sleeping_until.store(until, Ordering::Release)
                });
                idle = tokio::select! {
                    _ = self.work_ready.notified() => false,
                    due = until_due => !due,
                    _ = shutdown.changed() => return,
                };
                quiet = idle;
                self.sleeping_until.store(i64::MAX, Ordering::Release);
                continue;
            }
            if !self.settle().await {
                failures += 1;
                if wait_or_stop(&mut shutdown, backoff(failures)).await {
                    return;
                }
                continue;
            }
            if self.permits.available_permits() == 0 {
                let poll = Duration::from_millis(self.config.poll_interval_ms);
                tokio::select! {
                    _ = ctx.slot_freed.notified() => continue,
                    _ = tokio::time::sleep(poll) => continue,
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
            let Some(reservation) = self.reserve() else {
                continue;
            };
            let (owner, request) = (reservation.owner.clone(), reservation.request.clone());
            let started = std::time::SystemTime::now();
            // A claim with no results to record: its attempts start before its commit is durable.
            let claimed = self
                .claim_with(reservation, |claimed| {
                    self.store.record_and_claim(Vec::new(), &request, claimed)
                })
                .await;
            backlog = match claimed.written {
                Ok(()) => {
                    failures = 0;
                    if claimed.count > 0 {
                        ctx.telemetry.record_span(
                            "claim",
                            started,
                            "herald.claimed",
                            claimed.count,
                        );
                    }
                    claimed.more
                }
                Err(e) => {
                    failures += 1;
                    self.unsettled(&owner);
                    let wait = backoff(failures);
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot claim deliveries");
                    if wait_or_stop(&mut shutdown, wait).await {
                        return;
                    }
                    continue;
                }
            };
            if claimed.count == 0 && backlog {
                // The walk stopped short with nothing leased: go on from there until it has been
                // round every key, then wait as when there is no more work.
                let to = self.cursor.lock().expect("cursor").clone();
                backlog = !empty_run.leased_nothing(&request.after_key, &to);
            } else {
                empty_run.end();
            }
            (idle, quiet) = (!backlog, false);
        }
    }
}

/// How long a leased delivery may wait for its endpoint's turn: half the lease beyond the request's own
/// timeout (so the lease outlives the request), and at least a second.
fn waiting_allowance(lease_ms: i64) -> Duration {
    Duration::from_millis((lease_ms / 2).max(1_000) as u64)
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

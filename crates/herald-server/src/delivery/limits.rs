//! Per-dispatch-key (endpoint) bookkeeping on this node: how many requests of each key are in flight, the
//! key's leased deliveries waiting for a turn, and request spacing.
//!
//! Limits are not decided here: the store counts leases per key across every node, and a claim leases at
//! most a key's room ([`herald_store::claiming::lease_room`]): up to its lease window times the requests
//! this node may have in flight, which is the key's `max_in_flight` minus what other nodes hold. Here,
//! requests start at most that many at a time; the other leased deliveries wait in order and start as
//! responses come back, with no store round trip in between. Waiting deliveries are handed back to be
//! released instead of started when a request of their key fails (the next claim then sees what the
//! failure did to the key's circuit breaker, so an endpoint that starts failing gets no more requests
//! than without them), and when one waited so long that its lease might run out before its request does.
//!
//! What a claim leases for a paced key (at most one second's worth of its `rate_limit_per_s`) is spaced
//! out here too, so a receiver sees requests evenly rather than in bursts; the wait is under a second,
//! far inside the lease.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A leased delivery that may start once its key has room, before `start_by`.
pub struct Waiting<T> {
    /// The delivery and what it needs to run.
    pub item: T,
    /// Past this, its lease may run out before its request does.
    pub start_by: Instant,
}

struct KeyState<T> {
    in_flight: u32,
    /// Requests of the key this node may have in flight, as its latest claim of the key computed.
    cap: u32,
    waiting: VecDeque<Waiting<T>>,
    /// Earliest start of the next request under a rate limit.
    next_slot: Option<Instant>,
    /// The latest request of the key failed: claims lease it no further ahead than it can send.
    failing: bool,
}

impl<T> Default for KeyState<T> {
    fn default() -> Self {
        KeyState {
            in_flight: 0,
            cap: 1,
            waiting: VecDeque::new(),
            next_slot: None,
            failing: false,
        }
    }
}

/// What may happen now for a key: deliveries to start and deliveries to give back.
pub struct Turns<T> {
    /// Start these now; each counts as one request in flight until [`Limits::finish`].
    pub start: Vec<T>,
    /// Release these leases: a request of their key failed, or they waited too long to start safely.
    pub handed_back: Vec<T>,
}

impl<T> Default for Turns<T> {
    fn default() -> Self {
        Turns {
            start: Vec::new(),
            handed_back: Vec::new(),
        }
    }
}

/// Shared by the dispatcher, the recorder's refills and the attempt tasks. A std `Mutex` is right here: it
/// is held for a few map operations and never across an `.await`.
pub struct Limits<T> {
    keys: Mutex<HashMap<String, KeyState<T>>>,
    /// The keys whose latest request failed, kept beside `keys` so that each claim takes them without
    /// going through every key (an outage can leave thousands of them failing); changed in place only
    /// when a key's state changes, copied then only while a claim still holds the previous set.
    failing: Mutex<Arc<HashSet<String>>>,
    /// Deliveries waiting, across keys.
    waiting: AtomicUsize,
    /// Most deliveries waiting at once; past it, a delivery that cannot start is handed back.
    most_waiting: usize,
}

impl<T> Limits<T> {
    /// Bookkeeping where at most `most_waiting` deliveries wait at once.
    pub fn new(most_waiting: usize) -> Limits<T> {
        Limits {
            keys: Mutex::new(HashMap::new()),
            failing: Mutex::default(),
            waiting: AtomicUsize::new(0),
            most_waiting,
        }
    }

    /// Queue a leased delivery of `key`, which may have `cap` requests in flight on this node, and say
    /// which of its waiting deliveries start now (in the order they were leased). If it would wait while
    /// the most deliveries already wait, it is handed back.
    pub fn admit(&self, key: &str, cap: u32, waiting: Waiting<T>) -> Turns<T> {
        let mut keys = self.keys.lock().expect("limits lock");
        let state = keys.entry(key.to_string()).or_default();
        state.cap = cap;
        state.waiting.push_back(waiting);
        let mut turns = take_turns(state, Instant::now());
        if !state.waiting.is_empty() && self.waiting() >= self.most_waiting {
            if let Some(last) = state.waiting.pop_back() {
                turns.handed_back.push(last.item);
            }
        }
        self.count_waiting(1, &turns);
        turns
    }

    /// The keys whose latest request failed.
    pub fn failing(&self) -> Arc<HashSet<String>> {
        self.failing.lock().expect("failing lock").clone()
    }

    /// Leased deliveries waiting for their key's turn, across keys.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    fn count_waiting(&self, added: usize, turns: &Turns<T>) {
        let taken = turns.start.len() + turns.handed_back.len();
        if added >= taken {
            self.waiting.fetch_add(added - taken, Ordering::Relaxed);
        } else {
            self.waiting.fetch_sub(taken - added, Ordering::Relaxed);
        }
    }

    /// Count one request of `key` finished, and say which waiting deliveries start in its place; if it
    /// `failed`, none do: every waiting delivery of the key is handed back.
    pub fn finish(&self, key: &str, failed: bool) -> Turns<T> {
        let mut keys = self.keys.lock().expect("limits lock");
        let Some(state) = keys.get_mut(key) else {
            return Turns::default();
        };
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.failing != failed {
            state.failing = failed;
            let mut set = self.failing.lock().expect("failing lock");
            if failed {
                Arc::make_mut(&mut set).insert(key.to_string());
            } else {
                Arc::make_mut(&mut set).remove(key);
            }
        }
        let now = Instant::now();
        let turns = if failed {
            Turns {
                start: Vec::new(),
                handed_back: state.waiting.drain(..).map(|w| w.item).collect(),
            }
        } else {
            take_turns(state, now)
        };
        self.count_waiting(0, &turns);
        let paced = state.next_slot.is_some_and(|t| t > now);
        if state.in_flight == 0 && state.waiting.is_empty() && !paced && !failed {
            keys.remove(key);
        }
        turns
    }

    /// Requests of `key` in flight and deliveries waiting.
    #[cfg(test)]
    fn counts(&self, key: &str) -> (u32, usize) {
        self.keys
            .lock()
            .expect("limits lock")
            .get(key)
            .map_or((0, 0), |s| (s.in_flight, s.waiting.len()))
    }

    /// Reserve the next start time for `key` under `per_second`; `None` means start now.
    pub fn pace(&self, key: &str, per_second: u32) -> Option<Instant> {
        let spacing = Duration::from_secs(1) / per_second.max(1);
        let now = Instant::now();
        let mut keys = self.keys.lock().expect("limits lock");
        let state = keys.entry(key.to_string()).or_default();
        let start = state.next_slot.filter(|t| *t > now).unwrap_or(now);
        state.next_slot = Some(start + spacing);
        (start > now).then_some(start)
    }
}

/// Take waiting deliveries, oldest first, while the key has room; those past their `start_by` are
/// handed back instead of started.
fn take_turns<T>(state: &mut KeyState<T>, now: Instant) -> Turns<T> {
    let mut turns = Turns::default();
    while state.in_flight < state.cap {
        let Some(next) = state.waiting.pop_front() else {
            break;
        };
        if next.start_by <= now {
            turns.handed_back.push(next.item);
            continue;
        }
        state.in_flight += 1;
        turns.start.push(next.item);
    }
    turns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon(item: u32) -> Waiting<u32> {
        Waiting {
            item,
            start_by: Instant::now() + Duration::from_secs(60),
        }
    }

    #[test]
    fn requests_start_up_to_the_cap_and_the_rest_wait_in_order() {
        let limits = Limits::new(100);
        assert_eq!(limits.admit("a", 2, soon(1)).start, vec![1]);
        assert_eq!(limits.admit("a", 2, soon(2)).start, vec![2]);
        assert!(limits.admit("a", 2, soon(3)).start.is_empty());
        assert!(limits.admit("a", 2, soon(4)).start.is_empty());
        assert_eq!(limits.admit("b", 2, soon(9)).start, vec![9]);
        assert_eq!(limits.counts("a"), (2, 2));
        assert_eq!(limits.waiting(), 2);
        assert_eq!(limits.finish("a", false).start, vec![3]);
        assert_eq!(limits.finish("a", false).start, vec![4]);
        assert_eq!(limits.counts("a"), (2, 0));
        assert!(limits.finish("a", false).start.is_empty());
        assert!(limits.finish("a", false).start.is_empty());
        assert_eq!(limits.counts("a"), (0, 0));
        assert_eq!(limits.counts("b"), (1, 0));
        assert_eq!(limits.waiting(), 0);
    }

    #[test]
    fn a_new_cap_applies_to_what_waits() {
        let limits = Limits::new(100);
        limits.admit("a", 1, soon(1));
        assert!(limits.admit("a", 1, soon(2)).start.is_empty());
        // A later claim found that other nodes hold fewer leases: two may be in flight now.
        assert_eq!(limits.admit("a", 3, soon(3)).start, vec![2, 3]);
        // And more again: nothing starts while the node is over its new cap.
        assert!(limits.admit("a", 1, soon(4)).start.is_empty());
        assert!(limits.finish("a", false).start.is_empty());
        assert!(limits.finish("a", false).start.is_empty());
        assert_eq!(limits.finish("a", false).start, vec![4]);
    }

    #[test]
    fn a_delivery_that_waited_too_long_is_handed_back() {
        let limits = Limits::new(100);
        limits.admit("a", 1, soon(1));
        let stale = Waiting {
            item: 2,
            start_by: Instant::now(),
        };
        assert!(limits.admit("a", 1, stale).start.is_empty());
        limits.admit("a", 1, soon(3));
        let turns = limits.finish("a", false);
        assert_eq!((turns.start, turns.handed_back), (vec![3], vec![2]));
    }

    #[test]
    fn a_failed_request_hands_back_what_waits() {
        let limits = Limits::new(100);
        limits.admit("a", 1, soon(1));
        limits.admit("a", 1, soon(2));
        limits.admit("a", 1, soon(3));
        let turns = limits.finish("a", true);
        assert!(turns.start.is_empty());
        assert_eq!(turns.handed_back, vec![2, 3]);
        assert_eq!(limits.waiting(), 0);
        assert!(limits.failing().contains("a"));
        assert_eq!(limits.admit("a", 1, soon(4)).start, vec![4]);
        limits.finish("a", false);
        assert!(limits.failing().is_empty(), "a success clears it");
    }

    #[test]
    fn claims_share_the_failing_set_until_it_changes() {
        let limits = Limits::new(100);
        for key in ["a", "b"] {
            limits.admit(key, 1, soon(1));
            limits.finish(key, true);
        }
        let held = limits.failing();
        assert!(
            Arc::ptr_eq(&held, &limits.failing()),
            "copied with no change"
        );
        limits.admit("a", 1, soon(2));
        limits.finish("a", true);
        assert!(
            Arc::ptr_eq(&held, &limits.failing()),
            "a failure again is no change"
        );
        limits.admit("b", 1, soon(3));
        limits.finish("b", false);
        assert_eq!(*limits.failing(), HashSet::from(["a".to_string()]));
        assert_eq!(held.len(), 2, "a claim's set stays as it was taken");
    }

    #[test]
    fn past_the_most_waiting_a_delivery_that_cannot_start_is_handed_back() {
        let limits = Limits::new(2);
        limits.admit("a", 1, soon(1));
        limits.admit("a", 1, soon(2));
        limits.admit("b", 1, soon(3));
        limits.admit("b", 1, soon(4));
        assert_eq!(limits.waiting(), 2);
        let turns = limits.admit("b", 1, soon(5));
        assert_eq!((turns.start, turns.handed_back), (vec![], vec![5]));
        assert_eq!(
            limits.admit("c", 1, soon(6)).start,
            vec![6],
            "one that can start does"
        );
        assert_eq!(limits.waiting(), 2);
    }

    #[test]
    fn pacing_spaces_requests() {
        let limits: Limits<()> = Limits::new(100);
        assert!(limits.pace("k", 10).is_none());
        let second = limits.pace("k", 10).expect("second request waits");
        let third = limits.pace("k", 10).expect("third request waits");
        assert_eq!(third - second, Duration::from_millis(100));
    }
}

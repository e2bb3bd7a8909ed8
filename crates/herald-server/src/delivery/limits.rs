//! Per-dispatch-key (endpoint) request spacing on this node. Limits are not kept here: the store counts
//! leases per key across every node, and a claim never leases more than a key's free slots or more than its
//! `rate_limit_per_s` allows at once (its stored pacing time, `herald_core::pacing`). What a claim leases
//! for a paced key (at most one second's worth) is spaced out here, so a receiver sees requests evenly
//! rather than in bursts; the wait is under a second, far inside the lease.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
struct KeyState {
    in_flight: u32,
    /// Earliest start of the next request under a rate limit.
    next_slot: Option<Instant>,
}

/// In-flight bookkeeping shared by the dispatcher and its attempt tasks. A std `Mutex` is right here: it is
/// held for a few map operations and never across an `.await`.
#[derive(Default)]
pub struct Limits {
    keys: Mutex<HashMap<String, KeyState>>,
}

impl Limits {
    /// Count one request starting for `key` (its pacing state lives while requests are in flight).
    pub fn acquire(&self, key: &str) {
        let mut keys = self.keys.lock().expect("limits lock");
        keys.entry(key.to_string()).or_default().in_flight += 1;
    }

    /// Count one request of `key` finished.
    pub fn release(&self, key: &str) {
        let mut keys = self.keys.lock().expect("limits lock");
        if let Some(state) = keys.get_mut(key) {
            state.in_flight = state.in_flight.saturating_sub(1);
            let paced = state.next_slot.is_some_and(|t| t > Instant::now());
            if state.in_flight == 0 && !paced {
                keys.remove(key);
            }
        }
    }

    /// Requests in flight for `key`.
    #[cfg(test)]
    fn in_flight(&self, key: &str) -> u32 {
        self.keys
            .lock()
            .expect("limits lock")
            .get(key)
            .map_or(0, |s| s.in_flight)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_requests() {
        let limits = Limits::default();
        limits.acquire("a");
        limits.acquire("a");
        limits.acquire("b");
        assert_eq!(limits.in_flight("a"), 2);
        limits.release("a");
        assert_eq!(limits.in_flight("a") + limits.in_flight("b"), 2);
        limits.release("b");
        assert_eq!(limits.in_flight("b"), 0);
    }

    #[test]
    fn pacing_spaces_requests() {
        let limits = Limits::default();
        assert!(limits.pace("k", 10).is_none());
        let second = limits.pace("k", 10).expect("second request waits");
        let third = limits.pace("k", 10).expect("third request waits");
        assert_eq!(third - second, Duration::from_millis(100));
    }
}

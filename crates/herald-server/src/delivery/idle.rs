//! When the dispatcher stops claiming: a run of claims that leased nothing ends once their walks have
//! gone once round every key ([`EmptyLap`]), and an idle dispatcher claims again only when new work
//! arrives or something may have fallen due ([`until_due`]).
//!
//! A claim visits a bounded number of keys and says whether it stopped short, so that the next claim
//! goes on from there. Keys with work that is not due (retries waiting, leases held elsewhere) are
//! visited too. Without an end to an empty run, a store with more such keys than one claim visits
//! kept the dispatcher claiming without pause, reading every key over and over with nothing to lease.

use std::time::Duration;

use herald_store::Store;

use crate::app::now_ms;

/// A run of claims that leased nothing, by where each one's walk started and stopped.
#[derive(Debug, Default)]
pub struct EmptyLap {
    /// Where the run's first walk started: the run has gone round once when a walk passes it again.
    start: Option<String>,
}

impl EmptyLap {
    /// A claim whose walk started after `from` and stops at `to` (where the next one starts) leased
    /// nothing. Returns whether the run has now visited every key since it began.
    pub fn leased_nothing(&mut self, from: &str, to: &str) -> bool {
        let start = self.start.get_or_insert_with(|| from.to_string());
        let start = start.as_str();
        // The walk covered the keys after `from` up to and including `to`, wrapping past the last key
        // when `to` is not after `from`.
        let round = if from < to {
            from < start && start <= to
        } else {
            start > from || start <= to
        };
        if round {
            self.end();
        }
        round
    }

    /// The run is over (a claim leased something, or the dispatcher went idle): the next claim that
    /// leases nothing starts a new one.
    pub fn end(&mut self) {
        self.start = None;
    }
}

/// How long to sleep for a delivery due at `next_due_ms` (`None`: none, or unknown) at `now_ms`, at
/// most `poll`, and whether something is due already.
pub fn wait_for(next_due_ms: Option<i64>, now_ms: i64, poll: Duration) -> (Duration, bool) {
    match next_due_ms {
        Some(due) if due > now_ms => (
            poll.min(Duration::from_millis((due - now_ms) as u64)),
            false,
        ),
        Some(_) => (poll, true),
        None => (poll, false),
    }
}

/// One idle wait: until the earliest due time, at most `poll`. Returns whether a delivery may be due
/// when it ends: the earliest due time came, something was due already (due work that could not be
/// claimed waits for its endpoints' slots, one `poll`), or the store could not say. A wait that ends
/// on `poll` with nothing due is followed by another (`after_quiet`), which returns at once if
/// something is due by then: work published on another node whose wake-up was lost shows in the
/// earliest due time. `sleeping_until` is told when the wait ends.
pub async fn until_due(
    store: &dyn Store,
    poll: Duration,
    after_quiet: bool,
    sleeping_until: impl Fn(i64),
) -> bool {
    let (wait, due) = match store.next_due_ms().await {
        Ok(next_due) => wait_for(next_due, now_ms(), poll),
        Err(_) => (poll, true),
    };
    if due && after_quiet {
        return true;
    }
    sleeping_until(now_ms() + wait.as_millis() as i64);
    tokio::time::sleep(wait).await;
    due || wait < poll
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_run_ends_when_its_walks_pass_where_it_began() {
        let mut lap = EmptyLap::default();
        assert!(!lap.leased_nothing("k10", "k20"));
        assert!(!lap.leased_nothing("k20", "k90"));
        // Wrapped past the last key, not yet back at k10.
        assert!(!lap.leased_nothing("k90", "k05"));
        assert!(lap.leased_nothing("k05", "k12"));
        // The next empty claim starts a new run.
        assert!(!lap.leased_nothing("k12", "k30"));
    }

    #[test]
    fn a_run_from_the_first_key_ends_when_a_walk_wraps() {
        let mut lap = EmptyLap::default();
        assert!(!lap.leased_nothing("", "k50"));
        assert!(!lap.leased_nothing("k50", "k99"));
        assert!(lap.leased_nothing("k99", "k10"));
    }

    #[test]
    fn a_wrapping_walk_past_its_start_ends_the_run_at_once() {
        let mut lap = EmptyLap::default();
        assert!(!lap.leased_nothing("k50", "k70"));
        // One walk that wraps and comes back past k50.
        assert!(lap.leased_nothing("k70", "k60"));
        // A walk that stops where it started has been everywhere.
        assert!(EmptyLap::default().leased_nothing("k50", "k50"));
    }

    #[test]
    fn an_ended_run_starts_over() {
        let mut lap = EmptyLap::default();
        assert!(!lap.leased_nothing("k10", "k80"));
        lap.end();
        assert!(!lap.leased_nothing("k80", "k20"));
        assert!(!lap.leased_nothing("k20", "k70"));
        assert!(lap.leased_nothing("k70", "k90"));
    }

    #[test]
    fn the_wait_follows_the_next_due_time_up_to_the_poll() {
        let poll = Duration::from_millis(1_000);
        assert_eq!(
            wait_for(Some(1_250), 1_000, poll),
            (Duration::from_millis(250), false)
        );
        assert_eq!(wait_for(Some(9_000), 1_000, poll), (poll, false));
        assert_eq!(wait_for(Some(1_000), 1_000, poll), (poll, true));
        assert_eq!(wait_for(None, 1_000, poll), (poll, false));
    }
}

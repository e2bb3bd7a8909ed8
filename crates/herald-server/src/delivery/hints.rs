//! Keys worth visiting first: the dispatch keys that may have just got due work (a publish on this node)
//! or free slots (results recorded for them). The next claim visits them beside its walk
//! ([`herald_store::ClaimRequest::hinted_keys`]), so a walk over thousands of endpoints whose work is not
//! due (retries waiting out an outage, other nodes' leases) does not hold back the endpoints that have
//! work now. Hints only speed things up: every key with work is still reached by the walk, so a hint
//! dropped (the set is full) or lost (a crash) delays nothing beyond what the walk takes.

use std::collections::HashSet;
use std::sync::Mutex;

use herald_store::claiming::WALK_STEP;

/// Most keys held: past it new hints are dropped until a claim takes some.
pub const MOST_HINTS: usize = 4 * WALK_STEP;

/// The keys hinted since the last claim, oldest first, each once.
#[derive(Debug, Default)]
pub struct Hints {
    keys: Mutex<(Vec<String>, HashSet<String>)>,
}

impl Hints {
    /// Hint `keys`, oldest first, each once, up to [`MOST_HINTS`].
    pub fn add<'k>(&self, keys: impl IntoIterator<Item = &'k str>) {
        let mut guard = self.keys.lock().expect("hints");
        let (order, held) = &mut *guard;
        for key in keys {
            if order.len() >= MOST_HINTS {
                return;
            }
            if !held.contains(key) {
                held.insert(key.to_string());
                order.push(key.to_string());
            }
        }
    }

    /// Take the oldest hints, as many as one claim reads ([`WALK_STEP`]).
    pub fn take(&self) -> Vec<String> {
        let mut guard = self.keys.lock().expect("hints");
        let (order, held) = &mut *guard;
        let taken: Vec<String> = order.drain(..order.len().min(WALK_STEP)).collect();
        for key in &taken {
            held.remove(key);
        }
        taken
    }

    /// Hint again those of `taken` that a claim left without work because its limit ran out: they
    /// go before the hints that came since.
    pub fn put_back(&self, taken: Vec<String>) {
        if taken.is_empty() {
            return;
        }
        let mut guard = self.keys.lock().expect("hints");
        let (order, held) = &mut *guard;
        let returned: Vec<String> = taken
            .into_iter()
            .filter(|k| held.insert(k.clone()))
            .collect();
        order.splice(0..0, returned);
        while order.len() > MOST_HINTS {
            if let Some(dropped) = order.pop() {
                held.remove(&dropped);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_come_out_oldest_first_each_once() {
        let hints = Hints::default();
        hints.add(["b", "a", "b"]);
        hints.add(["c", "a"]);
        assert_eq!(hints.take(), ["b", "a", "c"]);
        assert!(hints.take().is_empty());
    }

    #[test]
    fn a_claim_takes_one_step_of_hints_and_the_set_is_bounded() {
        let hints = Hints::default();
        let keys: Vec<String> = (0..MOST_HINTS + 10).map(|i| format!("k{i:04}")).collect();
        hints.add(keys.iter().map(String::as_str));
        let first = hints.take();
        assert_eq!(first, keys[..WALK_STEP]);
        let mut rest = 0;
        loop {
            let taken = hints.take();
            if taken.is_empty() {
                break;
            }
            rest += taken.len();
        }
        assert_eq!(WALK_STEP + rest, MOST_HINTS);
    }

    #[test]
    fn keys_put_back_go_first() {
        let hints = Hints::default();
        hints.add(["a", "b"]);
        let taken = hints.take();
        hints.add(["c", "a"]);
        hints.put_back(taken);
        // "a" was hinted again meanwhile: it keeps its new place.
        assert_eq!(hints.take(), ["b", "c", "a"]);
    }
}

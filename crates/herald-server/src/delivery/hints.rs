//! Keys worth visiting first: the dispatch keys that may have just got due work (a publish on this node
//! or, named by its notification, on another) or free slots (a delivery just taken). The next claim visits them beside its walk
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

    /// Hint `keys` ahead of every other hint: keys a publish just gave work (they wait for nothing
    /// else), or keys a claim left without work because its limit ran out. A key hinted already moves
    /// to the front too. Only the first [`WALK_STEP`] count, as many as the next claim visits: a
    /// publish to a thousand endpoints costs no more than one to a few dozen.
    pub fn add_first<'k>(&self, keys: impl IntoIterator<Item = &'k str>) {
        let mut first: Vec<String> = Vec::new();
        for key in keys {
            if first.len() == WALK_STEP {
                break;
            }
            if !first.iter().any(|k| k == key) {
                first.push(key.to_string());
            }
        }
        let mut guard = self.keys.lock().expect("hints");
        let (order, held) = &mut *guard;
        if first.is_empty() {
            return;
        }
        order.retain(|k| !first.contains(k));
        held.extend(first.iter().cloned());
        order.splice(0..0, first);
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
    fn keys_added_first_go_first() {
        let hints = Hints::default();
        hints.add(["a", "b"]);
        let taken = hints.take();
        hints.add(["c", "a"]);
        hints.add_first(taken.iter().map(String::as_str));
        // "a" was hinted again meanwhile: it moves to the front with "b".
        assert_eq!(hints.take(), ["a", "b", "c"]);
        let many: Vec<String> = (0..MOST_HINTS).map(|i| format!("k{i:04}")).collect();
        hints.add(many.iter().map(String::as_str));
        hints.add_first(["new"]);
        assert_eq!(hints.take()[0], "new", "a full set makes room at the front");
        let wide: Vec<String> = (0..1_000).map(|i| format!("w{i:04}")).collect();
        hints.add_first(wide.iter().map(String::as_str));
        assert_eq!(
            hints.take(),
            wide[..WALK_STEP],
            "a wide fan-out hints one claim's worth"
        );
    }
}

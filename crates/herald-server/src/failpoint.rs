//! Failure injection for tests of the engine's supervision: a named point panics while it is armed.
//!
//! Nothing is armed in a normal run, and an unarmed check is one relaxed atomic load. Tests that run a node
//! in-process arm a point with [`arm`] to prove that a panic there is survived (slot released, delivery
//! retried, task restarted, `/health` telling the truth meanwhile).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Points the engine checks.
pub mod points {
    /// In an attempt, before the request is sent (the URL being attempted is the key).
    pub const ATTEMPT: &str = "attempt";
    /// In the recorder, before a batch is written.
    pub const RECORDER: &str = "recorder";
    /// In the dispatcher, before a claim.
    pub const DISPATCHER: &str = "dispatcher";
}

static ANY_ARMED: AtomicBool = AtomicBool::new(false);
static ARMED: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

/// Make the next `times` checks of `point` with `key` panic (`key` "" matches any key).
pub fn arm(point: &str, key: &str, times: u32) {
    let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
    armed
        .get_or_insert_with(HashMap::new)
        .insert(format!("{point}\u{1f}{key}"), times);
    ANY_ARMED.store(true, Ordering::Release);
}

/// Panic if `point` is armed for `key` (or for any key).
pub fn check(point: &str, key: &str) {
    if !ANY_ARMED.load(Ordering::Acquire) {
        return;
    }
    let fire = {
        let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
        let Some(map) = armed.as_mut() else {
            return;
        };
        let mut fire = false;
        for name in [format!("{point}\u{1f}{key}"), format!("{point}\u{1f}")] {
            if let Some(left) = map.get_mut(&name) {
                if *left > 0 {
                    *left -= 1;
                    fire = true;
                    break;
                }
            }
        }
        fire
    };
    if fire {
        panic!("failpoint {point} fired");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_armed_point_fires_the_given_number_of_times() {
        check("unit-test", "k");
        arm("unit-test", "k", 2);
        for _ in 0..2 {
            assert!(std::panic::catch_unwind(|| check("unit-test", "k")).is_err());
        }
        check("unit-test", "k");
        check("unit-test", "other");
    }
}

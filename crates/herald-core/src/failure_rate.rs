//! An endpoint's failure rate over a sliding window, for the `endpoint.degraded` alert.
//!
//! Two fixed buckets of the window's length stand in for the sliding window: the current bucket counts in
//! full and the previous one in proportion to how much of it the window still covers. That is the usual
//! sliding-window-counter estimate: constant space, no per-attempt history.

/// Attempts and failures counted in two adjacent buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureWindow {
    /// Where the current bucket starts (ms; 0 before the first attempt).
    pub start_ms: i64,
    /// Attempts in the current bucket.
    pub attempts: u32,
    /// Failed attempts (anything but a 2xx) in the current bucket.
    pub failures: u32,
    /// Attempts in the bucket before.
    pub prev_attempts: u32,
    /// Failed attempts in the bucket before.
    pub prev_failures: u32,
}

impl FailureWindow {
    /// Count one attempt at `now_ms` (`failed`: it got no 2xx), with buckets `window_ms` long.
    pub fn count(&mut self, failed: bool, now_ms: i64, window_ms: i64) {
        let window = window_ms.max(1);
        self.roll(now_ms, window);
        self.attempts = self.attempts.saturating_add(1);
        if failed {
            self.failures = self.failures.saturating_add(1);
        }
    }

    /// Move the buckets on so that the current one holds `now_ms`.
    fn roll(&mut self, now_ms: i64, window: i64) {
        if self.start_ms == 0 && self.attempts == 0 {
            self.start_ms = now_ms;
            return;
        }
        let elapsed = now_ms - self.start_ms;
        if elapsed < window {
            return;
        }
        if elapsed < 2 * window {
            self.prev_attempts = self.attempts;
            self.prev_failures = self.failures;
            self.start_ms += window;
        } else {
            self.prev_attempts = 0;
            self.prev_failures = 0;
            self.start_ms = now_ms;
        }
        self.attempts = 0;
        self.failures = 0;
    }

    /// The estimated attempts and failures in the `window_ms` before `now_ms`.
    pub fn estimate(&self, now_ms: i64, window_ms: i64) -> (f64, f64) {
        let window = window_ms.max(1) as f64;
        let into = ((now_ms - self.start_ms) as f64).clamp(0.0, window);
        let weight = 1.0 - into / window;
        (
            f64::from(self.attempts) + f64::from(self.prev_attempts) * weight,
            f64::from(self.failures) + f64::from(self.prev_failures) * weight,
        )
    }

    /// The estimated failure rate over the window, once at least `min_attempts` fall in it.
    pub fn rate(&self, now_ms: i64, window_ms: i64, min_attempts: u32) -> Option<f64> {
        let (attempts, failures) = self.estimate(now_ms, window_ms);
        (attempts >= f64::from(min_attempts.max(1))).then(|| failures / attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 1_000;

    #[test]
    fn counts_within_one_bucket() {
        let mut w = FailureWindow::default();
        for i in 0..10 {
            w.count(i < 3, 5_000 + i, W);
        }
        assert_eq!(w.start_ms, 5_000);
        assert_eq!((w.attempts, w.failures), (10, 3));
        assert_eq!(w.rate(5_010, W, 10), Some(0.3));
        assert_eq!(w.rate(5_010, W, 11), None, "too few attempts to judge");
    }

    #[test]
    fn the_previous_bucket_fades_as_the_window_slides() {
        let mut w = FailureWindow::default();
        for i in 0..10 {
            w.count(true, i, W);
        }
        w.count(false, 1_500, W);
        assert_eq!(w.start_ms, 1_000);
        assert_eq!((w.prev_attempts, w.prev_failures), (10, 10));
        // Half of the previous bucket is still in the window: 5 failures of 6 attempts.
        let (attempts, failures) = w.estimate(1_500, W);
        assert_eq!((attempts, failures), (6.0, 5.0));
    }

    #[test]
    fn a_long_silence_forgets_everything() {
        let mut w = FailureWindow::default();
        for i in 0..10 {
            w.count(true, i, W);
        }
        w.count(false, 10_000, W);
        assert_eq!((w.prev_attempts, w.attempts, w.failures), (0, 1, 0));
        assert_eq!(w.start_ms, 10_000);
    }
}

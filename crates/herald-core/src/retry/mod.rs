//! Retry policy as a pure function.
//!
//! [`RetryPolicy::decide`] looks at the outcome of one attempt plus a
//! [`RetryContext`] (clock values passed in) and a jitter sample (random
//! number passed in), and returns a [`Decision`].

mod class;
mod policy;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

pub use class::{
    class_matches, AttemptOutcome, ErrorKind, RetryClass, UnknownErrorKind, UnknownRetryClass,
};
pub use policy::{default_retry_on, PolicyError, RetryPolicy};

/// Largest `Retry-After` honoured by schedule policies: 24 hours.
const SCHEDULE_RETRY_AFTER_CAP_MS: u64 = 86_400_000;

/// What is known about a delivery when deciding on its next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryContext {
    /// 1-based number of the attempt just made.
    pub attempt_number: u32,
    /// When the delivery was created (unix ms).
    pub first_attempt_ms: i64,
    /// The current time (unix ms).
    pub now_ms: i64,
    /// Number of 4xx responses before this attempt.
    pub prior_4xx: u32,
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The attempt succeeded.
    Delivered,
    /// Try again at this unix ms.
    RetryAt(i64),
    /// Give up.
    Fail,
}

/// `base * factor^(n-1)` capped at `cap`, computed in f64 without overflow.
fn backoff(base_ms: u64, factor: f64, cap_ms: u64, attempt: u32) -> f64 {
    let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
    let raw = base_ms as f64 * factor.powi(exp);
    let cap = cap_ms as f64;
    if raw.is_nan() {
        cap
    } else {
        raw.min(cap)
    }
}

/// Applies jitter to `delay`, optionally clamps to `cap`, rounds to whole ms
/// and never goes below zero.
fn jittered(delay: f64, jitter: f64, sample: f64, cap_ms: Option<u64>) -> u64 {
    let sample = if sample.is_nan() {
        0.5
    } else {
        sample.clamp(0.0, 1.0)
    };
    let jitter = if jitter.is_nan() { 0.0 } else { jitter };
    let mut d = delay * (1.0 + jitter * (2.0 * sample - 1.0));
    if let Some(cap) = cap_ms {
        d = d.min(cap as f64);
    }
    // `as` saturates and maps NaN to 0.
    d.round().max(0.0) as u64
}

impl RetryPolicy {
    /// The jittered delay in ms before retry number `attempt_number` (the
    /// 1-based number of the attempt that just failed), ignoring
    /// `Retry-After` and give-up rules. `None` when a schedule has no entry
    /// for that attempt.
    pub fn delay_ms(&self, attempt_number: u32, jitter_sample: f64) -> Option<u64> {
        match self {
            RetryPolicy::Exponential {
                base_ms,
                factor,
                max_interval_ms,
                jitter,
                ..
            }
            | RetryPolicy::Bounded {
                base_ms,
                factor,
                max_interval_ms,
                jitter,
                ..
            } => {
                let d = backoff(*base_ms, *factor, *max_interval_ms, attempt_number);
                Some(jittered(d, *jitter, jitter_sample, Some(*max_interval_ms)))
            }
            RetryPolicy::Schedule {
                delays_ms, jitter, ..
            } => {
                let idx = usize::try_from(attempt_number.checked_sub(1)?).ok()?;
                let d = *delays_ms.get(idx)? as f64;
                Some(jittered(d, *jitter, jitter_sample, None))
            }
        }
    }

    /// Whether `outcome` (a non-2xx outcome) should be retried at all.
    fn is_retryable(&self, ctx: &RetryContext, outcome: &AttemptOutcome) -> bool {
        if *outcome == AttemptOutcome::Error(ErrorKind::Blocked) {
            return false;
        }
        if self.retry_on().iter().any(|c| class_matches(*c, outcome)) {
            return true;
        }
        matches!(
            outcome,
            AttemptOutcome::Response {
                status: 400..=499,
                ..
            }
        ) && ctx.prior_4xx < self.retries_4xx()
    }

    /// Decides what happens after an attempt. `jitter_sample` is a random
    /// number in [0, 1); 0.5 means "no jitter".
    pub fn decide(
        &self,
        ctx: &RetryContext,
        outcome: &AttemptOutcome,
        jitter_sample: f64,
    ) -> Decision {
        if outcome.is_success() {
            return Decision::Delivered;
        }
        if !self.is_retryable(ctx, outcome) {
            return Decision::Fail;
        }
        let n = ctx.attempt_number;
        let Some(mut delay) = self.delay_ms(n, jitter_sample) else {
            return Decision::Fail;
        };
        if let AttemptOutcome::Response {
            retry_after_ms: Some(ra),
            ..
        } = outcome
        {
            let cap = match self {
                RetryPolicy::Exponential {
                    max_interval_ms, ..
                }
                | RetryPolicy::Bounded {
                    max_interval_ms, ..
                } => *max_interval_ms,
                RetryPolicy::Schedule { .. } => SCHEDULE_RETRY_AFTER_CAP_MS,
            };
            delay = delay.max((*ra).min(cap));
        }
        let delay = i64::try_from(delay).unwrap_or(i64::MAX);
        let at = ctx.now_ms.saturating_add(delay);
        match self {
            RetryPolicy::Bounded { max_attempts, .. } if n >= *max_attempts => Decision::Fail,
            RetryPolicy::Exponential {
                max_attempts,
                max_age_ms,
                ..
            } => {
                if max_attempts.is_some_and(|m| n >= m) {
                    return Decision::Fail;
                }
                let age = i128::from(at) - i128::from(ctx.first_attempt_ms);
                if age > i128::from(*max_age_ms) {
                    Decision::Fail
                } else {
                    Decision::RetryAt(at)
                }
            }
            _ => Decision::RetryAt(at),
        }
    }
}

//! The retry policy type: serde representation, defaults, seeds and
//! validation.

use super::RetryClass;
use serde::{Deserialize, Serialize};

fn d_base_ms() -> u64 {
    1000
}
fn d_factor() -> f64 {
    2.0
}
fn d_max_interval_ms() -> u64 {
    3_600_000
}
fn d_max_age_ms() -> u64 {
    43_200_000
}
fn d_jitter() -> f64 {
    0.2
}
fn d_one() -> u32 {
    1
}
fn d_bounded_attempts() -> u32 {
    3
}
fn d_all_classes() -> Vec<RetryClass> {
    vec![
        RetryClass::Network,
        RetryClass::Timeout,
        RetryClass::Redirect,
        RetryClass::ClientError,
        RetryClass::ServerError,
    ]
}

/// The default set of retried classes: network errors, timeouts, 408, 429 and
/// any 5xx.
pub fn default_retry_on() -> Vec<RetryClass> {
    vec![
        RetryClass::Network,
        RetryClass::Timeout,
        RetryClass::Status(408),
        RetryClass::Status(429),
        RetryClass::ServerError,
    ]
}

/// How failed deliveries are retried. Serialized with a `kind` tag; every
/// field except `kind` (and `delays_ms` for `schedule`) has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RetryPolicy {
    /// Exponential backoff bounded by the age of the delivery.
    Exponential {
        /// First retry delay in ms (default 1000).
        #[serde(default = "d_base_ms")]
        base_ms: u64,
        /// Multiplier between consecutive delays (default 2.0).
        #[serde(default = "d_factor")]
        factor: f64,
        /// Upper bound of a single delay in ms (default 1 h).
        #[serde(default = "d_max_interval_ms")]
        max_interval_ms: u64,
        /// Give up when the next retry would happen later than this many ms
        /// after the delivery was created (default 12 h).
        #[serde(default = "d_max_age_ms")]
        max_age_ms: u64,
        /// Optional cap on the total number of attempts (default none).
        #[serde(default)]
        max_attempts: Option<u32>,
        /// Relative jitter in [0, 1] (default 0.2).
        #[serde(default = "d_jitter")]
        jitter: f64,
        /// Retried outcome classes (default [`default_retry_on`]).
        #[serde(default = "default_retry_on")]
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
        retry_on: Vec<RetryClass>,
        /// Unlisted 4xx responses retried this many times (default 1).
        #[serde(default = "d_one")]
        retries_4xx: u32,
    },
    /// A fixed list of delays; one retry per entry.
    Schedule {
        /// Delay in ms before retry number `i + 1` (required).
        delays_ms: Vec<u64>,
        /// Relative jitter in [0, 1] (default 0).
        #[serde(default)]
        jitter: f64,
        /// Retried outcome classes (default: network, timeout, 3xx, 4xx, 5xx).
        #[serde(default = "d_all_classes")]
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
        retry_on: Vec<RetryClass>,
        /// Unlisted 4xx responses retried this many times (default 0).
        #[serde(default)]
        retries_4xx: u32,
    },
    /// Exponential backoff with a fixed number of attempts.
    Bounded {
        /// Total number of attempts, 1..=100 (default 3).
        #[serde(default = "d_bounded_attempts")]
        max_attempts: u32,
        /// First retry delay in ms (default 1000).
        #[serde(default = "d_base_ms")]
        base_ms: u64,
        /// Multiplier between consecutive delays (default 2.0).
        #[serde(default = "d_factor")]
        factor: f64,
        /// Upper bound of a single delay in ms (default 1 h).
        #[serde(default = "d_max_interval_ms")]
        max_interval_ms: u64,
        /// Relative jitter in [0, 1] (default 0.2).
        #[serde(default = "d_jitter")]
        jitter: f64,
        /// Retried outcome classes (default [`default_retry_on`]).
        #[serde(default = "default_retry_on")]
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
        retry_on: Vec<RetryClass>,
        /// Unlisted 4xx responses retried this many times (default 1).
        #[serde(default = "d_one")]
        retries_4xx: u32,
    },
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::Exponential {
            base_ms: d_base_ms(),
            factor: d_factor(),
            max_interval_ms: d_max_interval_ms(),
            max_age_ms: d_max_age_ms(),
            max_attempts: None,
            jitter: d_jitter(),
            retry_on: default_retry_on(),
            retries_4xx: d_one(),
        }
    }
}

/// A retry policy field is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `base_ms` is zero.
    #[error("retry_policy.base_ms must be at least 1")]
    BaseMs,
    /// `factor` is outside [1, 10].
    #[error("retry_policy.factor must be between 1 and 10")]
    Factor,
    /// `jitter` is outside [0, 1].
    #[error("retry_policy.jitter must be between 0 and 1")]
    Jitter,
    /// `max_attempts` is zero.
    #[error("retry_policy.max_attempts must be at least 1")]
    MaxAttempts,
    /// Bounded `max_attempts` is outside 1..=100.
    #[error("retry_policy.max_attempts must be between 1 and 100")]
    MaxAttemptsRange,
    /// `delays_ms` is empty.
    #[error("retry_policy.delays_ms must not be empty")]
    DelaysEmpty,
    /// `delays_ms` has more than 100 entries.
    #[error("retry_policy.delays_ms must have at most 100 entries")]
    DelaysTooMany,
    /// `max_interval_ms` is smaller than `base_ms`.
    #[error("retry_policy.max_interval_ms must be at least retry_policy.base_ms")]
    MaxInterval,
}

fn check_backoff(base_ms: u64, factor: f64, max_interval_ms: u64) -> Result<(), PolicyError> {
    if base_ms < 1 {
        return Err(PolicyError::BaseMs);
    }
    if !(1.0..=10.0).contains(&factor) {
        return Err(PolicyError::Factor);
    }
    if max_interval_ms < base_ms {
        return Err(PolicyError::MaxInterval);
    }
    Ok(())
}

fn check_jitter(jitter: f64) -> Result<(), PolicyError> {
    if (0.0..=1.0).contains(&jitter) {
        Ok(())
    } else {
        Err(PolicyError::Jitter)
    }
}

impl RetryPolicy {
    /// Seed 001: exponential 1 s doubling, capped at 1 h, for up to 12 h, no
    /// jitter, retrying network errors, timeouts, 408, 502, 503 and 504.
    pub fn seed_001() -> Self {
        RetryPolicy::Exponential {
            base_ms: 1000,
            factor: 2.0,
            max_interval_ms: 3_600_000,
            max_age_ms: 43_200_000,
            max_attempts: None,
            jitter: 0.0,
            retry_on: vec![
                RetryClass::Network,
                RetryClass::Timeout,
                RetryClass::Status(408),
                RetryClass::Status(502),
                RetryClass::Status(503),
                RetryClass::Status(504),
            ],
            retries_4xx: 0,
        }
    }

    /// Seed 003: bounded, 3 attempts, base 1 s, jitter 0.2, default classes,
    /// one retry of an unlisted 4xx.
    pub fn seed_003() -> Self {
        RetryPolicy::Bounded {
            max_attempts: 3,
            base_ms: 1000,
            factor: 2.0,
            max_interval_ms: 3_600_000,
            jitter: 0.2,
            retry_on: default_retry_on(),
            retries_4xx: 1,
        }
    }

    /// Seed 004: schedule of 10 s then 100 s, retrying every failure class.
    pub fn seed_004() -> Self {
        RetryPolicy::Schedule {
            delays_ms: vec![10_000, 100_000],
            jitter: 0.0,
            retry_on: d_all_classes(),
            retries_4xx: 0,
        }
    }

    /// Checks every field range; the error names the offending field.
    pub fn validate(&self) -> Result<(), PolicyError> {
        match self {
            RetryPolicy::Exponential {
                base_ms,
                factor,
                max_interval_ms,
                max_attempts,
                jitter,
                ..
            } => {
                check_backoff(*base_ms, *factor, *max_interval_ms)?;
                check_jitter(*jitter)?;
                if *max_attempts == Some(0) {
                    return Err(PolicyError::MaxAttempts);
                }
                Ok(())
            }
            RetryPolicy::Schedule {
                delays_ms, jitter, ..
            } => {
                if delays_ms.is_empty() {
                    return Err(PolicyError::DelaysEmpty);
                }
                if delays_ms.len() > 100 {
                    return Err(PolicyError::DelaysTooMany);
                }
                check_jitter(*jitter)
            }
            RetryPolicy::Bounded {
                max_attempts,
                base_ms,
                factor,
                max_interval_ms,
                jitter,
                ..
            } => {
                if !(1..=100).contains(max_attempts) {
                    return Err(PolicyError::MaxAttemptsRange);
                }
                check_backoff(*base_ms, *factor, *max_interval_ms)?;
                check_jitter(*jitter)
            }
        }
    }

    /// The total number of attempts the policy allows, if it is bounded by a
    /// count (schedule: one first attempt plus one per delay).
    pub fn max_attempts_hint(&self) -> Option<u32> {
        match self {
            RetryPolicy::Exponential { max_attempts, .. } => *max_attempts,
            RetryPolicy::Schedule { delays_ms, .. } => Some(
                u32::try_from(delays_ms.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(1),
            ),
            RetryPolicy::Bounded { max_attempts, .. } => Some(*max_attempts),
        }
    }

    /// The outcome classes this policy retries.
    pub fn retry_on(&self) -> &[RetryClass] {
        match self {
            RetryPolicy::Exponential { retry_on, .. }
            | RetryPolicy::Schedule { retry_on, .. }
            | RetryPolicy::Bounded { retry_on, .. } => retry_on,
        }
    }

    /// How many unlisted 4xx responses are retried.
    pub fn retries_4xx(&self) -> u32 {
        match self {
            RetryPolicy::Exponential { retries_4xx, .. }
            | RetryPolicy::Schedule { retries_4xx, .. }
            | RetryPolicy::Bounded { retries_4xx, .. } => *retries_4xx,
        }
    }
}

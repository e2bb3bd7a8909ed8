//! Endpoint health: what an attempt says about its endpoint, the per-endpoint circuit breaker (closed,
//! open, half-open), the failure rate behind `endpoint.degraded`, and when an endpoint that only fails is
//! disabled.
//!
//! The breaker opens after [`BreakerPolicy::failures`] consecutive failed attempts. While open, no attempt
//! is made until [`BreakerHealth::probe_ms`]; from then on it is half-open: one delivery (the probe) may be
//! leased. A success closes it; a failure reopens it with twice the cooldown, up to
//! [`BreakerPolicy::max_cooldown_ms`].

use crate::failure_rate::FailureWindow;

/// The breaker's rules, from the operator's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failed attempts that open the breaker (0 turns breakers off).
    pub failures: u32,
    /// Wait from opening until the first probe.
    pub cooldown_ms: i64,
    /// Longest wait between probes, however many fail.
    pub max_cooldown_ms: i64,
}

impl Default for BreakerPolicy {
    /// Seed 004's "more than 5 consecutive failures"; 30 s to the first probe, at most 10 min between probes.
    fn default() -> Self {
        BreakerPolicy {
            failures: 5,
            cooldown_ms: 30_000,
            max_cooldown_ms: 600_000,
        }
    }
}

/// Everything that judges an endpoint's health, from the operator's configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthPolicy {
    /// The circuit breaker's rules.
    pub breaker: BreakerPolicy,
    /// Failure rate over the window above which the endpoint is degraded (above 1: never).
    pub degraded_rate: f64,
    /// The failure-rate window.
    pub window_ms: i64,
    /// Attempts the window must hold before its rate is judged.
    pub min_attempts: u32,
    /// An endpoint that has only failed for this long is disabled (0: never).
    pub disable_after_ms: i64,
}

impl Default for HealthPolicy {
    /// The default breaker; degraded above 10 % failures over 5 min (at least 20 attempts); disabled after
    /// 120 h of nothing but failures.
    fn default() -> Self {
        HealthPolicy {
            breaker: BreakerPolicy::default(),
            degraded_rate: 0.10,
            window_ms: 300_000,
            min_attempts: 20,
            disable_after_ms: 120 * 3_600_000,
        }
    }
}

/// What one attempt says about its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A 2xx: the endpoint works.
    Success,
    /// No answer (network error, timeout, refused), a 5xx, a 408 or a 429: the endpoint is down or
    /// overloaded.
    Failure,
    /// Any other answer (a 3xx or a 4xx): the endpoint is up and judged this one payload; the failure
    /// count is left as it is.
    Neutral,
}

/// Classify an attempt by its HTTP status (`None`: no answer).
pub fn classify(status_code: Option<u16>) -> Signal {
    match status_code {
        None => Signal::Failure,
        Some(200..=299) => Signal::Success,
        Some(408 | 429 | 500..=599) => Signal::Failure,
        Some(_) => Signal::Neutral,
    }
}

/// The breaker's state as shown to people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Attempts flow at the endpoint's limits.
    Closed,
    /// No attempt until the next probe.
    Open,
    /// The cooldown is over: one probe may be in flight.
    HalfOpen,
}

impl CircuitState {
    /// The name used in the API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// A change in an endpoint's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The breaker opened from closed: the endpoint started failing (`endpoint.failing`).
    Opened,
    /// A probe failed and the breaker opened again (no alert: it was already failing).
    Reopened,
    /// The breaker closed after being open: the endpoint recovered (`endpoint.recovered`).
    Closed,
    /// The failure rate over the window rose above the policy's (`endpoint.degraded`).
    Degraded,
    /// The endpoint has only failed for the policy's time and is to be disabled (`endpoint.disabled`).
    Disabled,
}

/// One endpoint's health as the store keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BreakerHealth {
    /// Failed attempts since the last success.
    pub failures: u32,
    /// Whether the breaker is open (or half-open).
    pub open: bool,
    /// When it last opened from closed.
    pub opened_ms: Option<i64>,
    /// While open: when the next probe may be sent.
    pub probe_ms: Option<i64>,
    /// While open: the current wait between probes.
    pub cooldown_ms: i64,
    /// When the current run of failures began (no success since).
    pub failing_since_ms: Option<i64>,
    /// The last failed attempt's error or status.
    pub last_error: Option<String>,
    /// When the breaker last opened or closed.
    pub changed_ms: Option<i64>,
    /// Attempts and failures over the failure-rate window.
    pub window: FailureWindow,
    /// Whether the failure rate is above the policy's (announced once until it falls to half of it).
    pub degraded: bool,
    /// When the endpoint was disabled for failing too long (cleared when it is enabled again).
    pub disabled_ms: Option<i64>,
}

impl BreakerHealth {
    /// The state at `now_ms`.
    pub fn state(&self, now_ms: i64) -> CircuitState {
        match (self.open, self.probe_ms) {
            (false, _) => CircuitState::Closed,
            (true, Some(probe)) if probe > now_ms => CircuitState::Open,
            (true, _) => CircuitState::HalfOpen,
        }
    }

    /// Take in one attempt's `signal` (with its `error`, for failures) at `now_ms`; the changes it makes are
    /// pushed onto `changes`.
    pub fn observe(
        &mut self,
        signal: Signal,
        error: Option<&str>,
        now_ms: i64,
        policy: &HealthPolicy,
        changes: &mut Vec<Transition>,
    ) {
        self.window
            .count(signal != Signal::Success, now_ms, policy.window_ms);
        match signal {
            Signal::Neutral => {}
            Signal::Success => {
                if self.open {
                    self.changed_ms = Some(now_ms);
                    changes.push(Transition::Closed);
                }
                self.failures = 0;
                self.open = false;
                self.probe_ms = None;
                self.cooldown_ms = 0;
                self.failing_since_ms = None;
                self.last_error = None;
            }
            Signal::Failure => {
                self.failures = self.failures.saturating_add(1);
                self.failing_since_ms.get_or_insert(now_ms);
                self.last_error = error.map(str::to_string);
                changes.extend(self.breaker_after_failure(now_ms, &policy.breaker));
                let failing_for = now_ms - self.failing_since_ms.unwrap_or(now_ms);
                if self.open
                    && policy.disable_after_ms > 0
                    && failing_for >= policy.disable_after_ms
                    && self.disabled_ms.is_none()
                {
                    self.disabled_ms = Some(now_ms);
                    changes.push(Transition::Disabled);
                }
            }
        }
        match self
            .window
            .rate(now_ms, policy.window_ms, policy.min_attempts)
        {
            Some(rate) if !self.degraded && !self.open && rate > policy.degraded_rate => {
                self.degraded = true;
                changes.push(Transition::Degraded);
            }
            Some(rate) if self.degraded && rate <= policy.degraded_rate / 2.0 => {
                self.degraded = false;
            }
            _ => {}
        }
    }

    /// The breaker's move after a failed attempt at `now_ms`, if any.
    fn breaker_after_failure(&mut self, now_ms: i64, policy: &BreakerPolicy) -> Option<Transition> {
        if policy.failures == 0 {
            return None;
        }
        if !self.open {
            if self.failures < policy.failures {
                return None;
            }
            self.open = true;
            self.opened_ms = Some(now_ms);
            self.changed_ms = Some(now_ms);
            self.cooldown_ms = policy.cooldown_ms.max(1);
            self.probe_ms = Some(now_ms + self.cooldown_ms);
            return Some(Transition::Opened);
        }
        if self.state(now_ms) == CircuitState::HalfOpen {
            // The probe (or an attempt that outlived the cooldown) failed: wait longer.
            self.cooldown_ms =
                (self.cooldown_ms.max(1) * 2).min(policy.max_cooldown_ms.max(policy.cooldown_ms));
            self.probe_ms = Some(now_ms + self.cooldown_ms);
            return Some(Transition::Reopened);
        }
        // An attempt that was already in flight when the breaker opened.
        None
    }
}

#[cfg(test)]
mod tests;

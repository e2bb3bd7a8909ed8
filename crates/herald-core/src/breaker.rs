//! The per-endpoint circuit breaker: what an attempt says about its endpoint's health, and how the breaker
//! moves between closed, open and half-open.
//!
//! The breaker opens after [`BreakerPolicy::failures`] consecutive failed attempts. While open, no attempt
//! is made until [`BreakerHealth::probe_ms`]; from then on it is half-open: one delivery (the probe) may be
//! leased. A success closes it; a failure reopens it with twice the cooldown, up to
//! [`BreakerPolicy::max_cooldown_ms`].

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

/// A breaker change worth telling people about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// It opened from closed: the endpoint started failing.
    Opened,
    /// A probe failed and it opened again (no new alert: it was already failing).
    Reopened,
    /// It closed after being open: the endpoint recovered.
    Closed,
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

    /// Take in one attempt's `signal` (with its `error`, for failures) at `now_ms`; returns the change, if
    /// the breaker moved.
    pub fn observe(
        &mut self,
        signal: Signal,
        error: Option<&str>,
        now_ms: i64,
        policy: &BreakerPolicy,
    ) -> Option<Transition> {
        match signal {
            Signal::Neutral => None,
            Signal::Success => {
                let was_open = self.open;
                *self = BreakerHealth {
                    changed_ms: if was_open {
                        Some(now_ms)
                    } else {
                        self.changed_ms
                    },
                    opened_ms: self.opened_ms,
                    ..BreakerHealth::default()
                };
                was_open.then_some(Transition::Closed)
            }
            Signal::Failure => {
                self.failures = self.failures.saturating_add(1);
                self.failing_since_ms.get_or_insert(now_ms);
                self.last_error = error.map(str::to_string);
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
                    self.cooldown_ms = (self.cooldown_ms.max(1) * 2)
                        .min(policy.max_cooldown_ms.max(policy.cooldown_ms));
                    self.probe_ms = Some(now_ms + self.cooldown_ms);
                    return Some(Transition::Reopened);
                }
                // An attempt that was already in flight when the breaker opened.
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BreakerPolicy = BreakerPolicy {
        failures: 3,
        cooldown_ms: 1_000,
        max_cooldown_ms: 3_000,
    };

    fn fail(h: &mut BreakerHealth, now: i64) -> Option<Transition> {
        h.observe(Signal::Failure, Some("HTTP 503"), now, &POLICY)
    }

    #[test]
    fn answers_are_classified_by_what_they_say_about_the_endpoint() {
        assert_eq!(classify(Some(204)), Signal::Success);
        assert_eq!(classify(None), Signal::Failure);
        for code in [408, 429, 500, 503] {
            assert_eq!(classify(Some(code)), Signal::Failure, "{code}");
        }
        for code in [301, 400, 404, 410] {
            assert_eq!(classify(Some(code)), Signal::Neutral, "{code}");
        }
    }

    #[test]
    fn opens_after_the_configured_run_of_failures() {
        let mut h = BreakerHealth::default();
        assert_eq!(fail(&mut h, 10), None);
        assert_eq!(fail(&mut h, 20), None);
        assert_eq!(h.state(20), CircuitState::Closed);
        assert_eq!(fail(&mut h, 30), Some(Transition::Opened));
        assert_eq!(h.state(31), CircuitState::Open);
        assert_eq!(h.probe_ms, Some(1_030));
        assert_eq!(h.opened_ms, Some(30));
        assert_eq!(h.failing_since_ms, Some(10));
        assert_eq!(h.last_error.as_deref(), Some("HTTP 503"));
        assert_eq!(h.state(1_030), CircuitState::HalfOpen);
    }

    #[test]
    fn a_success_or_a_neutral_answer_breaks_the_run() {
        let mut h = BreakerHealth::default();
        fail(&mut h, 1);
        fail(&mut h, 2);
        assert_eq!(h.observe(Signal::Neutral, None, 3, &POLICY), None);
        assert_eq!(h.failures, 2);
        assert_eq!(h.observe(Signal::Success, None, 4, &POLICY), None);
        assert_eq!(h, BreakerHealth::default());
        assert_eq!(fail(&mut h, 5), None);
    }

    #[test]
    fn failures_in_flight_when_it_opened_do_not_push_the_probe_back() {
        let mut h = BreakerHealth::default();
        for t in 0..3 {
            fail(&mut h, t);
        }
        assert_eq!(fail(&mut h, 500), None);
        assert_eq!(h.probe_ms, Some(1_002));
    }

    #[test]
    fn failed_probes_double_the_cooldown_up_to_the_cap() {
        let mut h = BreakerHealth::default();
        for t in 0..3 {
            fail(&mut h, t);
        }
        assert_eq!(fail(&mut h, 1_002), Some(Transition::Reopened));
        assert_eq!(h.probe_ms, Some(3_002));
        assert_eq!(fail(&mut h, 3_002), Some(Transition::Reopened));
        assert_eq!(h.probe_ms, Some(6_002), "capped at 3 s");
        assert_eq!(h.opened_ms, Some(2), "opened once");
    }

    #[test]
    fn a_successful_probe_closes_it() {
        let mut h = BreakerHealth::default();
        for t in 0..3 {
            fail(&mut h, t);
        }
        assert_eq!(
            h.observe(Signal::Success, None, 1_100, &POLICY),
            Some(Transition::Closed)
        );
        assert_eq!(h.state(1_100), CircuitState::Closed);
        assert_eq!(h.failures, 0);
        assert_eq!(h.changed_ms, Some(1_100));
        assert_eq!(h.opened_ms, Some(2), "when it last opened is kept");
    }

    #[test]
    fn a_zero_threshold_never_opens() {
        let off = BreakerPolicy {
            failures: 0,
            ..POLICY
        };
        let mut h = BreakerHealth::default();
        for t in 0..100 {
            assert_eq!(h.observe(Signal::Failure, None, t, &off), None);
        }
        assert_eq!(h.state(100), CircuitState::Closed);
    }
}

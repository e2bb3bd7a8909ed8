use super::*;

const POLICY: HealthPolicy = HealthPolicy {
    breaker: BreakerPolicy {
        failures: 3,
        cooldown_ms: 1_000,
        max_cooldown_ms: 3_000,
    },
    degraded_rate: 0.10,
    window_ms: 60_000,
    min_attempts: 10,
    disable_after_ms: 0,
};

fn observe(
    h: &mut BreakerHealth,
    signal: Signal,
    now: i64,
    policy: &HealthPolicy,
) -> Vec<Transition> {
    let mut changes = Vec::new();
    h.observe(signal, Some("HTTP 503"), now, policy, &mut changes);
    changes
}

fn fail(h: &mut BreakerHealth, now: i64) -> Vec<Transition> {
    observe(h, Signal::Failure, now, &POLICY)
}

fn succeed(h: &mut BreakerHealth, now: i64) -> Vec<Transition> {
    observe(h, Signal::Success, now, &POLICY)
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
    assert!(fail(&mut h, 10).is_empty());
    assert!(fail(&mut h, 20).is_empty());
    assert_eq!(h.state(20), CircuitState::Closed);
    assert_eq!(fail(&mut h, 30), [Transition::Opened]);
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
    assert!(observe(&mut h, Signal::Neutral, 3, &POLICY).is_empty());
    assert_eq!(h.failures, 2);
    assert!(succeed(&mut h, 4).is_empty());
    assert_eq!(h.failures, 0);
    assert_eq!(h.failing_since_ms, None);
    assert!(fail(&mut h, 5).is_empty());
}

#[test]
fn failures_in_flight_when_it_opened_do_not_push_the_probe_back() {
    let mut h = BreakerHealth::default();
    for t in 0..3 {
        fail(&mut h, t);
    }
    assert!(fail(&mut h, 500).is_empty());
    assert_eq!(h.probe_ms, Some(1_002));
}

#[test]
fn failed_probes_double_the_cooldown_up_to_the_cap() {
    let mut h = BreakerHealth::default();
    for t in 0..3 {
        fail(&mut h, t);
    }
    assert_eq!(fail(&mut h, 1_002), [Transition::Reopened]);
    assert_eq!(h.probe_ms, Some(3_002));
    assert_eq!(fail(&mut h, 3_002), [Transition::Reopened]);
    assert_eq!(h.probe_ms, Some(6_002), "capped at 3 s");
    assert_eq!(h.opened_ms, Some(2), "opened once");
}

#[test]
fn a_successful_probe_closes_it() {
    let mut h = BreakerHealth::default();
    for t in 0..3 {
        fail(&mut h, t);
    }
    assert_eq!(succeed(&mut h, 1_100), [Transition::Closed]);
    assert_eq!(h.state(1_100), CircuitState::Closed);
    assert_eq!(h.failures, 0);
    assert_eq!(h.changed_ms, Some(1_100));
    assert_eq!(h.opened_ms, Some(2), "when it last opened is kept");
}

#[test]
fn a_zero_threshold_never_opens() {
    let off = HealthPolicy {
        breaker: BreakerPolicy {
            failures: 0,
            ..POLICY.breaker
        },
        ..POLICY
    };
    let mut h = BreakerHealth::default();
    for t in 0..100 {
        let changes = observe(&mut h, Signal::Failure, t, &off);
        assert!(!changes.contains(&Transition::Opened));
    }
    assert_eq!(h.state(100), CircuitState::Closed);
}

#[test]
fn a_failure_rate_above_the_policy_is_announced_once() {
    let mut h = BreakerHealth::default();
    // 2 failures in 10 attempts, never 3 in a row: the breaker stays closed, the rate is 20 %.
    let mut seen = Vec::new();
    for t in 0..10 {
        let signal = if t % 5 == 0 {
            Signal::Failure
        } else {
            Signal::Success
        };
        seen.extend(observe(&mut h, signal, t, &POLICY));
    }
    assert_eq!(
        seen,
        [Transition::Degraded],
        "announced when the window holds enough attempts"
    );
    assert!(h.degraded);
    assert!(fail(&mut h, 11).is_empty(), "not announced twice");
    // Enough successes bring the rate under half the threshold: it may be announced again later.
    for t in 12..100 {
        succeed(&mut h, t);
    }
    assert!(!h.degraded);
}

#[test]
fn an_open_breaker_is_failing_not_degraded() {
    let mut h = BreakerHealth::default();
    let mut seen = Vec::new();
    for t in 0..12 {
        seen.extend(fail(&mut h, t));
    }
    assert_eq!(seen, [Transition::Opened]);
    assert!(!h.degraded);
}

#[test]
fn an_endpoint_that_only_fails_for_the_policys_time_is_disabled_once() {
    let policy = HealthPolicy {
        disable_after_ms: 10_000,
        ..POLICY
    };
    let mut h = BreakerHealth::default();
    for t in 0..3 {
        observe(&mut h, Signal::Failure, t, &policy);
    }
    assert_eq!(
        observe(&mut h, Signal::Failure, 9_999, &policy),
        [Transition::Reopened]
    );
    let at = 10_000 + h.cooldown_ms;
    let changes = observe(&mut h, Signal::Failure, at, &policy);
    assert!(changes.contains(&Transition::Disabled), "{changes:?}");
    assert_eq!(h.disabled_ms, Some(at));
    let again = observe(&mut h, Signal::Failure, at + 50_000, &policy);
    assert!(!again.contains(&Transition::Disabled));
}

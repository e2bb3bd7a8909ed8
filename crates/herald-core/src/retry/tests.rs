//! Tests for retry decisions, policy serde and validation.

use super::*;

pub(super) const NOW: i64 = 1_700_000_000_000;

pub(super) fn resp(status: u16) -> AttemptOutcome {
    AttemptOutcome::Response {
        status,
        retry_after_ms: None,
    }
}

pub(super) fn ctx(attempt_number: u32, prior_4xx: u32) -> RetryContext {
    RetryContext {
        attempt_number,
        first_attempt_ms: NOW,
        now_ms: NOW,
        prior_4xx,
    }
}

/// Checks one decision at sample 0.5; `want` is a delay in ms from now, or
/// `None` for `Fail`.
fn check(
    policy: &RetryPolicy,
    attempt: u32,
    prior_4xx: u32,
    outcome: AttemptOutcome,
    want: Option<i64>,
) {
    let got = policy.decide(&ctx(attempt, prior_4xx), &outcome, 0.5);
    let want = want.map_or(Decision::Fail, |d| Decision::RetryAt(NOW + d));
    assert_eq!(
        got, want,
        "attempt {attempt}, prior_4xx {prior_4xx}, {outcome:?}"
    );
}

#[test]
fn success_is_delivered() {
    for p in [
        RetryPolicy::seed_001(),
        RetryPolicy::seed_003(),
        RetryPolicy::seed_004(),
    ] {
        assert_eq!(p.decide(&ctx(1, 0), &resp(200), 0.5), Decision::Delivered);
        assert_eq!(p.decide(&ctx(99, 9), &resp(299), 0.1), Decision::Delivered);
    }
}

#[test]
fn seed_001_delays() {
    let p = RetryPolicy::seed_001();
    let secs = [
        1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600, 3600,
    ];
    for (i, s) in secs.iter().enumerate() {
        check(&p, i as u32 + 1, 0, resp(503), Some(s * 1000));
    }
}

#[test]
fn seed_001_classes() {
    let p = RetryPolicy::seed_001();
    check(
        &p,
        1,
        0,
        AttemptOutcome::Error(ErrorKind::Timeout),
        Some(1000),
    );
    check(
        &p,
        1,
        0,
        AttemptOutcome::Error(ErrorKind::Connect),
        Some(1000),
    );
    for s in [408, 502, 503, 504] {
        check(&p, 1, 0, resp(s), Some(1000));
    }
    for s in [500, 404, 429, 302, 400] {
        check(&p, 1, 0, resp(s), None);
    }
    check(&p, 1, 0, AttemptOutcome::Error(ErrorKind::Blocked), None);
}

#[test]
fn seed_001_gives_up_after_12_hours() {
    let p = RetryPolicy::seed_001();
    let mut now = NOW;
    let mut attempt = 1;
    loop {
        let c = RetryContext {
            attempt_number: attempt,
            first_attempt_ms: NOW,
            now_ms: now,
            prior_4xx: 0,
        };
        match p.decide(&c, &resp(503), 0.5) {
            Decision::RetryAt(at) => {
                assert!(at - NOW <= 43_200_000);
                now = at;
                attempt += 1;
            }
            Decision::Fail => break,
            Decision::Delivered => unreachable!(),
        }
    }
    // Attempts 1..=12 wait 1 s..2048 s (4095 s in total), then 3600 s each.
    // Attempt 23 runs at 4095 + 10 * 3600 = 40095 s; 40095 + 3600 > 43200.
    assert_eq!(attempt, 23);
    assert_eq!(now - NOW, 40_095_000);
}

#[test]
fn seed_004_schedule() {
    let p = RetryPolicy::seed_004();
    let outcomes = [
        resp(503),
        resp(404),
        resp(302),
        AttemptOutcome::Error(ErrorKind::Connect),
    ];
    for o in outcomes {
        check(&p, 1, 0, o.clone(), Some(10_000));
        check(&p, 2, 0, o.clone(), Some(100_000));
        check(&p, 3, 0, o, None);
    }
    check(&p, 1, 0, AttemptOutcome::Error(ErrorKind::Blocked), None);
    assert_eq!(p.max_attempts_hint(), Some(3));
}

#[test]
fn seed_003_bounded() {
    let p = RetryPolicy::seed_003();
    check(&p, 1, 0, resp(500), Some(1000));
    check(&p, 2, 0, resp(500), Some(2000));
    check(&p, 3, 0, resp(500), None);
    check(&p, 1, 0, resp(404), Some(1000));
    check(&p, 2, 1, resp(404), None);
    check(&p, 1, 0, resp(429), Some(1000));
    check(&p, 1, 5, resp(429), Some(1000));
    assert_eq!(p.max_attempts_hint(), Some(3));
}

#[test]
fn seed_003_jitter_bounds() {
    let p = RetryPolicy::seed_003();
    for (attempt, lo, hi) in [(1, 800, 1200), (2, 1600, 2400)] {
        for sample in [0.0, 0.1, 0.5, 0.9, 0.999_999] {
            let Decision::RetryAt(at) = p.decide(&ctx(attempt, 0), &resp(503), sample) else {
                panic!("expected retry");
            };
            assert!(
                (lo..=hi).contains(&(at - NOW)),
                "{attempt} {sample} {}",
                at - NOW
            );
        }
    }
    assert_eq!(p.delay_ms(1, 0.0), Some(800));
    assert_eq!(p.delay_ms(1, 0.75), Some(1100));
}

#[test]
fn retry_after_raises_delay() {
    let p = RetryPolicy::seed_001();
    let ra = |ms| AttemptOutcome::Response {
        status: 503,
        retry_after_ms: Some(ms),
    };
    check(&p, 1, 0, ra(30_000), Some(30_000));
    check(&p, 5, 0, ra(1_000), Some(16_000));
    check(&p, 1, 0, ra(7_200_000), Some(3_600_000));
    let s = RetryPolicy::seed_004();
    check(&s, 1, 0, ra(50_000), Some(50_000));
    check(&s, 1, 0, ra(172_800_000), Some(86_400_000));
    check(&s, 3, 0, ra(50_000), None);
}

#[test]
fn exponential_max_attempts() {
    let p: RetryPolicy =
        serde_json::from_str(r#"{"kind":"exponential","max_attempts":2,"jitter":0}"#).unwrap();
    check(&p, 1, 0, resp(500), Some(1000));
    check(&p, 2, 0, resp(500), None);
}

//! Tests for policy serde, validation, and property tests of `decide`.

use super::tests::{ctx, resp, NOW};
use super::*;
use proptest::prelude::*;

#[test]
fn json_defaults_and_errors() {
    let b: RetryPolicy = serde_json::from_str(r#"{"kind":"bounded"}"#).unwrap();
    let RetryPolicy::Bounded {
        max_attempts,
        base_ms,
        factor,
        jitter,
        ref retry_on,
        retries_4xx,
        ..
    } = b
    else {
        panic!("not bounded");
    };
    assert_eq!(
        (max_attempts, base_ms, factor, jitter, retries_4xx),
        (3, 1000, 2.0, 0.2, 1)
    );
    assert_eq!(*retry_on, default_retry_on());
    let e: RetryPolicy = serde_json::from_str(r#"{"kind":"exponential"}"#).unwrap();
    assert_eq!(e, RetryPolicy::default());
    let s: RetryPolicy =
        serde_json::from_str(r#"{"kind":"schedule","delays_ms":[10000,100000]}"#).unwrap();
    assert_eq!(s, RetryPolicy::seed_004());
    let json = serde_json::to_value(RetryPolicy::default()).unwrap();
    assert_eq!(json["max_attempts"], serde_json::Value::Null);
    assert_eq!(json["kind"], "exponential");
    assert_eq!(
        json["retry_on"],
        serde_json::json!(["network", "timeout", "408", "429", "5xx"])
    );
    for bad in [
        r#"{"kind":"schedule"}"#,
        r#"{"kind":"bounded","bogus":1}"#,
        r#"{"kind":"exponential","delays_ms":[1]}"#,
        r#"{"kind":"linear"}"#,
        r#"{"base_ms":1000}"#,
        r#"{"kind":"bounded","retry_on":["6xx"]}"#,
    ] {
        assert!(serde_json::from_str::<RetryPolicy>(bad).is_err(), "{bad}");
    }
}

#[test]
fn validation() {
    let ok = [
        RetryPolicy::default(),
        RetryPolicy::seed_001(),
        RetryPolicy::seed_003(),
        RetryPolicy::seed_004(),
    ];
    for p in ok {
        assert_eq!(p.validate(), Ok(()));
    }
    let cases = [
        (r#"{"kind":"exponential","base_ms":0}"#, PolicyError::BaseMs),
        (
            r#"{"kind":"exponential","factor":0.5}"#,
            PolicyError::Factor,
        ),
        (r#"{"kind":"bounded","factor":10.5}"#, PolicyError::Factor),
        (
            r#"{"kind":"exponential","jitter":1.5}"#,
            PolicyError::Jitter,
        ),
        (
            r#"{"kind":"schedule","delays_ms":[1],"jitter":-0.1}"#,
            PolicyError::Jitter,
        ),
        (
            r#"{"kind":"exponential","max_attempts":0}"#,
            PolicyError::MaxAttempts,
        ),
        (
            r#"{"kind":"bounded","max_attempts":0}"#,
            PolicyError::MaxAttemptsRange,
        ),
        (
            r#"{"kind":"bounded","max_attempts":101}"#,
            PolicyError::MaxAttemptsRange,
        ),
        (
            r#"{"kind":"schedule","delays_ms":[]}"#,
            PolicyError::DelaysEmpty,
        ),
        (
            r#"{"kind":"bounded","base_ms":5000,"max_interval_ms":4000}"#,
            PolicyError::MaxInterval,
        ),
    ];
    for (json, want) in cases {
        let p: RetryPolicy = serde_json::from_str(json).unwrap();
        assert_eq!(p.validate(), Err(want), "{json}");
    }
    let many = RetryPolicy::Schedule {
        delays_ms: vec![1; 101],
        jitter: 0.0,
        retry_on: vec![],
        retries_4xx: 0,
    };
    assert_eq!(many.validate(), Err(PolicyError::DelaysTooMany));
    assert_eq!(
        PolicyError::Jitter.to_string(),
        "retry_policy.jitter must be between 0 and 1"
    );
}

fn class_strategy() -> impl Strategy<Value = RetryClass> + Clone {
    prop_oneof![
        Just(RetryClass::Network),
        Just(RetryClass::Timeout),
        Just(RetryClass::Redirect),
        Just(RetryClass::ClientError),
        Just(RetryClass::ServerError),
        (100u16..=599).prop_map(RetryClass::Status),
    ]
}

/// Valid-looking policies whose floats have short decimal forms.
fn policy_strategy() -> impl Strategy<Value = RetryPolicy> {
    let f = |lo: u32, hi: u32| (lo..=hi).prop_map(|v| f64::from(v) / 100.0);
    let classes = proptest::collection::vec(class_strategy(), 0..6);
    prop_oneof![
        (
            1u64..100_000,
            f(100, 1000),
            any::<u64>(),
            any::<u64>(),
            any::<Option<u32>>(),
            f(0, 100),
            classes.clone(),
            any::<u32>()
        )
            .prop_map(
                |(
                    base_ms,
                    factor,
                    max_interval_ms,
                    max_age_ms,
                    max_attempts,
                    jitter,
                    retry_on,
                    retries_4xx,
                )| {
                    RetryPolicy::Exponential {
                        base_ms,
                        factor,
                        max_interval_ms,
                        max_age_ms,
                        max_attempts,
                        jitter,
                        retry_on,
                        retries_4xx,
                    }
                }
            ),
        (
            proptest::collection::vec(any::<u64>(), 0..10),
            f(0, 100),
            classes.clone(),
            any::<u32>()
        )
            .prop_map(
                |(delays_ms, jitter, retry_on, retries_4xx)| RetryPolicy::Schedule {
                    delays_ms,
                    jitter,
                    retry_on,
                    retries_4xx
                }
            ),
        (
            any::<u32>(),
            1u64..100_000,
            f(100, 1000),
            any::<u64>(),
            f(0, 100),
            classes,
            any::<u32>()
        )
            .prop_map(
                |(
                    max_attempts,
                    base_ms,
                    factor,
                    max_interval_ms,
                    jitter,
                    retry_on,
                    retries_4xx,
                )| {
                    RetryPolicy::Bounded {
                        max_attempts,
                        base_ms,
                        factor,
                        max_interval_ms,
                        jitter,
                        retry_on,
                        retries_4xx,
                    }
                }
            ),
    ]
}

fn outcome_strategy() -> impl Strategy<Value = AttemptOutcome> {
    prop_oneof![
        (any::<u16>(), any::<Option<u64>>()).prop_map(|(status, retry_after_ms)| {
            AttemptOutcome::Response {
                status,
                retry_after_ms,
            }
        }),
        proptest::sample::select(ErrorKind::ALL.to_vec()).prop_map(AttemptOutcome::Error),
    ]
}

proptest! {
    #[test]
    fn delay_within_jitter_bounds(
        base in 1u64..100_000, factor in 1.0f64..=10.0, jitter in 0.0f64..=1.0,
        attempt in 1u32..300, sample in 0.0f64..1.0, cap_extra in 0u64..100_000_000,
    ) {
        let cap = base + cap_extra;
        let p = RetryPolicy::Exponential {
            base_ms: base, factor, max_interval_ms: cap, max_age_ms: u64::MAX, max_attempts: None,
            jitter, retry_on: default_retry_on(), retries_4xx: 0,
        };
        let d = (base as f64 * factor.powi(attempt as i32 - 1)).min(cap as f64);
        let Decision::RetryAt(at) = p.decide(&ctx(attempt, 0), &resp(503), sample) else {
            return Err(TestCaseError::fail("expected retry"));
        };
        let got = (at - NOW) as f64;
        prop_assert!(got >= d * (1.0 - jitter) - 0.5 - 1e-6, "{} < {}", got, d * (1.0 - jitter));
        prop_assert!(got <= (d * (1.0 + jitter)).min(cap as f64) + 0.5 + 1e-6);
    }

    #[test]
    fn decide_never_panics(
        policy in policy_strategy(), factor in any::<f64>(), jitter in any::<f64>(),
        attempt in any::<u32>(), first in any::<i64>(), now in any::<i64>(), prior in any::<u32>(),
        outcome in outcome_strategy(), sample in any::<f64>(),
    ) {
        let c = RetryContext { attempt_number: attempt, first_attempt_ms: first, now_ms: now, prior_4xx: prior };
        let _ = policy.decide(&c, &outcome, sample);
        let weird = match policy {
            RetryPolicy::Bounded { max_attempts, base_ms, max_interval_ms, retry_on, retries_4xx, .. } =>
                RetryPolicy::Bounded { max_attempts, base_ms, factor, max_interval_ms, jitter, retry_on, retries_4xx },
            other => other,
        };
        let _ = weird.decide(&c, &outcome, sample);
        let _ = weird.validate();
    }

    #[test]
    fn json_round_trip(policy in policy_strategy()) {
        let json = serde_json::to_string(&policy).unwrap();
        let back: RetryPolicy = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, policy);
    }
}

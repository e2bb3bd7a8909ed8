//! Pacing an endpoint's requests to its `rate_limit_per_s` across every node, from one stored time: when
//! the next request would be due if requests went out evenly (`next_send_ms`, the theoretical arrival time
//! of the generic cell rate algorithm). A claim may send as many requests as fit in the second after now;
//! taking them moves that time on by one interval each. So over any span of `s` seconds an endpoint gets at
//! most `rate × (s + 1)` requests, and a claim leases only what may be sent at once: no lease waits for
//! its turn.

/// How far ahead of now requests may be taken: one second's worth (the burst).
pub const BURST_MS: f64 = 1_000.0;

fn interval_ms(rate_per_s: u32) -> f64 {
    1_000.0 / f64::from(rate_per_s.max(1))
}

/// How many requests an endpoint paced at `rate_per_s` may send at `now_ms`, given its stored
/// `next_send_ms` (`None`: never paced yet).
pub fn allowance(rate_per_s: u32, next_send_ms: Option<i64>, now_ms: i64) -> u32 {
    let start = next_send_ms.unwrap_or(now_ms).max(now_ms) as f64;
    let room = now_ms as f64 + BURST_MS - start;
    if room <= 0.0 {
        return 0;
    }
    ((room / interval_ms(rate_per_s)).floor() as u64).min(u64::from(rate_per_s.max(1))) as u32
}

/// The stored time after `taken` requests were sent at `now_ms`.
pub fn advance(rate_per_s: u32, next_send_ms: Option<i64>, now_ms: i64, taken: u32) -> i64 {
    let start = next_send_ms.unwrap_or(now_ms).max(now_ms) as f64;
    (start + f64::from(taken) * interval_ms(rate_per_s)).ceil() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_endpoint_may_send_one_second_of_requests() {
        assert_eq!(allowance(10, None, 5_000), 10);
        assert_eq!(allowance(1, None, 5_000), 1);
        assert_eq!(advance(10, None, 5_000, 10), 6_000);
    }

    #[test]
    fn after_a_burst_requests_come_at_the_rate() {
        let now = 5_000;
        let next = advance(10, None, now, 10);
        assert_eq!(allowance(10, Some(next), now), 0);
        assert_eq!(allowance(10, Some(next), now + 99), 0);
        assert_eq!(allowance(10, Some(next), now + 100), 1);
        assert_eq!(allowance(10, Some(next), now + 450), 4);
        let later = advance(10, Some(next), now + 450, 4);
        assert_eq!(later, 6_400);
        assert_eq!(allowance(10, Some(later), now + 450), 0);
    }

    #[test]
    fn over_any_span_the_rate_holds_with_one_second_of_burst() {
        let (rate, mut next, mut sent) = (50u32, None, 0u32);
        for now in (0..10_000).step_by(37) {
            let n = allowance(rate, next, now);
            next = Some(advance(rate, next, now, n));
            sent += n;
        }
        assert!(sent <= 50 * 11, "{sent}");
        assert!(sent >= 50 * 10 - 5, "{sent}: the rate is reached");
    }

    #[test]
    fn idle_time_is_not_saved_up_beyond_the_burst() {
        assert_eq!(allowance(5, Some(0), 1_000_000), 5);
        assert_eq!(advance(5, Some(0), 1_000_000, 2), 1_000_400);
    }

    #[test]
    fn taking_fewer_than_allowed_leaves_the_rest() {
        let next = advance(4, None, 0, 1);
        assert_eq!(allowance(4, Some(next), 0), 3);
    }
}

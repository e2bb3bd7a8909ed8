//! A token bucket: at most `rate` operations a second on average, bursts of up to `burst`. Time is passed
//! in, so the bucket is a pure value.

/// Tokens left and when they were counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    counted_ms: i64,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens at `now_ms`.
    pub fn full(burst: u32, now_ms: i64) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(burst.max(1)),
            counted_ms: now_ms,
        }
    }

    /// Whether the bucket would be full at `now_ms` (it carries no state worth keeping).
    pub fn is_full(&self, now_ms: i64, rate_per_s: u32, burst: u32) -> bool {
        let elapsed_s = (now_ms - self.counted_ms).max(0) as f64 / 1000.0;
        self.tokens + elapsed_s * f64::from(rate_per_s.max(1)) >= f64::from(burst.max(1))
    }

    /// Take one token at `now_ms`, refilling at `rate_per_s` up to `burst`. `Err(wait_ms)`: none is left,
    /// and one will be in `wait_ms`.
    pub fn take(&mut self, now_ms: i64, rate_per_s: u32, burst: u32) -> Result<(), u64> {
        let rate = f64::from(rate_per_s.max(1));
        let burst = f64::from(burst.max(1));
        let elapsed_s = (now_ms - self.counted_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed_s * rate).min(burst);
        self.counted_ms = self.counted_ms.max(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - self.tokens) / rate) * 1000.0).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let mut b = TokenBucket::full(3, 0);
        for _ in 0..3 {
            assert_eq!(b.take(0, 10, 3), Ok(()));
        }
        assert_eq!(b.take(0, 10, 3), Err(100), "one token every 100 ms at 10/s");
        assert_eq!(b.take(50, 10, 3), Err(50));
        assert_eq!(b.take(100, 10, 3), Ok(()));
    }

    #[test]
    fn refills_up_to_the_burst_only() {
        let mut b = TokenBucket::full(2, 0);
        b.take(0, 1, 2).unwrap();
        b.take(0, 1, 2).unwrap();
        assert!(b.take(60_000, 1, 2).is_ok());
        assert!(b.take(60_000, 1, 2).is_ok());
        assert!(
            b.take(60_000, 1, 2).is_err(),
            "a minute of silence still holds only 2"
        );
        assert!(!b.is_full(60_000, 1, 2));
        assert!(b.is_full(62_000, 1, 2));
    }

    #[test]
    fn a_clock_going_back_does_not_mint_tokens() {
        let mut b = TokenBucket::full(1, 1_000);
        b.take(1_000, 1, 1).unwrap();
        assert!(b.take(500, 1, 1).is_err());
        assert!(b.take(1_999, 1, 1).is_err());
        assert!(b.take(2_500, 1, 1).is_ok());
    }
}

//! Attempt statistics: the latency histogram every recorded attempt lands in, and percentiles read back from
//! it. The stores keep one histogram per endpoint and minute, so charts over an hour or a day read a few
//! thousand small rows instead of the attempts themselves.

/// Upper bounds (inclusive, in ms) of the latency buckets; a last bucket holds everything slower.
pub const LATENCY_BOUNDS_MS: [u32; 11] =
    [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

/// How many latency buckets a histogram has.
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// Width of the stored time buckets.
pub const MINUTE_MS: i64 = 60_000;

/// The bucket an attempt of `duration_ms` falls in.
pub fn latency_bucket(duration_ms: u32) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|bound| duration_ms <= *bound)
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

/// The start of the minute `at_ms` falls in.
pub fn minute_of(at_ms: i64) -> i64 {
    at_ms.div_euclid(MINUTE_MS) * MINUTE_MS
}

/// How an attempt ended, as the statistics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx: the delivery is done.
    Delivered,
    /// It failed and another attempt is planned.
    Retried,
    /// It failed and the delivery gave up (dead letter).
    Failed,
}

/// Counts of one endpoint over one time bucket (or any sum of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Attempts that delivered.
    pub delivered: u64,
    /// Failed attempts that will be retried.
    pub retried: u64,
    /// Failed attempts after which the delivery gave up.
    pub failed: u64,
    /// Sum of the attempts' durations.
    pub duration_ms: u64,
    /// Attempts per latency bucket ([`LATENCY_BOUNDS_MS`]).
    pub latency: [u64; LATENCY_BUCKETS],
}

impl Tally {
    /// Count one attempt.
    pub fn add(&mut self, outcome: Outcome, duration_ms: u32) {
        match outcome {
            Outcome::Delivered => self.delivered += 1,
            Outcome::Retried => self.retried += 1,
            Outcome::Failed => self.failed += 1,
        }
        self.duration_ms += u64::from(duration_ms);
        self.latency[latency_bucket(duration_ms)] += 1;
    }

    /// Add another tally to this one.
    pub fn merge(&mut self, other: &Tally) {
        self.delivered += other.delivered;
        self.retried += other.retried;
        self.failed += other.failed;
        self.duration_ms += other.duration_ms;
        for (mine, theirs) in self.latency.iter_mut().zip(other.latency) {
            *mine += theirs;
        }
    }

    /// Every attempt counted.
    pub fn attempts(&self) -> u64 {
        self.delivered + self.retried + self.failed
    }

    /// Share of attempts that delivered, when there were any.
    pub fn success_rate(&self) -> Option<f64> {
        let attempts = self.attempts();
        (attempts > 0).then(|| self.delivered as f64 / attempts as f64)
    }

    /// Mean attempt duration, when there were attempts.
    pub fn mean_ms(&self) -> Option<f64> {
        let attempts = self.attempts();
        (attempts > 0).then(|| self.duration_ms as f64 / attempts as f64)
    }

    /// The `q` quantile (0 < q ≤ 1) of the attempt durations, as the upper bound of the bucket it falls in
    /// (`None` when nothing was counted, or when it falls in the last, unbounded, bucket: then it is above
    /// [`LATENCY_BOUNDS_MS`]'s last bound).
    pub fn percentile_ms(&self, q: f64) -> Option<u32> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, count) in self.latency.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return LATENCY_BOUNDS_MS.get(bucket).copied();
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_the_bucket_of_their_upper_bound() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(5), 0);
        assert_eq!(latency_bucket(6), 1);
        assert_eq!(latency_bucket(10_000), 10);
        assert_eq!(latency_bucket(10_001), 11);
    }

    #[test]
    fn minutes_start_on_the_minute_even_before_the_epoch() {
        assert_eq!(minute_of(125_000), 120_000);
        assert_eq!(minute_of(120_000), 120_000);
        assert_eq!(minute_of(-1), -60_000);
    }

    #[test]
    fn percentiles_read_the_histogram() {
        let mut t = Tally::default();
        assert_eq!(t.percentile_ms(0.5), None);
        for _ in 0..90 {
            t.add(Outcome::Delivered, 3);
        }
        for _ in 0..9 {
            t.add(Outcome::Retried, 40);
        }
        t.add(Outcome::Failed, 20_000);
        assert_eq!(t.attempts(), 100);
        assert_eq!(t.percentile_ms(0.5), Some(5));
        assert_eq!(t.percentile_ms(0.9), Some(5));
        assert_eq!(t.percentile_ms(0.95), Some(50));
        assert_eq!(t.percentile_ms(0.99), Some(50));
        assert_eq!(
            t.percentile_ms(1.0),
            None,
            "the slowest is past every bound"
        );
        assert_eq!(t.success_rate(), Some(0.9));
        assert_eq!(t.mean_ms(), Some((270.0 + 360.0 + 20_000.0) / 100.0));
    }

    #[test]
    fn merging_adds_every_count() {
        let mut a = Tally::default();
        a.add(Outcome::Delivered, 1);
        let mut b = Tally::default();
        b.add(Outcome::Failed, 700);
        a.merge(&b);
        assert_eq!((a.delivered, a.failed, a.duration_ms), (1, 1, 701));
        assert_eq!(a.latency[0] + a.latency[7], 2);
    }
}

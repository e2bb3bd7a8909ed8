//! The per-tenant publish rate limit (`tenant_publish_rate_per_s`, bursts of `tenant_publish_burst`): a
//! token bucket per tenant on each node. A publish over the limit is refused with 429 and `Retry-After`
//! before anything is written.

use std::collections::HashMap;
use std::sync::Mutex;

use herald_core::rate::TokenBucket;

/// Buckets above this count are swept of the full ones (tenants that stopped publishing).
const SWEEP_ABOVE: usize = 10_000;

/// Every tenant's bucket on this node.
pub struct PublishLimits {
    rate_per_s: Option<u32>,
    burst: u32,
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl PublishLimits {
    /// Limits of `rate_per_s` publishes a second per tenant (`None`: no limit), bursts of `burst`.
    pub fn new(rate_per_s: Option<u32>, burst: Option<u32>) -> PublishLimits {
        PublishLimits {
            rate_per_s,
            burst: burst.or(rate_per_s).unwrap_or(1).max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Admit one publish of `tenant_id` at `now_ms`; `Err(retry_after_ms)` when it is over the limit.
    pub fn admit(&self, tenant_id: &str, now_ms: i64) -> Result<(), u64> {
        let Some(rate) = self.rate_per_s else {
            return Ok(());
        };
        let mut buckets = self.buckets.lock().expect("publish limits lock");
        if buckets.len() > SWEEP_ABOVE {
            let burst = self.burst;
            buckets.retain(|_, b| !b.is_full(now_ms, rate, burst));
        }
        buckets
            .entry(tenant_id.to_string())
            .or_insert_with(|| TokenBucket::full(self.burst, now_ms))
            .take(now_ms, rate, self.burst)
    }

    /// The limit, for errors and docs.
    pub fn rate_per_s(&self) -> Option<u32> {
        self.rate_per_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tenant_has_its_own_bucket() {
        let limits = PublishLimits::new(Some(2), None);
        assert!(limits.admit("a", 0).is_ok());
        assert!(limits.admit("a", 0).is_ok());
        assert_eq!(limits.admit("a", 0), Err(500));
        assert!(
            limits.admit("b", 0).is_ok(),
            "another tenant is not held back"
        );
        assert!(limits.admit("a", 500).is_ok());
    }

    #[test]
    fn no_rate_means_no_limit() {
        let limits = PublishLimits::new(None, None);
        for _ in 0..10_000 {
            assert!(limits.admit("a", 0).is_ok());
        }
    }
}

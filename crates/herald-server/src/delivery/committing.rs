//! Claims whose attempts started before the claim's commit was done, by owner id.
//!
//! A claim hands its deliveries over as soon as their leases are written ([`super::dispatcher::Dispatch::claim_with`]),
//! so an attempt can finish before that commit. Its result must not be written before it: on PostgreSQL a
//! result's update matches only a row leased to its owner id, and a row whose lease is not yet committed
//! does not match, so the result would be lost and the delivery sent again once the lease ran out. The
//! recorder waits here until the claims behind a batch have settled (committed or failed) before writing it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

/// Owner ids of claims handed over and not yet settled.
#[derive(Default)]
pub struct Committing {
    /// Closed when the claim settles; waiters acquire it, which fails at once when closed.
    owners: Mutex<HashMap<Arc<str>, Arc<Semaphore>>>,
}

/// Held while a claim under one owner id commits; dropping it settles the claim.
pub struct Settling<'a> {
    committing: &'a Committing,
    owner: Arc<str>,
    settled: Arc<Semaphore>,
}

impl Committing {
    /// Note that the claim under `owner` is being handed over before its commit, until the returned
    /// guard is dropped.
    pub fn begin(&self, owner: Arc<str>) -> Settling<'_> {
        let settled = Arc::new(Semaphore::new(0));
        self.owners
            .lock()
            .expect("committing lock")
            .insert(owner.clone(), settled.clone());
        Settling {
            committing: self,
            owner,
            settled,
        }
    }

    /// Wait until none of `owners` is a claim that has yet to settle.
    pub async fn settled<'o>(&self, owners: impl IntoIterator<Item = &'o str>) {
        let waits: Vec<Arc<Semaphore>> = {
            let map = self.owners.lock().expect("committing lock");
            if map.is_empty() {
                return;
            }
            let mut waits: Vec<Arc<Semaphore>> = Vec::new();
            for owner in owners {
                if let Some(settled) = map.get(owner) {
                    if !waits.iter().any(|w| Arc::ptr_eq(w, settled)) {
                        waits.push(settled.clone());
                    }
                }
            }
            waits
        };
        for settled in waits {
            // Never granted: it fails once the claim settles and closes it.
            let _ = settled.acquire().await;
        }
    }
}

impl Drop for Settling<'_> {
    fn drop(&mut self) {
        self.committing
            .owners
            .lock()
            .expect("committing lock")
            .remove(&self.owner);
        self.settled.close();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_result_waits_for_its_claim_to_settle_and_no_longer() {
        let committing = Arc::new(Committing::default());
        let guard = committing.begin("node.1".into());
        // Owners with no claim in flight do not wait.
        tokio::time::timeout(
            Duration::from_secs(1),
            committing.settled(["node.0", "node.2"]),
        )
        .await
        .expect("no wait for settled owners");
        let waiter = {
            let committing = committing.clone();
            tokio::spawn(async move { committing.settled(["node.0", "node.1", "node.1"]).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "waits while the claim commits");
        drop(guard);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("released once the claim settles")
            .unwrap();
        assert!(committing.owners.lock().unwrap().is_empty());
    }
}

//! Long-poll waiters: one `Notify` per job that has someone waiting, woken whenever the job changes: on this
//! node directly, on other nodes through the store's job notifications (PostgreSQL `LISTEN herald_jobs`). A
//! waiter costs a map entry and a parked future: no thread and no database connection. Each waiter also
//! re-reads its job every few seconds and at its deadline, so a lost notification only delays an answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Default)]
struct Entry {
    notify: Arc<Notify>,
    waiting: usize,
}

/// Registry of jobs being waited on.
#[derive(Default)]
pub struct Waiters {
    jobs: Mutex<HashMap<String, Entry>>,
}

/// A registration; dropping it unregisters.
pub struct Registration<'a> {
    waiters: &'a Waiters,
    job_id: String,
    /// Notified when the job changes on this node.
    pub notify: Arc<Notify>,
}

impl Waiters {
    /// Start waiting on `job_id`.
    pub fn register(&self, job_id: &str) -> Registration<'_> {
        let mut jobs = self.jobs.lock().expect("waiters lock");
        let entry = jobs.entry(job_id.to_string()).or_default();
        entry.waiting += 1;
        Registration {
            waiters: self,
            job_id: job_id.to_string(),
            notify: entry.notify.clone(),
        }
    }

    /// Wake everyone waiting on `job_id`.
    pub fn changed(&self, job_id: &str) {
        if let Some(entry) = self.jobs.lock().expect("waiters lock").get(job_id) {
            entry.notify.notify_waiters();
        }
    }

    /// How many requests are waiting (all jobs).
    pub fn count(&self) -> usize {
        self.jobs
            .lock()
            .expect("waiters lock")
            .values()
            .map(|e| e.waiting)
            .sum()
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut jobs = self.waiters.jobs.lock().expect("waiters lock");
        if let Some(entry) = jobs.get_mut(&self.job_id) {
            entry.waiting -= 1;
            if entry.waiting == 0 {
                jobs.remove(&self.job_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registrations_are_counted_and_woken() {
        let waiters = Waiters::default();
        let a = waiters.register("job_1");
        let b = waiters.register("job_1");
        assert_eq!(waiters.count(), 2);
        let notify = a.notify.clone();
        let woken = notify.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        waiters.changed("job_1");
        tokio::time::timeout(std::time::Duration::from_secs(1), woken)
            .await
            .expect("woken");
        drop(a);
        drop(b);
        assert_eq!(waiters.count(), 0);
    }
}

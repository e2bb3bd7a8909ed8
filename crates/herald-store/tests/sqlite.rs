//! The store contract run against the embedded SQLite store.

mod contract;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use herald_store::sqlite::SqliteStore;
use herald_store::Store;

/// A directory no other test (in this or another process) uses. Left behind on purpose: the store keeps its
/// files open until the test's runtime shuts down.
fn unique_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "herald-store-contract-{}-{n}-{nanos}",
        std::process::id()
    ))
}

/// A fresh, empty SQLite store.
async fn sqlite_store() -> Arc<dyn Store> {
    let dir = unique_dir();
    let store = SqliteStore::open(&dir.join("herald.db"), contract::BASE - 60_000)
        .expect("open a fresh SQLite store");
    Arc::new(store)
}

contract::contract_tests!(sqlite_store);

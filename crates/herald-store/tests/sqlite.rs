//! The store contract run against the embedded SQLite store.

mod contract;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{SystemTime, UNIX_EPOCH};

use herald_store::sqlite::SqliteStore;
use herald_store::Store;

/// Prefix of the directories these tests create under the system temp dir.
const DIR_PREFIX: &str = "herald-store-contract-";

/// Remove the directories left by earlier runs whose process is gone. A test cannot delete its own directory
/// (the store keeps its files open until the test's runtime shuts down), so each run sweeps up after the last.
/// Only where `/proc` tells which processes are alive; elsewhere the directories are left to the OS.
fn sweep_stale_dirs() {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A directory no other test (in this or another process) uses.
fn unique_dir() -> PathBuf {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(sweep_stale_dirs);
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{n}-{nanos}", std::process::id()))
}

/// A fresh, empty SQLite store (its directory is swept by a later run).
async fn sqlite_store() -> Option<(Arc<dyn Store>, ())> {
    let dir = unique_dir();
    let store = SqliteStore::open(&dir.join("herald.db"), contract::BASE - 60_000)
        .expect("open a fresh SQLite store");
    Some((Arc::new(store), ()))
}

contract::contract_tests!(sqlite_store);

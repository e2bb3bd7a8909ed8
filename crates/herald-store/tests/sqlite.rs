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

/// History written straight into the tables reads back like the engine's own deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmark_history_reads_back() {
    let path = unique_dir().join("herald.db");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&path, contract::BASE - 60_000).expect("open a fresh store"));
    let endpoint = contract::add_endpoint(&store, herald_store::DEFAULT_TENANT, 1, &["t.*"]).await;
    let history = contract::history::sample(&endpoint.id, 1_234);
    let mut seen = Vec::new();
    let written = history.clone();
    tokio::task::spawn_blocking(move || {
        herald_store::sqlite::write_history(&path, &written, |n| seen.push(n))?;
        Ok::<_, herald_store::StoreError>(seen)
    })
    .await
    .unwrap()
    .map(|seen| assert_eq!(seen, vec![1_234]))
    .expect("write the history");
    contract::history::history_reads_back(store, history).await;
}

/// Deleting a paced endpoint forgets its stored pacing time with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_endpoint_leaves_no_pacing_row() {
    use herald_store::DEFAULT_TENANT;
    let path = unique_dir().join("herald.db");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&path, contract::BASE - 60_000).expect("open a fresh store"));
    let mut paced = contract::endpoint(DEFAULT_TENANT, 1, &["p.*"]);
    paced.rate_limit_per_s = Some(5);
    store.create_endpoint(&paced).await.unwrap();
    contract::publish(&store, "p.a", contract::BASE).await;
    assert_eq!(
        contract::claim(&store, "w1", contract::BASE + 1)
            .await
            .len(),
        1
    );
    let pacing_rows = || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row("SELECT COUNT(*) FROM key_pacing", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
    };
    assert_eq!(
        pacing_rows(),
        1,
        "the claim stored the key's next send time"
    );
    store
        .delete_endpoint(DEFAULT_TENANT, &paced.id, contract::BASE + 2)
        .await
        .unwrap();
    assert_eq!(pacing_rows(), 0);
}

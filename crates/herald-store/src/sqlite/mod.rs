//! The embedded SQLite store: zero set-up, one process.
//!
//! Layout: one write connection owned by the [`writer`] thread (group commit), a small pool of read-only
//! connections for queries (WAL lets them read while the writer writes), and a lock file that makes the
//! database single-process. Because no other process can hold leases, opening the store hands every lease of
//! the previous run back at once: a crash loses nothing and delays nothing.

mod claims;
mod deliveries;
mod endpoints;
mod health;
mod history;
pub(crate) mod jobs;
mod publish;
pub(crate) mod rows;
mod schema;
mod stats;
mod store_impl;
mod tenants;
mod writer;

pub use history::write_history;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::error::{StoreError, StoreResult};
use writer::Writer;

/// Read connections kept open.
const READERS: usize = 4;

/// Herald's embedded store.
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Mutex<Vec<Connection>>>,
    reader_slots: Arc<Semaphore>,
    path: PathBuf,
    _lock: File,
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`, apply migrations, and release the leases left by a
    /// previous run. Fails if another process has the database open.
    pub fn open(path: &Path, now_ms: i64) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let lock = lock_exclusive(&path.with_extension("lock"))?;
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        schema::migrate(&mut conn, now_ms)?;
        claims::release_all_leases(&conn, now_ms)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            reader.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA cache_size = -16000;")?;
            readers.push(reader);
        }
        Ok(SqliteStore {
            writer: Writer::start(conn),
            readers: Arc::new(Mutex::new(readers)),
            reader_slots: Arc::new(Semaphore::new(READERS)),
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// Apply pending migrations to the database at `path` and return how many ran.
    pub fn migrate_only(path: &Path, now_ms: i64) -> StoreResult<usize> {
        let _lock = lock_exclusive(&path.with_extension("lock"))?;
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        schema::migrate(&mut conn, now_ms)
    }

    /// Where the database file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run a read-only query on a pooled connection, off the async threads.
    async fn read<T, F>(&self, query: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let slot = self
            .reader_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("store closed".into()))?;
        let conn = self.readers.lock().expect("reader pool lock").pop();
        let conn = conn.ok_or_else(|| StoreError::Internal("reader pool empty".into()))?;
        // The blocking task puts the connection back and frees the slot itself, so a caller that stops
        // waiting (a client gone, a `select!` that took another branch) cannot take a reader with it.
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let result = query(&conn);
            readers.lock().expect("reader pool lock").push(conn);
            drop(slot);
            result
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }
}

/// Prepared statements kept per connection. The writer runs every publish, claim and record statement
/// in turn; with fewer slots than that loop has statements, each claim evicted and parsed again the ones
/// the next step needed (rusqlite keeps 16 by default).
const STATEMENT_CACHE: usize = 128;

/// WAL with `synchronous = FULL`: a commit returns only after the WAL is fsynced, which is what lets an API 2xx
/// mean "durable". Checkpoints run automatically.
fn configure(conn: &Connection) -> StoreResult<()> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 5000;
         PRAGMA foreign_keys = OFF;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -64000;",
    )?;
    Ok(())
}

/// Take an exclusive advisory lock on `path` (created if missing), failing at once if another process holds it.
fn lock_exclusive(path: &Path) -> StoreResult<File> {
    use std::os::fd::AsRawFd;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    // SAFETY: flock is called on a file descriptor that `file` owns and keeps open.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(StoreError::Unavailable(format!(
            "the database is in use by another Herald process (lock {} is held)",
            path.display()
        )));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_read_gives_its_reader_back() {
        let dir = std::env::temp_dir().join(format!(
            "herald-store-readers-{}-{}",
            std::process::id(),
            nanos()
        ));
        let store = SqliteStore::open(&dir.join("herald.db"), 0).expect("open");
        // More abandoned reads than there are readers: each caller stops waiting while its query runs.
        for _ in 0..READERS * 2 {
            let slow = store.read(|conn| {
                std::thread::sleep(Duration::from_millis(50));
                conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                    .map_err(StoreError::from)
            });
            assert!(tokio::time::timeout(Duration::from_millis(5), slow)
                .await
                .is_err());
        }
        for _ in 0..READERS * 2 {
            let one = store
                .read(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
                .await
                .expect("a reader is free again");
            assert_eq!(one, 1);
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn nanos() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    }
}

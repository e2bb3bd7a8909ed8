//! Writes benchmark history ([`crate::history`]) into a SQLite store no node has open.

use std::path::Path;

use rusqlite::{params_from_iter, types::Value, Connection};

use crate::error::{StoreError, StoreResult};
use crate::history::{chunk_statements, History};

/// Write `history` into the store at `path` (the database file of a data directory), calling `progress`
/// with the rows written so far after each chunk. The store must exist (a node has migrated it) and be
/// closed.
pub fn write_history(
    path: &Path,
    history: &History,
    mut progress: impl FnMut(u64),
) -> StoreResult<()> {
    let mut conn = Connection::open(path)?;
    // Setup data: a crash while writing it loses only the benchmark's history, so skip the fsyncs.
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;")?;
    let statements = chunk_statements();
    for (first, rows) in history.chunks() {
        let p = history.params(first, rows);
        let values: Vec<Value> = vec![
            p.rows.0.into(),
            p.rows.1.into(),
            p.clock.0.into(),
            p.clock.1.into(),
            p.target.0.to_string().into(),
            p.target.1.to_string().into(),
            p.target.2.to_string().into(),
        ];
        let tx = conn.transaction()?;
        for (sql, n) in &statements {
            tx.execute(sql, params_from_iter(&values[..*n]))
                .map_err(|e| StoreError::Invalid(format!("writing history: {e}")))?;
        }
        tx.commit()?;
        progress(first + rows);
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    drop(conn);
    // Past traffic would long since have reached the disk: write the file back now, so the node that opens
    // it next does not wait on gigabytes of dirty pages at its first sync.
    std::fs::File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|e| StoreError::Unavailable(format!("syncing {}: {e}", path.display())))?;
    Ok(())
}

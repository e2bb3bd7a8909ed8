//! Writes benchmark history ([`crate::history`]) into a PostgreSQL store no node is using.

use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use super::pg_error;
use crate::error::{StoreError, StoreResult};
use crate::history::{chunk_statements, History};

/// Write `history` into the database at `url` (migrated by a node), calling `progress` with the rows
/// written so far after each chunk, then vacuum and analyze it as autovacuum would once it settled, and checkpoint it.
pub async fn write_history(
    url: &str,
    history: &History,
    mut progress: impl FnMut(u64),
) -> StoreResult<()> {
    let (mut client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| StoreError::Unavailable(format!("{url}: {e}")))?;
    let connection = tokio::spawn(connection);
    // Setup data: losing it in a crash costs only the benchmark's history.
    client
        .batch_execute("SET synchronous_commit = off")
        .await
        .map_err(pg_error)?;
    let statements = chunk_statements();
    for (first, rows) in history.chunks() {
        let p = history.params(first, rows);
        let values: [&(dyn ToSql + Sync); 7] = [
            &p.rows.0,
            &p.rows.1,
            &p.clock.0,
            &p.clock.1,
            &p.target.0,
            &p.target.1,
            &p.target.2,
        ];
        let tx = client.transaction().await.map_err(pg_error)?;
        for (sql, n) in &statements {
            tx.execute(sql.as_str(), &values[..*n])
                .await
                .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        progress(first + rows);
    }
    client
        .batch_execute("VACUUM ANALYZE")
        .await
        .map_err(pg_error)?;
    // Past traffic would long since have been checkpointed: write it out now, so the run that follows does
    // not share the disk with it. Needs superuser or pg_checkpoint; without them PostgreSQL's own
    // checkpoints write it later, and the figure is only noisier.
    if let Err(e) = client.batch_execute("CHECKPOINT").await {
        tracing::debug!(error = %e, "no CHECKPOINT after writing history");
    }
    drop(client);
    let _ = connection.await;
    Ok(())
}

//! A transaction whose `BEGIN` travels with its first statement and whose `COMMIT` may travel with its
//! last ones. PostgreSQL runs what one connection sends in order, so a `BEGIN` sent just before a
//! statement opens the transaction that statement runs in, and a `COMMIT` sent just after the last writes
//! ends it once they are done: two round trips fewer than waiting for each answer.
//!
//! `tokio_postgres::Transaction` cannot do that (its commit takes it by value, so no statement can be in
//! flight beside it). Like it, a transaction abandoned half way (an error, or the future dropped) is rolled
//! back before its connection goes back to the pool; a connection that cannot roll back is closed instead.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::Poll;

use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;

use super::pg_error;
use crate::error::StoreResult;

const NOT_BEGUN: u8 = 0;
const OPEN: u8 = 1;
const ENDED: u8 = 2;

/// A transaction on a pooled connection, begun with its first statement ([`PipelinedTx::first`]) and
/// ended by [`PipelinedTx::commit_with`].
pub struct PipelinedTx {
    client: Option<Object>,
    state: AtomicU8,
}

impl PipelinedTx {
    /// A transaction on `client`; nothing is sent until its first statement.
    pub fn new(client: Object) -> PipelinedTx {
        PipelinedTx {
            client: Some(client),
            state: AtomicU8::new(NOT_BEGUN),
        }
    }

    /// The connection, to run statements on inside the transaction (once begun).
    pub fn client(&self) -> &Object {
        self.client
            .as_ref()
            .expect("the connection is held until drop")
    }

    /// Run `statement` as the transaction's first, sending `BEGIN` just before it; once begun, just run it.
    pub async fn first<T>(
        &self,
        statement: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        if self
            .state
            .compare_exchange(NOT_BEGUN, OPEN, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return statement.await;
        }
        let begin = async { self.client().batch_execute("BEGIN").await.map_err(pg_error) };
        let ((), out) = tokio::try_join!(biased; begin, statement)?;
        Ok(out)
    }

    /// Send `writes` (prepared statements with their parameters, in this order) and `COMMIT` right
    /// behind them, without waiting for an answer in between; `BEGIN` goes first if no statement began
    /// the transaction, and with nothing to write either, nothing is sent. Taking prepared statements
    /// only is what makes that safe: each is sent the moment it is first polled, so all of them are on
    /// the wire before the `COMMIT`, and none runs after it outside the transaction.
    pub async fn commit_with(&self, writes: &[Write<'_>]) -> StoreResult<()> {
        self.commit_then(writes, &[]).await
    }

    /// [`PipelinedTx::commit_with`], and `after` (prepared statements too) sent right behind the
    /// `COMMIT`: each runs on its own, outside the transaction, whether or not the commit succeeded.
    pub async fn commit_then(&self, writes: &[Write<'_>], after: &[Write<'_>]) -> StoreResult<()> {
        let client = self.client();
        let begun = self.state.swap(OPEN, Ordering::AcqRel) != NOT_BEGUN;
        if !begun && writes.is_empty() {
            self.state.store(ENDED, Ordering::Release);
            return Ok(());
        }
        let mut pending: Vec<Pending<'_>> = Vec::with_capacity(writes.len() + 2);
        if !begun {
            pending.push(Box::pin(async {
                client.batch_execute("BEGIN").await.map(|()| 0)
            }));
        }
        pending.extend(writes.iter().map(|(statement, params)| {
            Box::pin(client.execute(*statement, params)) as Pending<'_>
        }));
        pending.push(Box::pin(async {
            client.batch_execute("COMMIT").await.map(|()| 0)
        }));
        pending.extend(after.iter().map(|(statement, params)| {
            Box::pin(client.execute(*statement, params)) as Pending<'_>
        }));
        let mut done = vec![false; pending.len()];
        std::future::poll_fn(|cx| {
            let mut all = true;
            for (future, done) in pending.iter_mut().zip(done.iter_mut()) {
                if *done {
                    continue;
                }
                match future.as_mut().poll(cx) {
                    Poll::Ready(Ok(_)) => *done = true,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(pg_error(e))),
                    Poll::Pending => all = false,
                }
            }
            if all {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await?;
        self.state.store(ENDED, Ordering::Release);
        Ok(())
    }
}

/// One of a transaction's last statements ([`PipelinedTx::commit_with`]): prepared, with its parameters.
pub type Write<'a> = (&'a Statement, &'a [&'a (dyn ToSql + Sync)]);

/// A statement on its way, in [`PipelinedTx::commit_with`].
type Pending<'a> = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a>>;

impl Drop for PipelinedTx {
    fn drop(&mut self) {
        if self.state.load(Ordering::Acquire) != OPEN {
            return;
        }
        let Some(client) = self.client.take() else {
            return;
        };
        // Roll back before the connection goes back to the pool; if that cannot be done, close it, which
        // makes PostgreSQL roll back, and keep it out of the pool.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        drop(Object::take(client));
                    }
                });
            }
            Err(_) => drop(Object::take(client)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::test_db;
    use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
    use tokio_postgres::NoTls;

    /// A pool of one connection to a fresh database with a table `t (n)`, or `None` when PostgreSQL is
    /// not there and not required (CI requires it).
    async fn one_connection() -> Option<(Pool, test_db::TestDatabase)> {
        let db = match test_db::create().await {
            Ok(db) => db,
            Err(e) if std::env::var_os("CI").is_some() => panic!("PostgreSQL is required: {e}"),
            Err(e) => {
                eprintln!("skipping a PostgreSQL test: {e}");
                return None;
            }
        };
        let config: tokio_postgres::Config = db.url.parse().unwrap();
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager).max_size(1).build().unwrap();
        let client = pool.get().await.unwrap();
        client
            .batch_execute("CREATE TABLE t (n BIGINT PRIMARY KEY)")
            .await
            .unwrap();
        drop(client);
        Some((pool, db))
    }

    async fn rows(pool: &Pool) -> Vec<i64> {
        let client = pool.get().await.unwrap();
        let rows = client
            .query("SELECT n FROM t ORDER BY n", &[])
            .await
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }

    async fn insert(c: &Object, n: i64) -> StoreResult<u64> {
        let statement = c
            .prepare_cached("INSERT INTO t (n) VALUES ($1)")
            .await
            .map_err(pg_error)?;
        c.execute(&statement, &[&n]).await.map_err(pg_error)
    }

    #[tokio::test]
    async fn statements_sent_beside_begin_and_commit_run_inside_the_transaction() {
        let Some((pool, _db)) = one_connection().await else {
            return;
        };
        let tx = PipelinedTx::new(pool.get().await.unwrap());
        tx.first(insert(tx.client(), 1)).await.unwrap();
        let prepared = tx
            .client()
            .prepare_cached("INSERT INTO t (n) VALUES ($1)")
            .await
            .unwrap();
        tx.commit_with(&[(&prepared, &[&2i64]), (&prepared, &[&3i64])])
            .await
            .unwrap();
        drop(tx);
        assert_eq!(rows(&pool).await, [1, 2, 3]);
        // The connection went back to the pool outside any transaction.
        let client = pool.get().await.unwrap();
        let open: String = client
            .query_one("SELECT to_char(now() - statement_timestamp(), 'SS')", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            open, "00",
            "now() is this statement's own time: no transaction is open"
        );
    }

    #[tokio::test]
    async fn an_abandoned_transaction_is_rolled_back_and_its_connection_reused_clean() {
        let Some((pool, _db)) = one_connection().await else {
            return;
        };
        {
            let tx = PipelinedTx::new(pool.get().await.unwrap());
            tx.first(insert(tx.client(), 1)).await.unwrap();
            // Dropped without a commit.
        }
        {
            let tx = PipelinedTx::new(pool.get().await.unwrap());
            tx.first(insert(tx.client(), 2)).await.unwrap();
            // A failing last statement aborts the transaction; the commit reports the failure.
            let prepared = tx
                .client()
                .prepare_cached("INSERT INTO t (n) VALUES ($1)")
                .await
                .unwrap();
            let result = tx
                .commit_with(&[(&prepared, &[&4i64]), (&prepared, &[&2i64])])
                .await;
            assert!(result.is_err());
        }
        // The single connection is usable and neither transaction left a row.
        assert_eq!(rows(&pool).await, Vec::<i64>::new());
        let tx = PipelinedTx::new(pool.get().await.unwrap());
        tx.first(insert(tx.client(), 3)).await.unwrap();
        tx.commit_with(&[]).await.unwrap();
        drop(tx);
        assert_eq!(rows(&pool).await, [3]);
    }
}

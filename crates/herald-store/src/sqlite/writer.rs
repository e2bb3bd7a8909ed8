//! The single writer thread and its group commit.
//!
//! SQLite allows one writer at a time, so every write runs on one dedicated thread that owns the write connection.
//! Callers send it closures; the thread takes every closure waiting in its queue, runs them all inside one
//! transaction and commits once.
//!
//! One failing operation must not undo the others. An operation sent with [`Writer::write`] must therefore fail
//! before it writes anything, or only on its first write: SQLite undoes a failed statement by itself. Operations
//! that can fail after writing use [`Writer::write_atomic`], which wraps them in a savepoint. Savepoints are kept
//! off the hot paths (publish, claim, record) because each one re-journals every page it touches.
//! Only after that commit (one fsync of the WAL) are the callers answered. Concurrent publishes therefore share
//! a transaction and an fsync: durability costs one fsync per batch, not per request.

use std::sync::mpsc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rusqlite::Connection;
use tokio::sync::oneshot;

use herald_core::ids::MonotonicIds;

use crate::error::{StoreError, StoreResult};

/// Most operations folded into one transaction.
const MAX_BATCH: usize = 2048;

/// What a write operation sees: the write connection and an id generator.
pub struct WriteCtx {
    /// The only connection allowed to write.
    pub conn: Connection,
    ids: MonotonicIds,
    rng: SmallRng,
}

impl WriteCtx {
    /// A new time-sortable id with this prefix; strictly increasing across the writer's lifetime.
    pub fn new_id(&mut self, prefix: &str, now_ms: i64) -> String {
        let random: u128 = self.rng.random();
        self.ids.next(prefix, now_ms.max(0) as u64, random)
    }
}

type Finish = Box<dyn FnOnce(StoreResult<()>) + Send>;
/// A queued operation; called with `None` when no transaction could be opened, so it must not run.
type Job = Box<dyn FnOnce(Option<&mut WriteCtx>) -> Finish + Send>;

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Start the writer thread on `conn`.
    pub fn start(conn: Connection) -> Writer {
        let (tx, rx) = mpsc::channel::<Job>();
        let ctx = WriteCtx {
            conn,
            ids: MonotonicIds::new(),
            rng: SmallRng::from_os_rng(),
        };
        std::thread::Builder::new()
            .name("herald-sqlite-writer".into())
            .spawn(move || run(ctx, rx))
            .expect("spawn the SQLite writer thread");
        Writer { tx }
    }

    /// Run `op` inside the next group commit and return its result once that commit is durable. `op` must fail
    /// before writing or on its first write (see the module docs).
    pub async fn write<T, F>(&self, op: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx) -> StoreResult<T> + Send + 'static,
    {
        self.submit(op, false).await
    }

    /// Like [`Writer::write`], for operations that may fail after writing: all of `op` is undone if it fails.
    pub async fn write_atomic<T, F>(&self, op: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx) -> StoreResult<T> + Send + 'static,
    {
        self.submit(op, true).await
    }

    async fn submit<T, F>(&self, op: F, atomic: bool) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |ctx: Option<&mut WriteCtx>| {
            let result = match ctx {
                Some(ctx) if atomic => in_savepoint(ctx, op),
                Some(ctx) => op(ctx),
                None => Err(StoreError::Unavailable(
                    "could not open a transaction".into(),
                )),
            };
            Box::new(move |commit: StoreResult<()>| {
                let _ = reply.send(commit.and(result));
            })
        });
        self.tx
            .send(job)
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
    }
}

fn in_savepoint<T>(
    ctx: &mut WriteCtx,
    op: impl FnOnce(&mut WriteCtx) -> StoreResult<T>,
) -> StoreResult<T> {
    ctx.conn.prepare_cached("SAVEPOINT op")?.execute([])?;
    let result = op(ctx);
    if result.is_err() {
        ctx.conn.prepare_cached("ROLLBACK TO op")?.execute([])?;
    }
    ctx.conn.prepare_cached("RELEASE op")?.execute([])?;
    result
}

fn run(mut ctx: WriteCtx, rx: mpsc::Receiver<Job>) {
    let mut finishers: Vec<Finish> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        let began = ctx
            .conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(StoreError::from);
        if let Err(e) = began {
            tracing::error!(error = %e, "cannot begin a SQLite transaction");
            first(None)(Err(StoreError::Unavailable(e.to_string())));
            continue;
        }
        finishers.push(first(Some(&mut ctx)));
        while finishers.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => finishers.push(job(Some(&mut ctx))),
                Err(_) => break,
            }
        }
        let committed = ctx.conn.execute_batch("COMMIT").map_err(StoreError::from);
        if committed.is_err() {
            let _ = ctx.conn.execute_batch("ROLLBACK");
        }
        for finish in finishers.drain(..) {
            finish(match &committed {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Unavailable(format!("commit failed: {e}"))),
            });
        }
    }
}

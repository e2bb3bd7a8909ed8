//! The PostgreSQL store: the shared source of truth for several stateless Herald nodes.
//!
//! - Work is claimed with `FOR UPDATE SKIP LOCKED` under a lease. Claims take a transaction-level advisory lock,
//!   so per-endpoint in-flight limits are counted in the database and hold across nodes.
//! - Results are written in batches: two statements per batch, whatever its size.
//! - Commits that create due work `NOTIFY herald_work`; a publish batch sends its notification right
//!   after its `COMMIT`, on its own, as PostgreSQL commits notifying transactions one at a time. Each
//!   node `LISTEN`s on its own connection and reconnects by itself; polling remains the fallback.
//! - Every operation runs under the configured timeout. An unreachable database is reported as
//!   `StoreError::Unavailable` (the API answers 503), never as a hang.

mod batch;
mod claim_rows;
mod claim_writes;
mod claims;
mod deliveries;
mod endpoints;
mod fan_out;
mod health;
mod history;
mod jobs;
mod key_walk;
mod listen;
mod pipelined;
mod plan_mode;
mod publish;
mod records;
mod rows;
mod schema;
mod stats;
mod store_impl;
mod tenants;
pub mod test_db;
mod tls;
mod upkeep;
mod warm;

pub use fan_out::MOST_NOTIFIED_KEYS;
pub use history::write_history;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use herald_core::ids::MonotonicIds;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use crate::error::{StoreError, StoreResult};

/// Channel that carries "work is due" notifications between nodes.
pub const WORK_CHANNEL: &str = "herald_work";
/// Channel that carries "this job changed" (payload: the job id) between nodes, for their long polls.
pub const JOBS_CHANNEL: &str = "herald_jobs";

/// Connection settings.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Most connections this node opens.
    pub pool_size: usize,
    /// Longest wait for a connection or a statement before the store reports itself unavailable.
    pub timeout: Duration,
    /// PEM certificates trusted for the server's TLS certificate, besides the webpki roots
    /// (with `sslmode=require`).
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 16,
            timeout: Duration::from_secs(5),
            ca_file: None,
        }
    }
}

/// Herald's PostgreSQL store.
pub struct PostgresStore {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    timeout: Duration,
    ids: IdSource,
    publisher: batch::Publisher,
    /// Dropping these stops the work listeners.
    listeners: Mutex<Vec<tokio::sync::oneshot::Sender<()>>>,
}

/// Map a driver error: connection trouble is `Unavailable`, a unique violation `Conflict`.
pub(crate) fn pg_error(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if code == &SqlState::UNIQUE_VIOLATION {
            return StoreError::Conflict(format!("already exists: {}", db.message()));
        }
        let class = &code.code()[..2];
        if class == "08" || class == "57" || class == "53" {
            return StoreError::Unavailable(db.message().to_string());
        }
        if class == "22" {
            return StoreError::Invalid(format!("{}: {}", code.code(), db.message()));
        }
        return StoreError::Internal(format!("{}: {}", code.code(), db.message()));
    }
    if e.is_closed() || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()) {
        return StoreError::Unavailable(e.to_string());
    }
    StoreError::Internal(e.to_string())
}

fn parse_url(url: &str) -> StoreResult<tokio_postgres::Config> {
    url.parse::<tokio_postgres::Config>()
        .map_err(|e| StoreError::Internal(format!("invalid database_url: {e}")))
}

fn build_pool(
    config: &tokio_postgres::Config,
    options: &PgOptions,
    tls: Option<&tokio_postgres_rustls::MakeRustlsConnect>,
) -> StoreResult<Pool> {
    let mut config = config.clone();
    config.connect_timeout(options.timeout);
    config.application_name("herald");
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match tls {
        Some(tls) => Manager::from_config(config, tls.clone(), manager_config),
        None => Manager::from_config(config, NoTls, manager_config),
    };
    Pool::builder(manager)
        .max_size(options.pool_size.max(1))
        .wait_timeout(Some(options.timeout))
        .create_timeout(Some(options.timeout))
        .recycle_timeout(Some(options.timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Internal(format!("cannot build the connection pool: {e}")))
}

impl PostgresStore {
    /// Connect, apply migrations (under an advisory lock) and return the store.
    pub async fn connect(url: &str, options: PgOptions, now_ms: i64) -> StoreResult<PostgresStore> {
        let config = parse_url(url)?;
        let tls = tls::connector(&config, options.ca_file.as_deref())?;
        let pool = build_pool(&config, &options, tls.as_ref())?;
        let ids = IdSource::default();
        let store = PostgresStore {
            publisher: batch::Publisher::start(pool.clone(), ids.clone(), options.timeout),
            pool,
            config,
            tls,
            timeout: options.timeout,
            ids,
            listeners: Mutex::new(Vec::new()),
        };
        let mut client = store.client().await?;
        store.timed(schema::migrate(&mut client, now_ms)).await?;
        drop(client);
        let _ = tokio::time::timeout(
            store.timeout,
            warm::warm(&store.pool, warm::WARM_CONNECTIONS.min(options.pool_size)),
        )
        .await;
        Ok(store)
    }

    /// Apply pending migrations to the database at `url`; returns how many ran.
    pub async fn migrate_only(url: &str, options: PgOptions, now_ms: i64) -> StoreResult<usize> {
        let config = parse_url(url)?;
        let tls = tls::connector(&config, options.ca_file.as_deref())?;
        let pool = build_pool(&config, &options, tls.as_ref())?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        schema::migrate(&mut client, now_ms).await
    }

    /// A pooled connection, or `Unavailable` after the configured timeout.
    async fn client(&self) -> StoreResult<Object> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("no database connection: {e}")))
    }

    /// Run `op` under the store's timeout.
    async fn timed<T>(&self, op: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        match tokio::time::timeout(self.timeout * 2, op).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(
                "the database did not answer in time".into(),
            )),
        }
    }

    /// Start a listener on `channel`; it stops when the store is dropped.
    fn listen(&self, channel: &'static str, handler: listen::Handler) {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        self.listeners
            .lock()
            .expect("listener list lock")
            .push(stop);
        tokio::spawn(listen::run(
            self.config.clone(),
            self.tls.clone(),
            channel,
            handler,
            stopped,
        ));
    }

    /// A new time-sortable id, strictly increasing within this node.
    fn new_id(&self, prefix: &str, now_ms: i64) -> String {
        self.ids.next(prefix, now_ms)
    }
}

/// Time-sortable ids, strictly increasing within this node; shared by the store and its batchers.
#[derive(Clone)]
pub(crate) struct IdSource(Arc<Mutex<(MonotonicIds, SmallRng)>>);

impl Default for IdSource {
    fn default() -> Self {
        IdSource(Arc::new(Mutex::new((
            MonotonicIds::new(),
            SmallRng::from_os_rng(),
        ))))
    }
}

impl IdSource {
    /// The next id with `prefix`.
    pub(crate) fn next(&self, prefix: &str, now_ms: i64) -> String {
        let mut ids = self.0.lock().expect("id generator lock");
        let random: u128 = ids.1.random();
        ids.0.next(prefix, now_ms.max(0) as u64, random)
    }
}

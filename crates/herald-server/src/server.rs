//! Starting and stopping a node: open the store, resolve the admin token, start the engine, serve the API.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use herald_core::url_policy::UrlPolicy;
use herald_store::postgres::{PgOptions, PostgresStore};
use herald_store::sqlite::SqliteStore;
use herald_store::Store;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use crate::app::{now_ms, AppState};
use crate::config::Config;
use crate::delivery::Engine;
use crate::jobs::{JobService, JobSettings};
use crate::metrics::Metrics;
use crate::outbound::Outbound;
use crate::random;

/// Where the admin token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOrigin {
    /// `HERALD_ADMIN_TOKEN` / flag / config file.
    Configured,
    /// Read from `admin-token` in the data dir.
    Saved(PathBuf),
    /// Generated on this start and saved to the path.
    Generated(PathBuf),
}

/// The SQLite database file inside a data dir.
pub fn sqlite_path(data_dir: &Path) -> PathBuf {
    data_dir.join("herald.db")
}

/// The file holding a generated admin token.
pub fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-token")
}

/// The admin token: configured, else saved in the data dir, else generated now and saved (mode 0600).
pub fn resolve_admin_token(config: &Config) -> anyhow::Result<(String, TokenOrigin)> {
    if let Some(token) = &config.admin_token {
        return Ok((token.clone(), TokenOrigin::Configured));
    }
    let path = admin_token_path(&config.data_dir);
    if let Ok(saved) = std::fs::read_to_string(&path) {
        let saved = saved.trim().to_string();
        if !saved.is_empty() {
            return Ok((saved, TokenOrigin::Saved(path)));
        }
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let token = random::api_token("hadm");
    write_private(&path, &token)
        .with_context(|| format!("cannot save the admin token to {}", path.display()))?;
    Ok((token, TokenOrigin::Generated(path)))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// The machine's host name, the default node name in metrics.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "herald".to_string())
}

/// Open the configured store (migrations applied).
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    match config.database_url.as_deref() {
        None => {
            let path = sqlite_path(&config.data_dir);
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path, now_ms()))
                .await?
                .context("cannot open the SQLite store")?;
            Ok(Arc::new(store))
        }
        Some(url) if url.starts_with("sqlite:") => {
            let path = PathBuf::from(
                url.trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:"),
            );
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path, now_ms()))
                .await?
                .context("cannot open the SQLite store")?;
            Ok(Arc::new(store))
        }
        Some(url) => {
            let store = PostgresStore::connect(url, pg_options(config), now_ms())
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot open the PostgreSQL store (setting database_url): {e}")
                })?;
            Ok(Arc::new(store))
        }
    }
}

/// PostgreSQL connection settings from the configuration.
pub fn pg_options(config: &Config) -> PgOptions {
    PgOptions {
        pool_size: config.db_pool_size,
        timeout: std::time::Duration::from_millis(config.db_timeout_ms),
        ca_file: config.database_ca_file.clone(),
    }
}

/// A node running in the background (used by `herald serve` and the tests).
pub struct Running {
    /// Address the API listens on.
    pub addr: SocketAddr,
    /// The admin token.
    pub admin_token: String,
    /// Where the token came from.
    pub token_origin: TokenOrigin,
    /// Store kind (`sqlite`, `postgres`).
    pub store_kind: &'static str,
    /// This node's owner id: its leases are held under it (`<node_id>.<claim>`).
    pub node_id: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Ask the node to stop and wait until it has (attempts in flight finish, results recorded).
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }

    /// Wait until the node stops on its own (or `stop_signal` fires).
    pub async fn wait(self, stop_signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Running { stop, mut task, .. } = self;
        tokio::select! {
            result = &mut task => return result?,
            _ = stop_signal => {}
        }
        let _ = stop.send(());
        task.await?
    }
}

/// Open everything and start serving on `listener`; returns once the node accepts requests.
pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Running> {
    let addr = listener.local_addr()?;
    let (admin_token, token_origin) = resolve_admin_token(&config)?;
    let store = open_store(&config).await?;
    let url_policy = Arc::new(
        UrlPolicy::new(
            config.allow_private_targets,
            config.url_allowlist.as_deref(),
        )
        .context("invalid setting url_allowlist")?,
    );
    let work_ready = Arc::new(Notify::new());
    let owner = format!("node_{}_{}", std::process::id(), random::short_hex());
    let public_base = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let (blobs, blob_routes) = crate::blobs::open_with_router(&config, &public_base)?;
    let outbound = Outbound::new(url_policy.clone(), config.resolve.clone());
    let metrics = Arc::new(Metrics::new(
        &config.node_name.clone().unwrap_or_else(host_name),
    ));
    let jobs = Arc::new(JobService::new(
        store.clone(),
        &outbound,
        blobs,
        work_ready.clone(),
        JobSettings {
            offload_threshold: config.blobs.offload_threshold_bytes,
            max_result_bytes: config.max_result_bytes,
            callback_timeout_ms: config.delivery.default_timeout_ms,
            retention_ms: i64::from(config.delivery.retention_days) * 86_400_000,
        },
        metrics.clone(),
    ));
    if config.role.serves_api() {
        // Long polls held here wake when another node changes their job.
        let weak = Arc::downgrade(&jobs);
        store.watch_jobs(Arc::new(move |id| {
            if let Some(jobs) = weak.upgrade() {
                jobs.job_changed(id);
            }
        }));
    }
    let telemetry = Arc::new(match &config.otlp_endpoint {
        Some(endpoint) => {
            crate::telemetry::Telemetry::start(endpoint, &owner).with_context(|| {
                format!("cannot export spans to {endpoint} (setting otlp_endpoint)")
            })?
        }
        None => crate::telemetry::Telemetry::off(),
    });
    let engine = config.role.delivers().then(|| {
        Engine::new(
            store.clone(),
            config.delivery.clone(),
            &outbound,
            work_ready.clone(),
            owner.clone(),
            jobs.authenticator(),
            crate::delivery::Instruments {
                metrics: metrics.clone(),
                telemetry: telemetry.clone(),
            },
        )
    });
    if let Some(engine) = &engine {
        // Another node's publish wakes this engine and names the endpoints it gave work.
        let (hints, wake) = (engine.hints(), work_ready.clone());
        store.watch_for_work(Arc::new(move |keys| {
            hints.add_first(keys.iter().copied());
            wake.notify_one();
        }));
    }
    let publish_limits = Arc::new(crate::publish_limits::PublishLimits::new(
        config.tenant_publish_rate_per_s,
        config.tenant_publish_burst,
    ));
    let state = AppState {
        store: store.clone(),
        config: Arc::new(config),
        url_policy,
        admin_token: admin_token.clone().into(),
        work_ready,
        token_cache: Default::default(),
        engine: engine.as_ref().map(Engine::status),
        work_hints: engine.as_ref().map(Engine::hints),
        jobs: jobs.clone(),
        metrics,
        telemetry: telemetry.clone(),
        publish_limits,
        openapi: crate::http::document()
            .to_json()
            .context("cannot encode the OpenAPI document")?
            .into(),
    };
    crate::http::routes::declare(&state, &state.config.routes).await?;
    let metrics_listener = match state.config.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (setting metrics_listen)"))?,
        ),
        None => None,
    };
    let store_kind = store.kind();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let (engine_stop_tx, engine_stop) = oneshot::channel::<()>();
        let engine_task = engine.map(|e| {
            tokio::spawn(e.run(async move {
                let _ = engine_stop.await;
            }))
        });
        let sweeper = tokio::spawn(jobs.sweep(std::time::Duration::from_secs(5)));
        let metrics_server = match metrics_listener {
            Some(listener) => {
                let open = crate::http::metrics::open_router(state.clone());
                Some(tokio::spawn(
                    async move { axum::serve(listener, open).await },
                ))
            }
            None => None,
        };
        let app = crate::http::router(state, blob_routes);
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .context("HTTP server failed")?;
        sweeper.abort();
        if let Some(server) = metrics_server {
            server.abort();
        }
        let _ = engine_stop_tx.send(());
        if let Some(task) = engine_task {
            task.await.context("delivery engine failed")?;
        }
        // The exporter's last batch goes out from a thread of its own, which needs this runtime.
        tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
        Ok(())
    });
    Ok(Running {
        addr,
        admin_token,
        token_origin,
        store_kind,
        node_id: owner,
        stop,
        task,
    })
}

//! Test harness: [`TestApp`] runs a Herald node in-process on 127.0.0.1:0 with a fresh data dir;
//! [`TestReceiver`] is a scriptable webhook receiver that records every request.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use herald_server::{Config, Running};
use herald_store::postgres::test_db;
use reqwest::Method;
use serde_json::Value;
use tokio::sync::{oneshot, Notify};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "herald-it-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Which store a test node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Whether PostgreSQL must be reachable: in CI (or with `HERALD_REQUIRE_POSTGRES`) its tests fail, never skip.
pub fn postgres_required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("HERALD_REQUIRE_POSTGRES").is_some()
}

/// PostgreSQL tests share the server; the one that restarts it takes this lock exclusively, so no other
/// PostgreSQL test runs meanwhile (tests of this binary run in parallel).
static POSTGRES: std::sync::LazyLock<Arc<tokio::sync::RwLock<()>>> =
    std::sync::LazyLock::new(Arc::default);

/// A test's own PostgreSQL database (dropped afterwards), and its share of the server.
pub struct TestDb {
    pub url: String,
    _db: test_db::TestDatabase,
    _server: ServerLock,
}

enum ServerLock {
    Shared(#[allow(dead_code)] tokio::sync::OwnedRwLockReadGuard<()>),
    Exclusive(#[allow(dead_code)] tokio::sync::OwnedRwLockWriteGuard<()>),
}

async fn create_db(server: ServerLock) -> Option<TestDb> {
    match test_db::create().await {
        Ok(db) => Some(TestDb {
            url: db.url.clone(),
            _db: db,
            _server: server,
        }),
        Err(e) if postgres_required() => panic!("PostgreSQL is required here but unreachable: {e}"),
        Err(e) => {
            eprintln!("skipping a PostgreSQL test: {e}");
            None
        }
    }
}

/// A fresh PostgreSQL database for one test, or `None` (with a note) when PostgreSQL is not there outside CI.
pub async fn test_database() -> Option<TestDb> {
    create_db(ServerLock::Shared(POSTGRES.clone().read_owned().await)).await
}

/// Like [`test_database`], while no other PostgreSQL test runs: for tests that stop the server.
pub async fn test_database_exclusive() -> Option<TestDb> {
    create_db(ServerLock::Exclusive(POSTGRES.clone().write_owned().await)).await
}

/// Generates `sqlite::NAME` and `postgres::NAME` tests from `pub async fn NAME(backend: Backend)` bodies.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A running Herald node and an HTTP client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub token: String,
    _running: Running,
    _db: Option<TestDb>,
    _dir: TempDir,
}

/// Settings every test node uses: private targets allowed (receivers are on loopback), quick polling.
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config::with_data_dir(dir);
    config.allow_private_targets = true;
    config.admin_token = Some(ADMIN_TOKEN.into());
    config.delivery.poll_interval_ms = 50;
    config
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// A node on `backend`; `None` when that backend is unavailable outside CI.
    pub async fn spawn_on(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(test_database().await?),
        };
        let url = db.as_ref().map(|d| d.url.clone());
        let mut app = Self::spawn_with(move |c| {
            c.database_url = url;
            adjust(c);
        })
        .await;
        app._db = db;
        Some(app)
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let dir = TempDir::new();
        let mut config = test_config(dir.path());
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = herald_server::start(config, listener)
            .await
            .expect("server starts");
        TestApp {
            addr: running.addr,
            client: reqwest::Client::new(),
            token: ADMIN_TOKEN.into(),
            _running: running,
            _db: None,
            _dir: dir,
        }
    }

    /// The node's data directory (its SQLite database is `herald.db` there).
    pub fn data_dir(&self) -> &Path {
        self._dir.path()
    }

    /// The node's owner id (its leases are held under it).
    pub fn node_id(&self) -> &str {
        &self._running.node_id
    }

    /// The PostgreSQL database this node uses, if any (to start a second node on it).
    pub fn database_url(&self) -> Option<String> {
        self._db.as_ref().map(|d| d.url.clone())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Send a request with the admin token; returns status and JSON body (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request reaches the server");
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
        let text = resp.text().await.unwrap();
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).expect("JSON body")
            },
        )
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    /// Create an endpoint and return its JSON (with secret).
    pub async fn endpoint(&self, body: Value) -> Value {
        let (status, ep) = self.post("/v1/endpoints", body).await;
        assert_eq!(status, StatusCode::CREATED, "{ep}");
        ep
    }

    /// Poll a delivery until `done` holds (or panic after `timeout`).
    pub async fn wait_delivery(
        &self,
        id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, d) = self.get(&format!("/v1/deliveries/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{d}");
            if done(&d) {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "delivery did not reach the expected state in time: {d}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn wait_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        self.wait_delivery(id, timeout, |d| d["status"] == status)
            .await
    }
}

/// One scripted answer.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            delay: Duration::ZERO,
        }
    }
    pub fn slow(status: u16, delay: Duration) -> Reply {
        Reply { status, delay }
    }
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the request arrived (before any scripted delay).
    pub at: Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

#[derive(Default)]
struct Script {
    queued: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
    seen: Mutex<Vec<Seen>>,
    arrived: Notify,
    /// Requests being answered now, and the most at once.
    in_flight: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

/// Counts one request being answered, also when the caller goes away mid-answer.
struct Answering<'a>(&'a Script);

impl<'a> Answering<'a> {
    fn new(script: &'a Script) -> Answering<'a> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = script.in_flight.fetch_add(1, SeqCst) + 1;
        script.peak.fetch_max(now, SeqCst);
        Answering(script)
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A webhook receiver that answers from a script (then a default) and records every request.
pub struct TestReceiver {
    pub addr: SocketAddr,
    script: Arc<Script>,
    _stop: oneshot::Sender<()>,
}

async fn answer(
    State(script): State<Arc<Script>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let at = Instant::now();
    let reply = script.queued.lock().unwrap().pop_front();
    let reply = reply
        .or(*script.default.lock().unwrap())
        .unwrap_or(Reply::status(204));
    let answering = Answering::new(&script);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    drop(answering);
    script.seen.lock().unwrap().push(Seen {
        path: uri.path().to_string(),
        headers,
        body,
        at,
    });
    script.arrived.notify_waiters();
    StatusCode::from_u16(reply.status).unwrap()
}

impl TestReceiver {
    /// A receiver answering `default` to everything not scripted.
    pub async fn start(default: Reply) -> TestReceiver {
        let script = Arc::new(Script::default());
        *script.default.lock().unwrap() = Some(default);
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        TestReceiver {
            addr,
            script,
            _stop: stop,
        }
    }

    /// Answer the next requests with these replies, in order.
    pub fn then(&self, replies: &[Reply]) {
        self.script
            .queued
            .lock()
            .unwrap()
            .extend(replies.iter().copied());
    }

    /// Change the answer to everything not scripted.
    pub fn set_default(&self, reply: Reply) {
        *self.script.default.lock().unwrap() = Some(reply);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.script.seen.lock().unwrap().clone()
    }

    /// The most requests this receiver was answering at once.
    pub fn peak(&self) -> usize {
        self.script.peak.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn count(&self) -> usize {
        self.script.seen.lock().unwrap().len()
    }

    /// Wait until at least `n` requests arrived (panic after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Seen> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.script.arrived.notified();
            if self.count() >= n {
                return self.seen();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "expected {n} requests, got {}",
                self.count()
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), notified).await;
        }
    }
}

impl TestApp {
    /// POST with extra headers.
    pub async fn call_as_with_headers(
        &self,
        path: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
        (status, resp.json().await.unwrap())
    }
}

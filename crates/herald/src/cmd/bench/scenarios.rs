//! The throughput scenarios of SPEC §8 (`ceiling`, `ingest`, `deliver`, `fanout`) and what they share:
//! a fresh server and receiver per scenario, progress bars, and waiting for the receiver's count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use herald_api::client::Client;
use herald_store::postgres::test_db::{create_on, TestDatabase};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::load::{self, Counters, Stop};
use super::processes::{self, Child, ServerSpec, TempDir};
use super::report::Results;

/// Endpoints the fan-out scenario creates.
pub const FANOUT_ENDPOINTS: u64 = 1_000;
/// Longest wait for the receiver to see what was published.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

/// Settings and shared state of one bench run.
pub struct Ctx {
    /// Admin token given to every server.
    pub token: String,
    /// Passed to servers as `--database-url`.
    pub database_url: Option<String>,
    /// Concurrent publishers.
    pub concurrency: usize,
    /// Events for `ingest` and `deliver`; `fanout` publishes events / 1,000.
    pub events: u64,
    /// Length of `ceiling` and `latency`.
    pub duration: Duration,
    /// Deliveries the `backlog` scenario builds up.
    pub backlog: u64,
    /// Finished deliveries the `history` scenario writes before it delivers.
    pub history: u64,
    /// Fixed publish rate of `latency`.
    pub rate: u32,
    /// `max_in_flight` of the `deliver` and `latency` endpoints; `None` keeps the server's default.
    pub max_in_flight: Option<u32>,
    /// Show progress bars (off with `--json`).
    pub progress: bool,
    /// The load generator's client.
    pub client: reqwest::Client,
    /// With `--database-url`: one fresh database per scenario (keyed by data directory), dropped when the
    /// bench ends, so no scenario inherits another's deliveries.
    pub databases: std::sync::Mutex<std::collections::HashMap<String, TestDatabase>>,
}

impl Ctx {
    /// A progress bar for one phase: a counter bar when `len` is known, a spinner otherwise.
    pub fn bar(&self, label: &str, len: Option<u64>) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = match len {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "{prefix:>9} {msg:<22} [{bar:30}] {human_pos}/{human_len} {per_sec}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{prefix:>9} {spinner} {msg} {elapsed}")
                    .expect("valid template"),
            ),
        };
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }

    /// A fresh server on its own data directory (and, with `--database-url`, its own database: servers
    /// started on the same directory share it).
    pub async fn server(&self, dir: &TempDir, role: &str) -> anyhow::Result<Child> {
        let database_url = match &self.database_url {
            Some(server) => Some(self.scenario_database(server, dir).await?),
            None => None,
        };
        processes::start_server(&ServerSpec {
            data_dir: dir.path(),
            role,
            token: &self.token,
            database_url: database_url.as_deref(),
        })
        .await
    }

    /// With `--database-url`: the database of the scenario whose servers run on `dir`, once one started.
    pub fn scenario_url(&self, dir: &TempDir) -> Option<String> {
        let key = dir.path().display().to_string();
        let databases = self.databases.lock().expect("databases lock");
        databases.get(&key).map(|db| db.url.clone())
    }

    async fn scenario_database(&self, server: &str, dir: &TempDir) -> anyhow::Result<String> {
        let key = dir.path().display().to_string();
        let name = {
            let databases = self.databases.lock().expect("databases lock");
            if let Some(db) = databases.get(&key) {
                return Ok(db.url.clone());
            }
            format!("herald_bench_{}_{}", std::process::id(), databases.len())
        };
        let db = create_on(server, &name).await.map_err(|e| {
            anyhow::anyhow!("cannot create a database for the scenario (setting database_url): {e}")
        })?;
        let url = db.url.clone();
        self.databases
            .lock()
            .expect("databases lock")
            .insert(key, db);
        Ok(url)
    }

    /// The typed API client of `server`, with the bench's admin token and a connection per task.
    pub fn api(&self, server: &Child) -> anyhow::Result<Client> {
        Ok(Client::new(&server.base, &self.token, self.concurrency)?)
    }

    /// Create an endpoint delivering to `url`; returns its id.
    pub async fn endpoint(
        &self,
        server: &Child,
        url: &str,
        max_in_flight: Option<u32>,
    ) -> anyhow::Result<String> {
        load::create_endpoint(&self.api(server)?, url, max_in_flight).await
    }

    /// Publish `n` events from `concurrency` tasks, the bar following along.
    pub async fn publish(
        &self,
        server: &Child,
        n: u64,
        bar: &ProgressBar,
    ) -> anyhow::Result<load::Outcome> {
        let client = self.api(server)?;
        let counters = Arc::new(Counters::default());
        let ticker = follow(bar.clone(), counters.clone());
        let out = load::closed_loop(
            self.concurrency.min(n.max(1) as usize),
            Stop::Count(n),
            counters,
            move |i| {
                let client = client.clone();
                async move { load::publish_ok(&client, "bench.tick", &json!({ "n": i })).await }
            },
        )
        .await;
        ticker.abort();
        Ok(out)
    }
}

/// Mirror `counters.ok` into `bar` until aborted.
fn follow(bar: ProgressBar, counters: Arc<Counters>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            bar.set_position(counters.ok.load(std::sync::atomic::Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// The receiver's `received` counter.
async fn received(client: &reqwest::Client, receiver: &Child) -> anyhow::Result<u64> {
    let stats = load::get_json(client, &format!("{}/stats", receiver.base)).await?;
    Ok(stats["received"].as_u64().unwrap_or(0))
}

/// Poll the receiver until it has seen `target` requests; errors after [`DRAIN_TIMEOUT`] without progress, or
/// when `/stats` keeps failing for 10 s (a single failed poll is retried).
pub async fn wait_received(
    ctx: &Ctx,
    receiver: &mut Child,
    target: u64,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let (mut last, mut last_change, mut failing_since) = (0, Instant::now(), None::<Instant>);
    loop {
        let n = match received(&ctx.client, receiver).await {
            Ok(n) => {
                failing_since = None;
                n
            }
            Err(e) => {
                if let Err(dead) = receiver.health() {
                    bail!("the receiver died: {dead}");
                }
                if failing_since.get_or_insert_with(Instant::now).elapsed()
                    > Duration::from_secs(10)
                {
                    return Err(e.context(format!("polling the receiver at {}", receiver.base)));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        bar.set_position(n.min(target));
        if n >= target {
            return Ok(());
        }
        if n != last {
            (last, last_change) = (n, Instant::now());
        } else if last_change.elapsed() > DRAIN_TIMEOUT {
            bail!("stalled: the receiver saw {n} of {target} deliveries");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn check(out: &load::Outcome, what: &str) -> anyhow::Result<()> {
    if out.errors > 0 {
        bail!("{} of {} {what} failed", out.errors, out.errors + out.ok);
    }
    Ok(())
}

/// `ceiling`: plain POSTs/s from the load generator straight to the receiver, no Herald in between.
pub async fn ceiling(ctx: &Ctx, results: &mut Results) -> anyhow::Result<()> {
    let dir = TempDir::new("ceiling")?;
    let receiver = processes::start_receiver(dir.path()).await?;
    let bar = ctx.bar("ceiling", None);
    bar.set_message("POSTs straight to the receiver");
    let url = format!("{}/ceiling", receiver.base);
    let client = ctx.client.clone();
    let counters = Arc::new(Counters::default());
    // The same shape of body Herald sends, so the receiver does the same work.
    let body = Arc::new(json!({
        "id": "msg_bench", "type": "bench.tick", "timestamp": "2025-01-01T00:00:00.000Z", "data": { "n": 0 }
    }));
    let out = load::closed_loop(
        ctx.concurrency,
        Stop::After(ctx.duration),
        counters,
        move |_| {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            async move { load::post_ok(&client, &url, &body).await }
        },
    )
    .await;
    bar.finish_and_clear();
    check(&out, "POSTs")?;
    results.ceiling_posts_per_s = Some(out.per_s());
    Ok(())
}

/// `ingest`: durable publishes/s with no endpoints.
pub async fn ingest(ctx: &Ctx, results: &mut Results) -> anyhow::Result<()> {
    let dir = TempDir::new("ingest")?;
    let server = ctx.server(&dir, "all").await?;
    let bar = ctx.bar("ingest", Some(ctx.events));
    bar.set_message("publishing, no endpoints");
    let out = ctx.publish(&server, ctx.events, &bar).await?;
    bar.finish_and_clear();
    results.note_rss(server.peak_rss_mb());
    check(&out, "publishes")?;
    results.ingest_events_per_s = Some(out.per_s());
    Ok(())
}

/// Publish `events` events while polling the receiver until it has `expected` deliveries; returns the
/// deliveries/s from the first publish to the last arrival.
async fn publish_and_drain(
    ctx: &Ctx,
    server: &Child,
    receiver: &mut Child,
    events: u64,
    expected: u64,
    label: &str,
) -> anyhow::Result<f64> {
    let bar = ctx.bar(label, Some(expected));
    bar.set_message("delivered");
    let start = Instant::now();
    let hidden = ProgressBar::hidden();
    let publishing = ctx.publish(server, events, &hidden);
    let (out, drained) = tokio::join!(
        publishing,
        wait_received(ctx, &mut *receiver, expected, &bar)
    );
    bar.finish_and_clear();
    check(&out?, "publishes")?;
    drained?;
    Ok(expected as f64 / start.elapsed().as_secs_f64())
}

/// Publish `ctx.events` events to the one endpoint of `server` and wait for them all: deliveries/s and the
/// server's CPU per delivery (ms, where `/proc` tells).
pub async fn deliver_events(
    ctx: &Ctx,
    server: &Child,
    receiver: &mut Child,
    label: &str,
) -> anyhow::Result<(f64, Option<f64>)> {
    let cpu_before = server.cpu_seconds();
    let per_s = publish_and_drain(ctx, server, receiver, ctx.events, ctx.events, label).await?;
    let cpu_ms = match (cpu_before, server.cpu_seconds()) {
        (Some(a), Some(b)) => Some((b - a) * 1000.0 / ctx.events as f64),
        _ => None,
    };
    Ok((per_s, cpu_ms))
}

/// `deliver`: end-to-end deliveries/s to one endpoint (default settings unless `--max-in-flight`) on a
/// receiver answering 204.
pub async fn deliver(ctx: &Ctx, results: &mut Results) -> anyhow::Result<()> {
    let dir = TempDir::new("deliver")?;
    let mut receiver = processes::start_receiver(dir.path()).await?;
    let server = ctx.server(&dir, "all").await?;
    ctx.endpoint(
        &server,
        &format!("{}/deliver", receiver.base),
        ctx.max_in_flight,
    )
    .await?;
    let (per_s, cpu_ms) = deliver_events(ctx, &server, &mut receiver, "deliver").await?;
    results.deliver_cpu_ms = cpu_ms;
    results.note_rss(server.peak_rss_mb());
    results.deliver_per_s = Some(per_s);
    Ok(())
}

/// Create `n` endpoints on `receiver` (paths `/<label>/<i>`), `concurrency` at a time.
pub async fn endpoints(
    ctx: &Ctx,
    server: &Child,
    receiver: &Child,
    n: u64,
    label: &str,
) -> anyhow::Result<()> {
    let bar = ctx.bar(label, Some(n));
    bar.set_message("creating endpoints");
    let (client, target) = (ctx.api(server)?, format!("{}/{label}", receiver.base));
    let counters = Arc::new(Counters::default());
    let ticker = follow(bar.clone(), counters.clone());
    let out = load::closed_loop(ctx.concurrency, Stop::Count(n), counters, move |i| {
        let (client, url) = (client.clone(), format!("{target}/{i}"));
        async move { load::create_endpoint(&client, &url, None).await.is_ok() }
    })
    .await;
    ticker.abort();
    bar.finish_and_clear();
    check(&out, "endpoint creations")
}

/// `fanout`: events to 1,000 endpoints each; deliveries/s from the first publish to the last arrival.
pub async fn fanout(ctx: &Ctx, results: &mut Results) -> anyhow::Result<()> {
    let dir = TempDir::new("fanout")?;
    let mut receiver = processes::start_receiver(dir.path()).await?;
    let server = ctx.server(&dir, "all").await?;
    endpoints(ctx, &server, &receiver, FANOUT_ENDPOINTS, "fanout").await?;
    let events = (ctx.events / FANOUT_ENDPOINTS).max(1);
    let expected = events * FANOUT_ENDPOINTS;
    let per_s = publish_and_drain(ctx, &server, &mut receiver, events, expected, "fanout").await?;
    results.note_rss(server.peak_rss_mb());
    results.fanout_deliveries_per_s = Some(per_s);
    Ok(())
}

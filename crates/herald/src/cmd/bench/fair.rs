//! The `fair` scenario: tenant A holds a deep backlog over 50 endpoints while tenant B publishes one event
//! every 100 ms to an endpoint of its own. B's publish-to-receive percentiles show whether A's backlog
//! delays B; the deliveries A still had due when B's last event arrived show that A was still draining.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use herald_api::client::Client;
use serde_json::json;
use tokio::task::JoinHandle;

use super::latency::{now_us, start_receiver, Samples};
use super::load::{self, Counters, Stop};
use super::processes::{Child, TempDir};
use super::report::{percentile, Fair, Latency, Results};
use super::scenarios::{check, Ctx};

/// Tenant A's endpoints.
pub const FAIR_ENDPOINTS: u64 = 50;
/// Deliveries tenant A has due when tenant B starts publishing.
pub const FAIR_BACKLOG: u64 = 200_000;
/// Tenant B's publish rate, events/s.
const B_RATE: u32 = 10;
/// How long tenant B publishes, at least.
const B_DURATION: Duration = Duration::from_secs(10);

/// `fair`: tenant B's p50/p95/p99 while tenant A drains [`FAIR_BACKLOG`] deliveries.
pub async fn fair(ctx: &Ctx, results: &mut Results) -> anyhow::Result<()> {
    let arrivals: Samples = Arc::default();
    let tenants = TwoTenants::start(ctx, "fair", &arrivals).await?;
    let (a, b, receiver) = (&tenants.a, tenants.b.clone(), &tenants.receiver);
    for i in 0..FAIR_ENDPOINTS {
        load::create_endpoint(a, &format!("{receiver}/a/{i}"), None).await?;
    }
    load::create_endpoint(&b, &format!("{receiver}/b"), None).await?;

    let bar = ctx.bar("fair", None);
    bar.set_message("tenant A builds its backlog");
    let events = FAIR_BACKLOG / FAIR_ENDPOINTS;
    let client = a.clone();
    let out = load::closed_loop(
        ctx.concurrency,
        Stop::Count(events),
        Arc::new(Counters::default()),
        move |i| {
            let client = client.clone();
            async move { load::publish_ok(&client, "fair.a", &json!({ "n": i })).await }
        },
    )
    .await;
    check(&out, "tenant A's publishes")?;

    bar.set_message("tenant B publishes every 100 ms");
    let duration = ctx.duration.max(B_DURATION);
    let timed = tenant_b(b, (B_RATE, duration), "fair.b", &arrivals).await?;
    let received = arrivals.total.load(Ordering::Relaxed);
    bar.finish_and_clear();
    results.note_rss(tenants.server.peak_rss_mb());
    drop(tenants);
    let a_received = received.saturating_sub(timed.events);
    results.fair = Some(Fair {
        b_latency: timed.latency,
        b_events: timed.events,
        a_left: (events * FAIR_ENDPOINTS).saturating_sub(a_received),
    });
    Ok(())
}

/// A server with tenants A and B, and the receiver that times tenant B's events; dropping it stops
/// the receiver, then the server, then removes the server's directory.
pub struct TwoTenants {
    /// Tenant A's client.
    pub a: Client,
    /// Tenant B's client.
    pub b: Client,
    /// The receiver's base URL.
    pub receiver: String,
    /// The server under test.
    pub server: Child,
    receiver_task: JoinHandle<()>,
    _dir: TempDir,
}

impl TwoTenants {
    /// Start the receiver (filling `arrivals`) and a server in a fresh directory named after `label`,
    /// and create both tenants.
    pub async fn start(ctx: &Ctx, label: &str, arrivals: &Samples) -> anyhow::Result<TwoTenants> {
        let (receiver, receiver_task) = start_receiver(arrivals.clone()).await?;
        let dir = TempDir::new(label)?;
        let server = ctx.server(&dir, "all").await?;
        let admin = ctx.api(&server)?;
        for tenant in ["tenant-a", "tenant-b"] {
            admin
                .create_tenant(tenant)
                .await
                .with_context(|| format!("creating {tenant}"))?;
        }
        Ok(TwoTenants {
            a: admin.clone().for_tenant("tenant-a")?,
            b: admin.for_tenant("tenant-b")?,
            receiver,
            server,
            receiver_task,
            _dir: dir,
        })
    }
}

impl Drop for TwoTenants {
    fn drop(&mut self) {
        self.receiver_task.abort();
    }
}

/// What [`tenant_b`] measured.
pub struct Timed {
    /// Publish-to-receive percentiles.
    pub latency: Latency,
    /// Events published (all arrived).
    pub events: u64,
}

/// Publish `event_type` through `client` at `rate` events/s for `duration`, each carrying its send
/// time, wait until all of them have arrived at the receiver that fills `arrivals` (60 s at most), and
/// take their publish-to-receive percentiles.
pub async fn tenant_b(
    client: Client,
    (rate, duration): (u32, Duration),
    event_type: &'static str,
    arrivals: &Samples,
) -> anyhow::Result<Timed> {
    let out = load::fixed_rate(rate, duration, Arc::new(Counters::default()), move |i| {
        let client = client.clone();
        async move {
            let payload = json!({ "n": i, "sent_us": now_us() });
            load::publish_ok(&client, event_type, &payload).await
        }
    })
    .await;
    check(&out, "tenant B's publishes")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while (arrivals.samples.lock().expect("samples lock").len() as u64) < out.ok {
        if Instant::now() > deadline {
            bail!("tenant B's events did not all arrive within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut seen = std::mem::take(&mut *arrivals.samples.lock().expect("samples lock"));
    seen.sort_by(f64::total_cmp);
    let p = |q| percentile(&seen, q).unwrap_or(0.0);
    Ok(Timed {
        latency: Latency {
            p50: p(50.0),
            p95: p(95.0),
            p99: p(99.0),
        },
        events: out.ok,
    })
}

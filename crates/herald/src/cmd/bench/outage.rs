//! The `outage` scenario: tenant A's endpoints are all down (they answer 503) and each has a retry
//! waiting an hour out, while tenant B publishes 50 events/s to an endpoint that answers. A's work is
//! scheduled but not due: B's publish-to-receive percentiles show whether endpoints with nothing due
//! hold back one that has work now.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::http::StatusCode;
use axum::Router;
use herald_api::endpoints::EndpointInput;
use serde_json::json;

use super::fair::{tenant_b, TwoTenants};
use super::latency::Samples;
use super::load::{self, Counters, Stop};
use super::report::{Outage, Results};
use super::scenarios::{check, Ctx};

/// Tenant A's endpoints, all in an outage: twenty times what one claim visits.
pub const OUTAGE_ENDPOINTS: u64 = 10_000;
/// Tenant B's publish rate, events/s.
const B_RATE: u32 = 50;
/// How long tenant B publishes, at least.
const B_DURATION: Duration = Duration::from_secs(10);

/// A receiver that answers every request 503 and counts them; returns its base URL.
async fn start_down_receiver(
    count: Arc<AtomicU64>,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let app = Router::new().fallback(move || {
        count.fetch_add(1, Ordering::Relaxed);
        async { StatusCode::SERVICE_UNAVAILABLE }
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}"), task))
}

/// `outage`: tenant B's p50/p95/p99 while [`OUTAGE_ENDPOINTS`] endpoints of tenant A wait to retry.
pub async fn outage(ctx: &Ctx, results: &mut Results) -> anyhow::Result<()> {
    let arrivals: Samples = Arc::default();
    let failed = Arc::new(AtomicU64::new(0));
    let (down, down_task) = start_down_receiver(failed.clone()).await?;
    let tenants = TwoTenants::start(ctx, "outage", &arrivals).await?;
    let (a, b) = (tenants.a.clone(), tenants.b.clone());
    let bar = ctx.bar("outage", None);
    bar.set_message(format!("tenant A creates {OUTAGE_ENDPOINTS} endpoints"));
    let an_hour_out: herald_core::retry::RetryPolicy =
        serde_json::from_value(json!({"kind": "schedule", "delays_ms": [3_600_000]}))
            .context("the retry policy of tenant A's endpoints")?;
    let (client, down_url) = (a.clone(), down.clone());
    let created = load::closed_loop(
        ctx.concurrency,
        Stop::Count(OUTAGE_ENDPOINTS),
        Arc::new(Counters::default()),
        move |i| {
            let client = client.clone();
            let input = EndpointInput {
                url: Some(format!("{down_url}/a/{i}")),
                retry_policy: Some(an_hour_out.clone()),
                event_types: Some(vec!["outage.a".into()]),
                ..EndpointInput::default()
            };
            async move { client.create_endpoint(&input).await.is_ok() }
        },
    )
    .await;
    check(&created, "tenant A's endpoints")?;
    load::create_endpoint(&b, &format!("{}/b", tenants.receiver), None).await?;

    bar.set_message("tenant A's endpoints fail their first attempt");
    if !load::publish_ok(&a, "outage.a", &json!({})).await {
        bail!("tenant A's publish failed");
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while failed.load(Ordering::Relaxed) < OUTAGE_ENDPOINTS {
        if Instant::now() > deadline {
            bail!("tenant A's endpoints were not all attempted within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let the failures be recorded: from here on A's deliveries wait for their retry.
    tokio::time::sleep(Duration::from_secs(2)).await;

    bar.set_message(format!("tenant B publishes {B_RATE} events/s"));
    let duration = ctx.duration.max(B_DURATION);
    let timed = tenant_b(b, (B_RATE, duration), "outage.b", &arrivals).await?;
    bar.finish_and_clear();
    results.note_rss(tenants.server.peak_rss_mb());
    drop(tenants);
    down_task.abort();
    let early = failed
        .load(Ordering::Relaxed)
        .saturating_sub(OUTAGE_ENDPOINTS);
    results.outage = Some(Outage {
        b_latency: timed.latency,
        b_events: timed.events,
        waiting: OUTAGE_ENDPOINTS,
        early_retries: early,
    });
    Ok(())
}

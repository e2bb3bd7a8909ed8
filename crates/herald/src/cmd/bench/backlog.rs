//! The `backlog` scenario: build due deliveries with an API-only server (`--role api`), stop it, start a
//! delivering server on the same data directory, and measure the drain rate and that server's peak memory.

use std::time::Instant;

use anyhow::Context;

use super::processes::{self, TempDir};
use super::report::{Backlog, Results};
use super::scenarios::{check, endpoints, wait_received, Ctx};

/// Endpoints the backlog's deliveries are spread over (each publish makes this many deliveries).
pub const BACKLOG_ENDPOINTS: u64 = 100;

/// `backlog`: build due deliveries with an API-only server, stop it, start a delivering server on the same data,
/// and measure the drain rate and that server's peak memory.
pub async fn backlog(ctx: &Ctx, results: &mut Results) -> anyhow::Result<()> {
    let dir = TempDir::new("backlog")?;
    let mut receiver = processes::start_receiver(dir.path()).await?;
    let events = ctx.backlog.div_ceil(BACKLOG_ENDPOINTS).max(1);
    let total = events * BACKLOG_ENDPOINTS;
    let api = ctx.server(&dir, "api").await?;
    endpoints(ctx, &api, &receiver, BACKLOG_ENDPOINTS, "backlog").await?;
    let bar = ctx.bar("backlog", Some(events));
    bar.set_message("building (role api)");
    let out = ctx.publish(&api, events, &bar).await?;
    bar.finish_and_clear();
    check(&out, "publishes")?;
    results.note_rss(api.peak_rss_mb());
    api.stop().await.context("stopping the API-only server")?;

    let start = Instant::now();
    let server = ctx.server(&dir, "all").await?;
    let bar = ctx.bar("backlog", Some(total));
    bar.set_message("draining");
    let drained = wait_received(ctx, &mut receiver, total, &bar).await;
    bar.finish_and_clear();
    drained?;
    let drain_per_s = total as f64 / start.elapsed().as_secs_f64();
    let peak = server.peak_rss_mb();
    results.note_rss(peak);
    results.backlog = Some(Backlog {
        deliveries: total,
        drain_per_s,
        peak_rss_mb: peak.unwrap_or(0.0),
    });
    Ok(())
}

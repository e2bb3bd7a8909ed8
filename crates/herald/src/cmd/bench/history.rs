//! The `history` scenario: the `deliver` run again, on a store that already holds millions of finished
//! deliveries to the same endpoint (with their events, attempts and statistics), to show how the engine's
//! cost grows with the work it has done. The history is written straight into the stopped store's tables
//! ([`herald_store::history`]), spread over the last six hours so retention leaves it alone.

use anyhow::Context;
use herald_store::history::History;

use super::processes::{self, TempDir};
use super::report::{HistoryRun, Results};
use super::scenarios::{deliver_events, Ctx};

/// Six hours, in ms: how far back the history reaches.
const SPAN_MS: i64 = 6 * 3_600_000;

/// `history`: deliveries/s and server CPU per delivery to one endpoint with `ctx.history` finished
/// deliveries already in the store.
pub async fn history(ctx: &Ctx, results: &mut Results) -> anyhow::Result<()> {
    let dir = TempDir::new("history")?;
    let mut receiver = processes::start_receiver(dir.path()).await?;
    let server = ctx.server(&dir, "all").await?;
    let url = format!("{}/history", receiver.base);
    let endpoint_id = ctx.endpoint(&server, &url, ctx.max_in_flight).await?;
    server
        .stop()
        .await
        .context("stopping the server to write history")?;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let history = History {
        tenant_id: herald_store::DEFAULT_TENANT.to_string(),
        endpoint_id,
        url,
        count: ctx.history,
        from_ms: now - SPAN_MS,
        until_ms: now - 60_000,
    };
    let bar = ctx.bar("history", Some(history.count));
    bar.set_message("writing finished deliveries");
    let written = match ctx.scenario_url(&dir) {
        Some(db) => {
            herald_store::postgres::write_history(&db, &history, |n| bar.set_position(n)).await
        }
        None => {
            let (path, history, bar) = (dir.path().join("herald.db"), history.clone(), bar.clone());
            tokio::task::spawn_blocking(move || {
                herald_store::sqlite::write_history(&path, &history, |n| bar.set_position(n))
            })
            .await?
        }
    };
    bar.finish_and_clear();
    written.context("writing the history")?;

    let server = ctx.server(&dir, "all").await?;
    let (per_s, cpu_ms) = deliver_events(ctx, &server, &mut receiver, "history").await?;
    results.note_rss(server.peak_rss_mb());
    results.history = Some(HistoryRun {
        finished: history.count,
        deliver_per_s: per_s,
        cpu_ms_per_delivery: cpu_ms,
    });
    Ok(())
}

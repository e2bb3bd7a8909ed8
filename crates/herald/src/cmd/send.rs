//! `herald send`: publish an event (or many, with a progress bar) from the shell.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use herald_api::client::{Client, RequestOptions};
use herald_api::events::{PublishInput, PublishReceipt};
use herald_server::server::admin_token_path;
use indicatif::{ProgressBar, ProgressStyle};

use super::StoreArgs;

/// Arguments of `herald send`.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// Event type, e.g. invoice.paid.
    event_type: String,
    /// Payload JSON (default {}).
    #[arg(default_value = "{}")]
    payload: String,
    /// Herald's address.
    #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8000")]
    server: String,
    /// API token (default: HERALD_ADMIN_TOKEN, else the token saved in the data dir).
    #[arg(long, env = "HERALD_TOKEN")]
    token: Option<String>,
    /// Tenant to publish for (admin token only).
    #[arg(long)]
    tenant: Option<String>,
    /// Idempotency key (with --count, a suffix -N is added).
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Publish this many events.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Requests in flight at once when publishing many.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Print results as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

fn token(args: &SendArgs) -> anyhow::Result<String> {
    if let Some(t) = &args.token {
        return Ok(t.clone());
    }
    let config = args.store.load(HashMap::new())?;
    if let Some(t) = config.admin_token {
        return Ok(t);
    }
    let path = admin_token_path(&config.data_dir);
    let saved = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no --token given and no saved token at {} (start `herald serve` first)",
            path.display()
        )
    })?;
    Ok(saved.trim().to_string())
}

/// Publish and print what Herald answered.
pub async fn run(args: SendArgs) -> anyhow::Result<()> {
    let payload = serde_json::value::RawValue::from_string(args.payload.clone())
        .context("the payload is not valid JSON")?;
    let token = token(&args)?;
    let mut client = Client::new(&args.server, &token, args.concurrency.max(1))?;
    if let Some(tenant) = &args.tenant {
        client = client.for_tenant(tenant)?;
    }
    let publish = {
        let (event_type, key, count) = (
            args.event_type.clone(),
            args.idempotency_key.clone(),
            args.count,
        );
        Arc::new(move |n: u64| {
            let input = PublishInput {
                event_type: event_type.clone(),
                payload: payload.clone(),
                idempotency_key: key.as_ref().map(|k| {
                    if count > 1 {
                        format!("{k}-{n}")
                    } else {
                        k.clone()
                    }
                }),
            };
            let client = client.clone();
            async move {
                let published = client
                    .publish(&input, &RequestOptions::default())
                    .await
                    .map_err(|e| match e.status() {
                        Some(_) => anyhow::anyhow!("Herald answered {e}"),
                        None => anyhow::anyhow!("cannot reach Herald: {e}"),
                    })?;
                Ok::<PublishReceipt, anyhow::Error>(published.receipt)
            }
        })
    };
    if args.count == 1 {
        let receipt = publish(0).await?;
        if args.json {
            println!("{}", serde_json::to_string(&receipt)?);
        } else {
            println!(
                "published {} ({} deliveries)",
                receipt.id,
                receipt.deliveries.len()
            );
        }
        return Ok(());
    }
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.count)
    };
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} events  {per_sec}  eta {eta}",
    )?);
    let started = std::time::Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (publish, next, bar, count) = (publish.clone(), next.clone(), bar.clone(), args.count);
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= count {
                    return Ok::<(), anyhow::Error>(());
                }
                publish(n).await?;
                bar.inc(1);
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    bar.finish();
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "published": args.count, "seconds": secs, "per_second": args.count as f64 / secs })
        );
    } else {
        println!(
            "published {} events in {:.2}s ({:.0}/s)",
            args.count,
            secs,
            args.count as f64 / secs
        );
    }
    Ok(())
}

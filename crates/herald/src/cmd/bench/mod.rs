//! `herald bench`: measure Herald on this machine (SPEC §8).
//!
//! Starts its own receiver and Herald servers as child processes on loopback, drives them with a keep-alive load
//! generator, and prints a table (or, with `--json`, one JSON object). Modules: [`processes`] (children),
//! [`load`] (load generator), [`scenarios`], [`latency`] and [`backlog`] (what is measured), [`report`] (output).

mod backlog;
mod fair;
mod history;
mod latency;
mod load;
mod outage;
mod processes;
mod report;
mod scenarios;
mod table;

use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::json;

use report::{Meta, Results};
use scenarios::Ctx;

/// Default size of the backlog scenario; `--backlog 1000000` is the full-size run of SPEC §8.
const DEFAULT_BACKLOG: u64 = 500_000;
/// Default history of the `history` scenario: five million finished deliveries.
const DEFAULT_HISTORY: u64 = 5_000_000;

/// One benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Plain POSTs/s straight to the receiver (no Herald): the practical limit of this machine.
    Ceiling,
    /// Durable publishes/s at the given concurrency, no endpoints.
    Ingest,
    /// End-to-end deliveries/s to one endpoint (default settings) on a receiver answering 204.
    Deliver,
    /// Publish-to-receive p50/p95/p99, delivery rate and lag at a fixed rate (default 1,000 events/s) to
    /// one endpoint.
    #[value(alias = "deliver-paced")]
    Latency,
    /// Deliveries/s when every event goes to 1,000 endpoints.
    Fanout,
    /// Drain rate and peak server memory for a backlog of due deliveries.
    Backlog,
    /// Tenant B's latency (one event per 100 ms) while tenant A drains 200,000 deliveries over 50 endpoints.
    Fair,
    /// Tenant B's latency (50 events/s) while 10,000 endpoints of tenant A are down, each with a retry
    /// waiting an hour out.
    Outage,
    /// `deliver` again with `--history` finished deliveries (default 5,000,000) already in the store.
    History,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Ceiling => "ceiling",
            Scenario::Ingest => "ingest",
            Scenario::Deliver => "deliver",
            Scenario::Latency => "latency",
            Scenario::Fanout => "fanout",
            Scenario::Backlog => "backlog",
            Scenario::Fair => "fair",
            Scenario::Outage => "outage",
            Scenario::History => "history",
        }
    }
}

/// Arguments of `herald bench`.
///
/// The default run (backlog of 500,000) takes one to two minutes on 2 cores. The full-size run of SPEC §8 is
/// `herald bench --backlog 1000000` (about a minute more on 2 cores).
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Run only this scenario (default: all, in the order ceiling, ingest, deliver, latency, fanout, backlog,
    /// fair, outage, history).
    #[arg(long, value_enum)]
    scenario: Option<Scenario>,
    /// Events published by `ingest` and `deliver` (`fanout` publishes EVENTS / 1,000 events to 1,000 endpoints).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// Seconds of load for `ceiling` and `latency`.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Due deliveries built up by `backlog` (the full-size run of SPEC §8 is 1000000).
    #[arg(long, default_value_t = DEFAULT_BACKLOG, value_parser = clap::value_parser!(u64).range(1..))]
    backlog: u64,
    /// Finished deliveries already in the store for `history` (written straight into its tables first).
    #[arg(long, default_value_t = DEFAULT_HISTORY, value_parser = clap::value_parser!(u64).range(1..))]
    history: u64,
    /// Concurrent publishers (and concurrent POSTs for `ceiling`).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    concurrency: u64,
    /// Fixed publish rate of `latency`, events/s.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    rate: u32,
    /// Use this PostgreSQL database instead of SQLite (passed to every server as --database-url).
    #[arg(long, env = "HERALD_DATABASE_URL")]
    database_url: Option<String>,
    /// Give the endpoints of `deliver` and `latency` this `max_in_flight` instead of the server's default
    /// (16), as a tuned installation would.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    max_in_flight: Option<u32>,
    /// Print one JSON object (SPEC §8 fields) instead of the table; no progress bars.
    #[arg(long)]
    json: bool,
}

/// Run the chosen scenarios and print the results.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if !(0.1..=3600.0).contains(&args.duration) {
        anyhow::bail!("--duration must be between 0.1 and 3600 seconds");
    }
    let token = format!(
        "bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let concurrency = args.concurrency as usize;
    let ctx = Ctx {
        client: load::client(concurrency, &token)?,
        token,
        database_url: args.database_url.clone(),
        concurrency,
        events: args.events,
        duration: Duration::from_secs_f64(args.duration),
        backlog: args.backlog,
        history: args.history,
        rate: args.rate,
        max_in_flight: args.max_in_flight,
        progress: !args.json,
        databases: Default::default(),
    };
    let mut results = Results {
        store: if args.database_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
        .into(),
        ..Results::default()
    };
    let chosen: Vec<Scenario> = match args.scenario {
        Some(s) => vec![s],
        None => Scenario::value_variants().to_vec(),
    };
    for scenario in chosen {
        let outcome = match scenario {
            Scenario::Ceiling => scenarios::ceiling(&ctx, &mut results).await,
            Scenario::Ingest => scenarios::ingest(&ctx, &mut results).await,
            Scenario::Deliver => scenarios::deliver(&ctx, &mut results).await,
            Scenario::Latency => latency::latency(&ctx, &mut results).await,
            Scenario::Fanout => scenarios::fanout(&ctx, &mut results).await,
            Scenario::Backlog => backlog::backlog(&ctx, &mut results).await,
            Scenario::Fair => fair::fair(&ctx, &mut results).await,
            Scenario::Outage => outage::outage(&ctx, &mut results).await,
            Scenario::History => history::history(&ctx, &mut results).await,
        };
        if let Err(e) = outcome {
            if !args.json {
                eprintln!("{}: failed: {e:#}", scenario.name());
            }
            results
                .errors
                .push((scenario.name().to_string(), format!("{e:#}")));
        }
    }
    let meta = Meta {
        commit: commit(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gb: memory_gb(),
        settings: json!({
            "events": args.events, "duration_s": args.duration, "backlog": args.backlog,
            "history": args.history,
            "concurrency": args.concurrency, "rate": args.rate,
            "max_in_flight": args.max_in_flight.map_or(json!("default"), |m| json!(m)),
        }),
    };
    if args.json {
        println!("{}", report::to_json(&results, &meta));
    } else {
        print!("{}", table::table(&results, &meta));
    }
    if !results.errors.is_empty() {
        anyhow::bail!("{} scenario(s) failed", results.errors.len());
    }
    Ok(())
}

/// `git rev-parse --short HEAD` in the current directory, when it works.
fn commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// `MemTotal` from `/proc/meminfo`, in GiB (0 when unknown).
fn memory_gb() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0)
}

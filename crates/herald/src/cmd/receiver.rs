//! `herald receiver`: the test webhook receiver of seed 003.

use std::time::Duration;

use clap::Args;
use herald_core::signing::Secret;
use herald_server::receiver::{self, ReceiverConfig};

use super::stop_signal;

/// Arguments of `herald receiver`.
#[derive(Args, Debug)]
pub struct ReceiverArgs {
    /// Port to listen on (127.0.0.1).
    #[arg(long, default_value_t = 9001)]
    port: u16,
    /// Percentage of requests to answer with 500 (0-100).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    failure_rate: u8,
    /// Seconds to wait before answering each request.
    #[arg(long, default_value_t = 0.0)]
    delay: f64,
    /// Verify signatures with this endpoint secret (whsec_…); bad signatures get 401.
    #[arg(long)]
    secret: Option<String>,
    /// Do not print a line per delivery.
    #[arg(long)]
    quiet: bool,
}

/// Serve until Ctrl-C.
pub async fn run(args: ReceiverArgs) -> anyhow::Result<()> {
    if !(0.0..=3600.0).contains(&args.delay) {
        anyhow::bail!("--delay must be between 0 and 3600 seconds");
    }
    let secret = args
        .secret
        .as_deref()
        .map(Secret::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--secret is not a valid whsec_ secret: {e}"))?;
    let config = ReceiverConfig {
        failure_rate: args.failure_rate,
        delay: Duration::from_secs_f64(args.delay),
        secret,
        print: !args.quiet,
    };
    let (listener, addr) = receiver::bind(args.port).await?;
    println!(
        "Receiver listening on http://{addr} (failure rate {}%, delay {}s, signatures {})",
        args.failure_rate,
        args.delay,
        if config.secret.is_some() {
            "verified"
        } else {
            "not checked"
        }
    );
    println!("  counters: curl http://{addr}/stats");
    receiver::serve(listener, config, stop_signal()).await?;
    Ok(())
}

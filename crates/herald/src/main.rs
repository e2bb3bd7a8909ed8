//! `herald`: the command-line entry point. Each subcommand lives in `cmd/`; this file only parses arguments.

mod cmd;

/// mimalloc: allocation was a tenth of the server's CPU under load with the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// Herald: durable, signed webhook delivery.
#[derive(Parser)]
#[command(name = "herald", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the delivery engine.
    Serve(cmd::serve::ServeArgs),
    /// Run a test webhook receiver that prints what arrives.
    Receiver(cmd::receiver::ReceiverArgs),
    /// Publish an event from the shell.
    Send(cmd::send::SendArgs),
    /// Apply database migrations and exit.
    Migrate(cmd::migrate::MigrateArgs),
    /// Measure Herald on this machine (SPEC §8): throughput, latency, fan-out, backlog drain, memory.
    Bench(cmd::bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => cmd::serve::run(args).await,
            Command::Receiver(args) => cmd::receiver::run(args).await,
            Command::Send(args) => cmd::send::run(args).await,
            Command::Migrate(args) => cmd::migrate::run(args).await,
            Command::Bench(args) => cmd::bench::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

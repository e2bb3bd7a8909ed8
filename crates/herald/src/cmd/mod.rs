//! One module per subcommand, plus what they share.

pub mod bench;
pub mod migrate;
pub mod receiver;
pub mod send;
pub mod serve;

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Args;
use herald_server::Config;

/// Settings shared by commands that open the store.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Data directory (SQLite database, admin token). [env: HERALD_DATA_DIR] [default: ./herald-data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Use this database instead of the embedded one. [env: HERALD_DATABASE_URL]
    #[arg(long)]
    pub database_url: Option<String>,
    /// Read settings from this TOML file (default: ./herald.toml when present). [env: HERALD_CONFIG]
    #[arg(long, env = "HERALD_CONFIG")]
    pub config: Option<PathBuf>,
}

impl StoreArgs {
    /// Flags given on the command line, by setting name.
    pub fn flags(&self) -> HashMap<&'static str, String> {
        let mut flags = HashMap::new();
        if let Some(d) = &self.data_dir {
            flags.insert("data_dir", d.display().to_string());
        }
        if let Some(u) = &self.database_url {
            flags.insert("database_url", u.clone());
        }
        flags
    }

    /// Load the configuration with extra flags on top.
    pub fn load(&self, mut extra: HashMap<&'static str, String>) -> anyhow::Result<Config> {
        extra.extend(self.flags());
        Ok(Config::load(&extra, self.config.as_deref())?)
    }
}

/// Logs to stderr, human-readable, or one JSON object a line with `HERALD_LOG_FORMAT=json`; `RUST_LOG`
/// overrides the level (default `info`).
pub fn init_logging() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let format = std::env::var("HERALD_LOG_FORMAT").unwrap_or_default();
    let _ = match format.as_str() {
        "" | "text" => builder.try_init(),
        "json" => builder.json().flatten_event(true).try_init(),
        other => anyhow::bail!("HERALD_LOG_FORMAT: {other:?} is not text or json"),
    };
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

//! `herald serve`: run a node until Ctrl-C or SIGTERM.

use std::collections::HashMap;

use clap::Args;
use herald_server::server::{sqlite_path, TokenOrigin};

use super::{init_logging, stop_signal, StoreArgs};

/// Arguments of `herald serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on. [env: HERALD_LISTEN] [default: 127.0.0.1:8000]
    #[arg(long)]
    listen: Option<String>,
    /// What this node runs: api, worker or all. [env: HERALD_ROLE] [default: all]
    #[arg(long)]
    role: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

/// Start the node, print where it listens, the admin token and the data location, then serve.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging()?;
    let mut flags = HashMap::new();
    if let Some(l) = &args.listen {
        flags.insert("listen", l.clone());
    }
    if let Some(r) = &args.role {
        flags.insert("role", r.clone());
    }
    let config = args.store.load(flags)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "invalid setting listen: cannot listen on {}: {e}",
                config.listen
            )
        })?;
    let data = match &config.database_url {
        Some(url) => redact_password(url),
        None => sqlite_path(&config.data_dir).display().to_string(),
    };
    let running = herald_server::start(config, listener).await?;
    println!(
        "Herald {} listening on http://{}",
        env!("CARGO_PKG_VERSION"),
        running.addr
    );
    println!("  store:       {} ({data})", running.store_kind);
    match &running.token_origin {
        TokenOrigin::Configured => println!("  admin token: from HERALD_ADMIN_TOKEN"),
        // Printed only on the start that generated it: later starts (and their logs) never show it.
        TokenOrigin::Saved(path) => println!("  admin token: saved in {}", path.display()),
        TokenOrigin::Generated(path) => {
            println!(
                "  admin token: {} (generated; saved in {})",
                running.admin_token,
                path.display()
            )
        }
    }
    println!("  try:         curl http://{}/health", running.addr);
    running.wait(stop_signal()).await?;
    println!("Herald stopped.");
    Ok(())
}

/// `url` with any password replaced by `***`, fit to print.
fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => "(unparsable database_url)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn database_passwords_are_not_printed() {
        assert_eq!(
            redact_password("postgres://herald:s3cret@db:5432/herald"),
            "postgres://herald:***@db:5432/herald"
        );
        assert_eq!(
            redact_password("postgres://db/herald?sslmode=require"),
            "postgres://db/herald?sslmode=require"
        );
    }
}

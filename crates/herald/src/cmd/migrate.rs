//! `herald migrate`: apply the store's migrations and exit.

use std::collections::HashMap;

use clap::Args;
use herald_server::server::sqlite_path;
use herald_store::sqlite::SqliteStore;

use super::StoreArgs;

/// Arguments of `herald migrate`.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Apply pending migrations and report how many ran.
pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let config = args.store.load(HashMap::new())?;
    if config
        .database_url
        .as_deref()
        .is_some_and(|u| !u.starts_with("sqlite:"))
    {
        anyhow::bail!("invalid setting database_url: this build stores data in SQLite only");
    }
    let path = match config.database_url.as_deref() {
        Some(url) => url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:")
            .into(),
        None => sqlite_path(&config.data_dir),
    };
    let now = herald_server::app::now_ms();
    let target = path.clone();
    let applied =
        tokio::task::spawn_blocking(move || SqliteStore::migrate_only(&target, now)).await??;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "store": "sqlite", "path": path, "applied": applied })
        );
    } else {
        println!("{} migration(s) applied to {}", applied, path.display());
    }
    Ok(())
}

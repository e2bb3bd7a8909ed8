//! `herald migrate`: apply the store's migrations and exit.

use std::collections::HashMap;

use clap::Args;
use std::path::PathBuf;

use herald_server::server::{pg_options, sqlite_path};
use herald_store::postgres::PostgresStore;
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
    let now = herald_server::app::now_ms();
    let (store, location, applied) = match config.database_url.as_deref() {
        Some(url) if !url.starts_with("sqlite:") => {
            let applied = PostgresStore::migrate_only(url, pg_options(&config), now)
                .await
                .map_err(|e| anyhow::anyhow!("cannot migrate (setting database_url): {e}"))?;
            ("postgres", redact(url), applied)
        }
        other => {
            let path: PathBuf = match other {
                Some(url) => url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:")
                    .into(),
                None => sqlite_path(&config.data_dir),
            };
            let target = path.clone();
            let applied =
                tokio::task::spawn_blocking(move || SqliteStore::migrate_only(&target, now))
                    .await??;
            ("sqlite", path.display().to_string(), applied)
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "store": store, "location": location, "applied": applied })
        );
    } else {
        println!("{applied} migration(s) applied to {store} ({location})");
    }
    Ok(())
}

/// A database URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}

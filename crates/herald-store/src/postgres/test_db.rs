//! Throw-away PostgreSQL databases for tests and benchmarks: each gets a freshly created database that is
//! dropped again when its guard is dropped.

use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::NoTls;

/// Where tests find PostgreSQL: `HERALD_TEST_DATABASE_URL`, else the local server with trust auth.
pub fn admin_url() -> String {
    std::env::var("HERALD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A database created for one test; dropped (connections terminated) when this guard is dropped.
pub struct TestDatabase {
    /// Connection URL of the new database.
    pub url: String,
    name: String,
    admin: String,
}

/// Create a fresh, empty database, or say why not (PostgreSQL unreachable).
pub async fn create() -> Result<TestDatabase, String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "herald_t_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    create_on(&admin_url(), &name).await
}

/// Create the empty database `name` (letters, digits, `_`) on the server behind `admin`.
pub async fn create_on(admin: &str, name: &str) -> Result<TestDatabase, String> {
    let (admin, name) = (admin.to_string(), name.to_string());
    let (client, connection) = tokio_postgres::connect(&admin, NoTls)
        .await
        .map_err(|e| format!("{admin}: {e}"))?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(|e| format!("CREATE DATABASE: {e}"))?;
    let config: tokio_postgres::Config = admin.parse().map_err(|e| format!("{e}"))?;
    let url = replace_dbname(&admin, &config, &name);
    Ok(TestDatabase { url, name, admin })
}

/// `admin` with its database name replaced by `name`.
fn replace_dbname(admin: &str, config: &tokio_postgres::Config, name: &str) -> String {
    match config.get_dbname() {
        Some(old) if admin.contains(&format!("/{old}")) => {
            admin.replacen(&format!("/{old}"), &format!("/{name}"), 1)
        }
        _ => format!("{}/{name}", admin.trim_end_matches('/')),
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs inside or outside a runtime; a thread with its own runtime works in both cases.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok((client, connection)) = tokio_postgres::connect(&admin, NoTls).await {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

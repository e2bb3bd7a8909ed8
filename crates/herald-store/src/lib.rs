//! Herald's storage layer.
//!
//! Everything Herald persists goes through the [`Store`] trait: tenants, endpoints, events, deliveries and their
//! attempts. Two implementations satisfy it: [`sqlite::SqliteStore`] (embedded, the zero set-up default) and a
//! PostgreSQL store for multi-node deployments. Both pass the contract suite in `tests/contract/`.
//!
//! Invariants every implementation keeps:
//! - a write future resolves `Ok` only after the data is durably committed;
//! - work is handed out by **leases** (`owner`, expiry), never by in-memory ownership, so a crashed worker's
//!   deliveries become claimable again once their lease expires;
//! - callers pass the current time in (`now_ms`), so behaviour is testable without sleeping.

pub mod claiming;
pub mod error;
mod health;
pub mod history;
mod jobs_model;
pub mod model;
pub mod postgres;
pub mod query;
mod sql;
pub mod sqlite;
pub mod stats;
mod store;

pub use error::StoreError;
pub use jobs_model::*;
pub use model::*;
pub use query::*;
pub use stats::{OldestOutstanding, Outstanding};
pub use store::{Store, WorkWake};

/// The tenant that always exists.
pub const DEFAULT_TENANT: &str = "default";

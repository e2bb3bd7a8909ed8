//! Herald's server: configuration, the HTTP API, the delivery engine and the test receiver.
//!
//! `server::start` wires them together: it opens the store, starts the [`delivery::Engine`] and serves
//! [`http::router`]. The `herald` binary is a thin command-line layer over this crate.

pub mod app;
pub mod auth_client;
pub mod blobs;
pub mod config;
pub mod delivery;
pub mod failpoint;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod outbound;
pub mod publish_limits;
pub mod random;
pub mod receiver;
pub mod server;
pub mod telemetry;

pub use config::{Config, Role};
pub use server::{start, Running};

//! Herald's API contract in Rust: the JSON shapes of every request body and every answer, each with its
//! OpenAPI schema, and (feature `client`) a typed client that speaks them.
//!
//! The server builds its answers from these types and derives its OpenAPI document from them, so the
//! document, the server and the client cannot disagree about a shape.

pub mod common;
pub mod compat;
pub mod deliveries;
pub mod endpoints;
pub mod events;
pub mod health;
pub mod jobs;
pub mod routes;
pub mod stats;
pub mod tenants;

#[cfg(feature = "client")]
pub mod client;

pub use herald_core::retry::RetryPolicy;
pub use herald_core::status::{DeliveryStatus, JobStatus};

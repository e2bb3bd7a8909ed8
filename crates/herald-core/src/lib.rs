//! Herald's pure domain logic.
//!
//! This crate performs no I/O: it never reads the clock, touches the network or
//! the file system, and has no source of randomness. Time and random numbers are
//! always passed in as arguments, which keeps every function deterministic and
//! easy to test.
//!
//! Modules:
//! - [`breaker`]: endpoint health: the circuit breaker, the degraded rate, auto-disable.
//! - [`failure_rate`]: a failure rate over a sliding window.
//! - [`ids`]: time-sortable, prefixed identifiers (Crockford base32).
//! - [`time`]: RFC 3339 formatting and parsing without a date crate.
//! - [`retry`]: retry policies and the pure `decide` function.
//! - [`status`]: delivery and job status machines.
//! - [`signing`]: Standard Webhooks secrets, signatures and verification.
//! - [`url_policy`]: target URL validation and SSRF policy.
//! - [`envelope`]: the JSON payload envelope and byte truncation helpers.
//! - [`event_type`]: event type names and subscription filters.
//! - [`trace`]: W3C `traceparent` parsing and continuation.
//! - [`rate`]: a token bucket for rate limits.
//! - [`pacing`]: an endpoint's request rate across nodes, from one stored time.
//! - [`stats`]: attempt statistics: latency histograms and their percentiles.

#![deny(missing_docs)]

pub mod breaker;
pub mod envelope;
pub mod event_type;
pub mod failure_rate;
pub mod ids;
pub mod pacing;
pub mod rate;
pub mod retry;
pub mod signing;
pub mod stats;
pub mod status;
pub mod time;
pub mod trace;
pub mod url_policy;

//! Integration tests: the real server and real receivers on 127.0.0.1 ephemeral ports.

mod api;
mod breakers;
mod cluster;
mod cluster_limits;
mod compat;
mod contract;
mod crash;
mod dashboard;
mod delivery;
mod helpers;
mod hostile_input;
mod idle;
mod isolation;
mod job_listing;
mod jobs;
mod logs;
mod metrics;
mod offload;
mod pgproxy;
mod process;
mod rate_limits;
mod service_auth;
mod ssrf;
mod supervision;
mod tokens;
mod tracing;

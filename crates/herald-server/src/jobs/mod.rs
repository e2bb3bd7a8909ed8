//! Jobs (seeds 000 and 001): asynchronous work whose outcome reaches the client by long poll, by webhook, or
//! both. A job's outbound calls (worker notifications, progress and completion webhooks) are ordinary direct
//! deliveries, so they get the engine's signing, retries, attempt log and status API.
//!
//! The seed 000 rule: a completion reaches the job's webhook unless the request that created the job is still
//! long-polling and receives the final status. The store decides this atomically with the completion (the
//! job's `waiter_until_ms`), and a long poll that ends without the final status releases its claim first.

mod ending;
pub mod envelope;
mod long_poll;
mod proxy;
pub mod result;
mod service;
mod sweeper;
pub mod upstream;
mod waiters;

pub use result::{JobOutcome, ResultJson};
pub use service::{JobService, JobSettings, NewJob};
pub use waiters::Waiters;

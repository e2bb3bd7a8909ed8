//! Warming a node's first connections at start-up. A fresh connection prepares each statement the first
//! time it runs one (a round trip and a plan each), and a backend's caches start cold: left to the first
//! requests, that made the first events after a start wait 12–29 ms at 1,000/s where the rest wait
//! 4–5 ms (docs/BENCHMARKS.md). The engine and the publish path need a handful of connections at once,
//! so that many are opened and given the statements of claims, records and publishes; the rest of the
//! pool still opens on demand, and a node does not take its whole share of `max_connections` early.

use deadpool_postgres::Pool;

use super::{
    batch, claim_rows, claim_writes, claims, fan_out, key_walk, plan_mode, records, stats,
};

/// Connections warmed at start-up: the dispatcher, the recorder, the publish batchers and an API read.
pub(super) const WARM_CONNECTIONS: usize = 6;

/// The statements every delivery and publish runs.
fn hot_statements() -> [&'static str; 19] {
    [
        key_walk::WALK_KEYS_WRAPPING,
        key_walk::HINTED_KEYS,
        crate::sql::DUE_ROWS_UP_TO,
        claims::TAKE_CLAIM_LOCK,
        key_walk::KEY_STATE,
        claim_rows::READ_ROUND.as_str(),
        plan_mode::PLAN_FOR_PARAMETERS,
        plan_mode::PLAN_AS_CACHED,
        claim_writes::LEASE,
        claim_writes::SET_NEXT_SENDS,
        records::LOG_ATTEMPTS,
        records::ADVANCE_DELIVERIES,
        stats::ADD.as_str(),
        batch::INSERT_EVENTS,
        batch::FAN_OUT_TARGETS,
        fan_out::INSERT_DELIVERIES,
        fan_out::NOTIFY_KEYS,
        super::endpoints::NOTIFY_WORK,
        crate::sql::TENANT_BY_TOKEN,
    ]
}

/// Open up to `connections` connections of `pool` and prepare the hot statements on each. Best effort:
/// it stops at the first failure, and whatever it did not prepare is prepared on first use as before.
pub(super) async fn warm(pool: &Pool, connections: usize) {
    let mut held = Vec::with_capacity(connections);
    for _ in 0..connections {
        match pool.get().await {
            Ok(client) => held.push(client),
            Err(_) => break,
        }
    }
    for client in &held {
        for sql in hot_statements() {
            if client.prepare_cached(sql).await.is_err() {
                return;
            }
        }
    }
}

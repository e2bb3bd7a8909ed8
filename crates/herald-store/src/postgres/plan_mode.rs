//! Statements planned for their parameters each time they run.
//!
//! PostgreSQL plans a prepared statement for its parameters the first five times it runs; after that it
//! may keep one generic plan, costed for the table sizes of that moment, until the table's statistics
//! change (never, with autovacuum off). A node that starts on a young store then plans an update by id
//! while `deliveries` holds a few pages: as a hash join over a sequential scan, or over every leased
//! row through the partial index of leases, cheaper than index lookups at that size. The plan stays
//! as the table grows, and each claim or record reads the whole table or every lease in the cluster to
//! change a handful of rows. Planned for their parameters and the table's current size, the same
//! statements cost tens of microseconds more and stay index lookups.
//!
//! Statements that look rows up per key or per id from a subquery stay index lookups under any
//! generic plan and are written that way instead where they can be (the walk, the row read, the
//! attempt log); the lease and the record's update cannot.

/// Plan the statements that follow in this transaction for their parameters.
pub(super) const PLAN_FOR_PARAMETERS: &str =
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true)";

/// Let the statements that follow in this transaction use their generic plans again.
pub(super) const PLAN_AS_CACHED: &str = "SELECT set_config('plan_cache_mode', 'auto', true)";

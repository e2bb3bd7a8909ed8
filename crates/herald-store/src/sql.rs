//! SQL text both stores run as written. Parameters are `$1`, `$2`, …: PostgreSQL's positional form, which
//! SQLite reads as named parameters numbered in order of appearance, so one text serves both.

/// Give back every lease held by exactly `$2`, due at `$1`: the rows go back to `pending` (never attempted)
/// or `retrying`.
pub const RELEASE_OWNER: &str = "UPDATE deliveries SET \
    status = CASE WHEN attempt_count > 0 THEN 'retrying' ELSE 'pending' END, \
    due_ms = $1, lease_owner = NULL, updated_ms = $1 \
    WHERE status = 'in_progress' AND lease_owner = $2";

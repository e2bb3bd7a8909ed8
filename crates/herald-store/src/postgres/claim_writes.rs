//! What a PostgreSQL claim writes once it has chosen: leases, set-aside rows and pacing times. The
//! leases and pacing times go out as prepared statements ([`WriteParams::writes`]), so that they can be
//! sent with the transaction's `COMMIT` ([`super::pipelined::PipelinedTx::commit_with`]).

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;

use super::pipelined::Write;
use super::{pg_error, plan_mode};
use crate::error::StoreResult;

/// What a chosen claim writes: the leases, the rows it set aside and the pacing times it moved on.
#[derive(Default)]
pub(super) struct ClaimWrites {
    pub(super) owner: String,
    pub(super) now_ms: i64,
    /// Ids to lease, each until the matching `until`.
    pub(super) leased: Vec<String>,
    pub(super) until: Vec<i64>,
    /// Cancel these: their endpoint was deleted.
    pub(super) endpoint_deleted: Vec<String>,
    /// Park these: their endpoint is disabled.
    pub(super) endpoint_disabled: Vec<String>,
    /// Fail these with the reason ([`crate::claiming::Selection::quarantined`]).
    pub(super) quarantined: Vec<(String, String)>,
    /// Paced keys given leases, each with its new `next_send_ms`.
    pub(super) paced_keys: Vec<String>,
    pub(super) next_sends: Vec<i64>,
}

/// Store the pacing times of `$1` (keys) as `$2`.
pub(super) const SET_NEXT_SENDS: &str = "INSERT INTO key_pacing (key, next_send_ms) \
    SELECT * FROM UNNEST($1::text[], $2::bigint[]) \
    ON CONFLICT (key) DO UPDATE SET next_send_ms = excluded.next_send_ms";

/// Lease `$1` (ids) each until `$2` for `$3` (owner), at `$4` (now).
pub(super) const LEASE: &str =
    "UPDATE deliveries d SET status = 'in_progress', lease_owner = $3, due_ms = u.until, \
    updated_ms = $4 FROM UNNEST($1::text[], $2::bigint[]) AS u(id, until) WHERE d.id = u.id";

impl ClaimWrites {
    /// Set aside the rows that cannot be sent (rare, one statement each) and prepare the statements
    /// [`WriteParams::writes`] sends.
    pub(super) async fn prepare(&self, c: &impl GenericClient) -> StoreResult<[Statement; 3]> {
        self.set_aside(c).await?;
        let plan = c
            .prepare_cached(plan_mode::PLAN_FOR_PARAMETERS)
            .await
            .map_err(pg_error)?;
        let lease = c.prepare_cached(LEASE).await.map_err(pg_error)?;
        let pace = c.prepare_cached(SET_NEXT_SENDS).await.map_err(pg_error)?;
        Ok([plan, lease, pace])
    }

    /// The parameters of the leases and the pacing times.
    pub(super) fn params(&self) -> WriteParams<'_> {
        WriteParams {
            writes: self,
            lease: [&self.leased, &self.until, &self.owner, &self.now_ms],
            pace: [&self.paced_keys, &self.next_sends],
        }
    }

    /// Cancel, park and quarantine the rows the claim set aside.
    async fn set_aside(&self, c: &impl GenericClient) -> StoreResult<()> {
        if !self.endpoint_deleted.is_empty() {
            c.execute(
                "UPDATE deliveries SET status = 'cancelled', due_ms = NULL, lease_owner = NULL, \
                 last_error = 'endpoint deleted', updated_ms = $2 WHERE id = ANY($1)",
                &[&self.endpoint_deleted, &self.now_ms],
            )
            .await
            .map_err(pg_error)?;
        }
        if !self.endpoint_disabled.is_empty() {
            c.execute(
                "UPDATE deliveries SET status = CASE WHEN attempt_count > 0 THEN 'retrying' ELSE 'pending' END, \
                 due_ms = NULL, lease_owner = NULL, updated_ms = $2 WHERE id = ANY($1)",
                &[&self.endpoint_disabled, &self.now_ms],
            )
            .await
            .map_err(pg_error)?;
        }
        for (id, reason) in &self.quarantined {
            c.execute(crate::sql::QUARANTINE_DELIVERY, &[reason, &self.now_ms, id])
                .await
                .map_err(pg_error)?;
        }
        Ok(())
    }
}

/// The parameters of a claim's last writes ([`ClaimWrites::params`]).
pub(super) struct WriteParams<'a> {
    writes: &'a ClaimWrites,
    lease: [&'a (dyn ToSql + Sync); 4],
    pace: [&'a (dyn ToSql + Sync); 2],
}

impl WriteParams<'_> {
    /// The leases and the pacing times as a transaction's last writes (`statements` from
    /// [`ClaimWrites::prepare`]), those there are; the leases planned for their ids
    /// ([`plan_mode::PLAN_FOR_PARAMETERS`]).
    pub(super) fn writes<'b>(&'b self, statements: &'b [Statement; 3]) -> Vec<Write<'b>> {
        let mut out: Vec<Write<'b>> = Vec::with_capacity(3);
        if !self.writes.leased.is_empty() {
            out.push((&statements[0], &[]));
            out.push((&statements[1], &self.lease));
        }
        if !self.writes.paced_keys.is_empty() {
            out.push((&statements[2], &self.pace));
        }
        out
    }
}

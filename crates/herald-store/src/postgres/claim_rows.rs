//! Reading a claim's candidate rows on PostgreSQL: each key's oldest due rows, whole and locked, in
//! one statement per round, and the first round guessed before the claim lock is granted.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::{Row, Statement};

use super::pg_error;
use super::rows::get;
use crate::claiming::{
    step_shares, CandidateRow, Gathered, KeyDue, KeyShare, Leases, CANDIDATE_COLUMNS,
};
use crate::error::StoreResult;
use crate::model::*;

/// The [`CANDIDATE_COLUMNS`] of `row`, starting at column `at`.
fn candidate_row(row: &Row, at: usize) -> StoreResult<CandidateRow> {
    Ok(CandidateRow {
        id: get(row, at)?,
        tenant_id: get(row, at + 1)?,
        event_id: get(row, at + 2)?,
        endpoint_id: get(row, at + 3)?,
        dispatch_key: get(row, at + 4)?,
        url: get(row, at + 5)?,
        direct_secret: get(row, at + 6)?,
        direct_headers: get(row, at + 7)?,
        direct_policy: get(row, at + 8)?,
        direct_timeout_ms: get(row, at + 9)?,
        endpoint_found: get(row, at + 10)?,
        secret: get(row, at + 11)?,
        previous_secret: get(row, at + 12)?,
        previous_secret_until: get(row, at + 13)?,
        endpoint_headers: get(row, at + 14)?,
        endpoint_policy: get(row, at + 15)?,
        endpoint_timeout_ms: get(row, at + 16)?,
        max_in_flight: get(row, at + 17)?,
        rate_limit_per_s: get(row, at + 18)?,
        disabled: get(row, at + 19)?,
        attempt_count: get(row, at + 20)?,
        count_4xx: get(row, at + 21)?,
        cycle_base: get(row, at + 22)?,
        cycle_started_ms: get(row, at + 23)?,
        correlation_id: get(row, at + 24)?,
        kind: get(row, at + 25)?,
        event_type: get(row, at + 26)?,
        payload: get(row, at + 27)?,
        event_created_ms: get(row, at + 28)?,
        auth: get(row, at + 29)?,
        traceparent: get(row, at + 30)?,
    })
}

/// Each asked key's oldest due rows, whole and locked: `$2` keys with `$3` how many rows of each, `$1`
/// now, `$4` ids this claim already read (a later round reads on past them). Rows another transaction
/// holds are skipped; a row changed by a commit since the statement began is checked again when it is
/// locked, so what comes back is due and unleased as of now. Each row's event and endpoint are looked
/// up by key, whatever the table sizes were when the statement was planned (as in
/// [`super::key_walk::WALK_KEYS_WRAPPING`]).
pub(super) static READ_ROUND: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT k.ord, {CANDIDATE_COLUMNS} FROM UNNEST($2::text[], $3::bigint[]) WITH ORDINALITY AS k(key, n, ord) \
         CROSS JOIN LATERAL (SELECT * FROM deliveries WHERE dispatch_key = k.key AND due_ms <= $1 \
                             AND id <> ALL($4) ORDER BY due_ms LIMIT k.n FOR UPDATE SKIP LOCKED) d \
         CROSS JOIN LATERAL (SELECT * FROM events e WHERE e.id = d.event_id OFFSET 0) e \
         LEFT JOIN LATERAL (SELECT * FROM endpoints ep WHERE ep.id = d.endpoint_id OFFSET 0) ep ON true \
         ORDER BY k.ord, d.due_ms"
    )
});

/// Run [`READ_ROUND`] (prepared as `stmt`) for `keys`, `counts[i]` rows of `keys[i]`, past the ids in
/// `read`: each row found with the index of its key.
pub(super) async fn read_rows(
    tx: &impl GenericClient,
    stmt: &Statement,
    (keys, counts): (&[&str], &[i64]),
    read: &[&str],
    now_ms: i64,
) -> StoreResult<Vec<(usize, CandidateRow)>> {
    let found = tx
        .query(stmt, &[&now_ms, &keys, &counts, &read])
        .await
        .map_err(pg_error)?;
    let mut rows = Vec::with_capacity(found.len());
    for row in &found {
        let ord: i64 = get(row, 0)?;
        if let Ok(i) = usize::try_from(ord - 1) {
            rows.push((i, candidate_row(row, 1)?));
        }
    }
    Ok(rows)
}

/// Keep the rows [`read_rows`] `found`: each in `rows` by id, and its id at the end of `ids[i]`, the list
/// of its key.
fn keep_found(
    found: Vec<(usize, CandidateRow)>,
    ids: &mut [Vec<String>],
    rows: &mut HashMap<String, CandidateRow>,
) {
    for (i, candidate) in found {
        if let Some(list) = ids.get_mut(i) {
            list.push(candidate.id.clone());
            rows.insert(candidate.id.clone(), candidate);
        }
    }
}

/// One round of reads for a step: each asked key's oldest due rows (`asks[i]` in all for `shares[i]`, 0
/// for none), whole and locked, in one statement. The rows are kept in `rows` by id until the claim
/// selects from them.
pub(super) async fn read_round(
    tx: &impl GenericClient,
    gathered: &mut Gathered,
    shares: &mut [KeyShare],
    asks: &[usize],
    rows: &mut HashMap<String, CandidateRow>,
    now_ms: i64,
) -> StoreResult<()> {
    let asked: Vec<usize> = (0..shares.len()).filter(|i| asks[*i] > 0).collect();
    let keys: Vec<&str> = asked.iter().map(|i| shares[*i].key.as_str()).collect();
    let counts: Vec<i64> = asked
        .iter()
        .map(|i| (asks[*i] - shares[*i].ids.len()) as i64)
        .collect();
    let read: Vec<&str> = shares
        .iter()
        .flat_map(|s| s.ids.iter().map(String::as_str))
        .collect();
    let stmt = tx.prepare_cached(&READ_ROUND).await.map_err(pg_error)?;
    let found = read_rows(tx, &stmt, (&keys, &counts), &read, now_ms).await?;
    let mut ids: Vec<Vec<String>> = asked.iter().map(|i| shares[*i].ids.clone()).collect();
    keep_found(found, &mut ids, rows);
    for (j, list) in ids.into_iter().enumerate() {
        let i = asked[j];
        gathered.read(&mut shares[i], asks[i], list);
    }
    Ok(())
}

/// The first round of a claim's first locked step, guessed from the walk's view of the keys' leases so
/// that it can be read in the round trip that takes the lock: keys and how many rows of each.
pub(super) struct Guess {
    /// The keys to read, in the order of the step's shares.
    pub(super) keys: Vec<String>,
    /// How many rows of each.
    pub(super) counts: Vec<i64>,
}

impl Guess {
    /// The first round [`step_shares`] would ask for if the keys' leases were still `seen`.
    pub(super) fn new(
        keys: &[KeyDue],
        seen: &HashMap<String, Leases>,
        request: &ClaimRequest,
        (walk_complete, gathered): (bool, &Gathered),
    ) -> Option<Guess> {
        let now = request.now_ms;
        let shares = step_shares(keys, seen, now, request, walk_complete, gathered.remaining);
        let asks = gathered.next_round(&shares)?;
        let (keys, counts) = shares
            .into_iter()
            .zip(asks)
            .filter(|(_, ask)| *ask > 0)
            .map(|(share, ask)| (share.key, ask as i64))
            .unzip();
        Some(Guess { keys, counts })
    }

    /// Give the step's true `shares` what the guessed read `found` ([`Gathered::read_guessed`]). Every
    /// row goes to `rows`; those beyond a key's free slots are not picked, and stay as they were when the
    /// transaction ends.
    pub(super) fn apply(
        &self,
        found: Vec<(usize, CandidateRow)>,
        gathered: &mut Gathered,
        shares: &mut [KeyShare],
        rows: &mut HashMap<String, CandidateRow>,
    ) {
        let mut ids: Vec<Vec<String>> = vec![Vec::new(); self.keys.len()];
        keep_found(found, &mut ids, rows);
        let read = self
            .keys
            .iter()
            .zip(&self.counts)
            .zip(ids)
            .map(|((key, count), ids)| (key.as_str(), *count as usize, ids));
        gathered.read_guessed(shares, read);
    }
}

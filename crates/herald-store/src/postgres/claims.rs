//! The delivery engine's side of the PostgreSQL store. Claims and result writes are batched: a claim is a
//! handful of statements whatever the batch size, and recording a batch of results is two.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;

use super::claim_rows::{read_round, read_rows, Guess, READ_ROUND};
use super::claim_writes::ClaimWrites;
use super::key_walk::{hinted, key_state, walk, KEY_STATE};
use super::pipelined::{PipelinedTx, Write};
use super::rows::get;
use super::stats::StatsBatch;
use super::{pg_error, plan_mode, PostgresStore};
use crate::claiming::{
    due_keys, pacing_writes, peer_leases, select, step_shares, CandidateRow, Gathered, KeyDue,
    KeyWalk, Leases,
};
use crate::error::StoreResult;
use crate::model::*;

/// Transaction-level advisory lock taken by every claim: claims run one at a time across the cluster, which
/// makes the in-flight counts they read exact and so per-endpoint limits cluster-wide.
const CLAIM_LOCK: i64 = 0x4865_7261_6c64_4331;

/// Take the advisory lock `$1` ([`CLAIM_LOCK`]) until the transaction ends.
pub(super) const TAKE_CLAIM_LOCK: &str = "SELECT pg_advisory_xact_lock($1)";

/// The keys one step of a claim visits ([`step_keys`]).
struct StepKeys {
    /// The walk's keys, then (on the first step) the hinted keys it did not read; on later steps,
    /// without the hinted keys already visited.
    keys: Vec<KeyDue>,
    /// Their leases as the walk saw them, before the claim lock.
    seen: HashMap<String, Leases>,
    /// The last key the walk read, if it read any.
    last_walked: Option<String>,
    /// Whether a key the walk read may be given work now.
    walked_due: bool,
}

/// Read one step of the walk from `after` (`asked` keys) and, on a claim's `first_step`, its hinted
/// keys ([`Gathered::add_hinted`]) unless the walk has visited every key already.
async fn step_keys(
    ptx: &PipelinedTx,
    (walker, first_step): (&mut KeyWalk, bool),
    (after, asked): (&str, usize),
    request: &ClaimRequest,
    gathered: &mut Gathered,
) -> StoreResult<StepKeys> {
    let (tx, now) = (ptx.client(), request.now_ms);
    let (mut keys, mut seen) = ptx
        .first(walk(tx, walker, (after, asked), &request.node, now))
        .await?;
    let last_walked = keys.last().map(|k| k.key.clone());
    let walked_due = keys.iter().any(|k| k.claimable(now));
    if first_step {
        // A walk that went round every key in its first step has read every hinted key with work.
        if !walker.complete() && !request.hinted_keys.is_empty() {
            let mut seen_hinted = HashMap::new();
            let node = (request.node.as_str(), now);
            let hinted = hinted(tx, &request.hinted_keys, node, &mut seen_hinted).await?;
            gathered.add_hinted(&mut keys, hinted);
            for (key, leases) in seen_hinted {
                seen.entry(key).or_insert(leases);
            }
        }
    } else {
        gathered.skip_hinted(&mut keys);
    }
    Ok(StepKeys {
        keys,
        seen,
        last_walked,
        walked_due,
    })
}

/// Whether more deliveries are due at `now_ms` than the `taken` this claim has read
/// ([`crate::sql::DUE_ROWS_UP_TO`]). Planned for its parameters ([`plan_mode`]): a generic plan made
/// on a young store would sort the whole table instead of reading the first entries of its index.
async fn due_beyond(tx: &impl GenericClient, now_ms: i64, taken: usize) -> StoreResult<bool> {
    let prepare = |sql| async move { tx.prepare_cached(sql).await.map_err(pg_error) };
    let (plan, count, cached) = tokio::try_join!(
        prepare(plan_mode::PLAN_FOR_PARAMETERS),
        prepare(crate::sql::DUE_ROWS_UP_TO),
        prepare(plan_mode::PLAN_AS_CACHED)
    )?;
    let limit = taken as i64 + 1;
    let (_, row, _) = tokio::try_join!(
        biased;
        async { tx.execute(&plan, &[]).await.map_err(pg_error) },
        async { tx.query_one(&count, &[&now_ms, &limit]).await.map_err(pg_error) },
        async { tx.execute(&cached, &[]).await.map_err(pg_error) }
    )?;
    Ok(get::<i64>(&row, 0)? > taken as i64)
}

/// A claim chosen under the claim lock, and the writes that make it so ([`ClaimWrites`]). Its rows
/// are locked by the transaction that chose them until it ends, so the claim may be handed over before
/// those writes are sent: nothing else can take its rows meanwhile.
struct Chosen {
    claim: Claim,
    writes: ClaimWrites,
}

/// Choose due work inside `tx` (see [`crate::claiming`]). Claims run one at a time across the cluster
/// ([`CLAIM_LOCK`]), so the lease counts they read are exact.
async fn choose(ptx: &PipelinedTx, request: &ClaimRequest) -> StoreResult<Chosen> {
    let tx = ptx.client();
    if request.limit == 0 {
        return Ok(Chosen {
            claim: Claim {
                next_key: request.after_key.clone(),
                ..Claim::default()
            },
            writes: ClaimWrites::default(),
        });
    }
    let now = request.now_ms;
    let mut walker = KeyWalk::new(&request.after_key);
    let mut gathered = Gathered::new(request.limit);
    let mut in_flight = HashMap::new();
    let mut paced = HashMap::new();
    let mut candidates = HashMap::new();
    let (mut last_visited, mut locked, mut walked) = (None, false, false);
    while gathered.remaining > 0 {
        let Some((after, asked)) = walker.next_step(gathered.remaining) else {
            break;
        };
        let first_step = !std::mem::replace(&mut walked, true);
        let step = step_keys(
            ptx,
            (&mut walker, first_step),
            (&after, asked),
            request,
            &mut gathered,
        )
        .await?;
        let (mut keys, seen) = (step.keys, step.seen);
        if step.last_walked.is_some() {
            last_visited = step.last_walked;
        }
        let due: Vec<String> = due_keys(&keys, now).into_iter().map(String::from).collect();
        'serve: {
            if due.is_empty() {
                break 'serve;
            }
            let due: Vec<&str> = due.iter().map(String::as_str).collect();
            // The walk only proposes keys; what is free is read under the lock, taken only when some key is
            // due (a refill after the last due work takes no lock at all). The lock, the read and a first
            // round of rows guessed from the walk's view are sent together, yet each still sees every claim
            // that committed before the lock was granted: PostgreSQL runs them in order and gives each
            // statement a snapshot of its own when it starts. All prepared first, so that each is sent the
            // moment it is polled, and polled in this order.
            let lock = if locked {
                None
            } else {
                Some(tx.prepare_cached(TAKE_CLAIM_LOCK).await.map_err(pg_error)?)
            };
            let guess = lock
                .as_ref()
                .and_then(|_| Guess::new(&keys, &seen, request, (walker.complete(), &gathered)));
            let read = tx.prepare_cached(KEY_STATE).await.map_err(pg_error)?;
            let read_guess = tx.prepare_cached(&READ_ROUND).await.map_err(pg_error)?;
            let take_lock = async {
                if let Some(lock) = &lock {
                    tx.execute(lock, &[&CLAIM_LOCK]).await.map_err(pg_error)?;
                }
                Ok(())
            };
            let guessed = async {
                let Some(guess) = &guess else {
                    return Ok(Vec::new());
                };
                let keys: Vec<&str> = guess.keys.iter().map(String::as_str).collect();
                read_rows(tx, &read_guess, (&keys, &guess.counts), &[], now).await
            };
            let ((), state, found) = tokio::try_join!(
                biased;
                take_lock,
                key_state(tx, &read, &due, &request.node, now),
                guessed
            )?;
            locked = true;
            in_flight.extend(state.in_flight);
            for k in keys.iter_mut().filter(|k| k.claimable(now)) {
                k.probe_ms = state.probes.get(&k.key).copied();
                k.next_send_ms = state.next_sends.get(&k.key).copied();
                if k.rate_limit_per_s.is_some() {
                    paced.insert(k.key.clone(), k.next_send_ms);
                }
            }
            let mut shares = step_shares(
                &keys,
                &in_flight,
                now,
                request,
                walker.complete(),
                gathered.remaining,
            );
            if let Some(guess) = &guess {
                guess.apply(found, &mut gathered, &mut shares, &mut candidates);
            }
            while let Some(asks) = gathered.next_round(&shares) {
                read_round(tx, &mut gathered, &mut shares, &asks, &mut candidates, now).await?;
            }
            gathered.finish_step(shares);
        }
        if !step.walked_due
            && !walker.complete()
            && !due_beyond(tx, now, gathered.picked.len()).await?
        {
            walker.finish();
        }
    }
    let plan = gathered.plan(&walker, &request.after_key, last_visited.as_deref());
    // Every row read was locked as it was read. Every row read is picked but those a guessed round read
    // beyond a key's free slots, which stay as they were.
    let rows: Vec<CandidateRow> = plan
        .picked
        .iter()
        .filter_map(|id| candidates.remove(id))
        .collect();
    let selection = select(rows, &in_flight, request)?;
    let set_aside = !selection.endpoint_deleted.is_empty()
        || !selection.endpoint_disabled.is_empty()
        || !selection.quarantined.is_empty();
    let (paced_keys, next_sends) = pacing_writes(&selection.leased, &paced, now)
        .into_iter()
        .unzip();
    let writes = ClaimWrites {
        owner: request.owner.clone(),
        now_ms: now,
        leased: selection.leased.iter().map(|(d, _)| d.id.clone()).collect(),
        until: selection.leased.iter().map(|(_, t)| *t).collect(),
        endpoint_deleted: selection.endpoint_deleted,
        endpoint_disabled: selection.endpoint_disabled,
        quarantined: selection.quarantined,
        paced_keys,
        next_sends,
    };
    Ok(Chosen {
        claim: Claim {
            deliveries: selection.leased.into_iter().map(|(d, _)| d).collect(),
            next_key: plan.next_key,
            more: plan.more || set_aside,
            peer_leases: peer_leases(&in_flight),
        },
        writes,
    })
}

/// Lease due work in a transaction of its own: `BEGIN` goes with the walk and `COMMIT` with the leases.
pub async fn claim_due(store: &PostgresStore, request: &ClaimRequest) -> StoreResult<Claim> {
    let tx = PipelinedTx::new(store.client().await?);
    let chosen = choose(&tx, request).await?;
    let statements = chosen.writes.prepare(tx.client()).await?;
    let params = chosen.writes.params();
    tx.commit_with(&params.writes(&statements)).await?;
    Ok(chosen.claim)
}

/// Record `results` in a transaction of its own.
pub async fn record_attempts(store: &PostgresStore, results: &[AttemptResult]) -> StoreResult<()> {
    if results.is_empty() {
        return Ok(());
    }
    let tx = PipelinedTx::new(store.client().await?);
    let stats = tx
        .first(super::records::record_in(tx.client(), &store.ids, results))
        .await?;
    let add = super::stats::add_statement(tx.client()).await?;
    let batch = StatsBatch::new(&stats);
    let params = batch.params();
    let mut last: Vec<Write<'_>> = Vec::new();
    if !batch.is_empty() {
        last.push((&add, &params));
    }
    tx.commit_with(&last).await
}

/// Record `results`, then claim, in one transaction; the claim is handed over before the commit (its rows
/// stay locked by this transaction until then, so no other claim can take them). The leases, the batch's
/// statistics and the `COMMIT` are sent together.
pub async fn record_and_claim(
    store: &PostgresStore,
    results: &[AttemptResult],
    request: &ClaimRequest,
    claimed: tokio::sync::oneshot::Sender<Claim>,
) -> StoreResult<()> {
    let tx = PipelinedTx::new(store.client().await?);
    // With no results the claim's walk is the first statement and carries the `BEGIN`.
    let stats = if results.is_empty() {
        Vec::new()
    } else {
        tx.first(super::records::record_in(tx.client(), &store.ids, results))
            .await?
    };
    let Chosen { claim, writes } = choose(&tx, request).await?;
    let _ = claimed.send(claim);
    let statements = writes.prepare(tx.client()).await?;
    let add = super::stats::add_statement(tx.client()).await?;
    let params = writes.params();
    let batch = StatsBatch::new(&stats);
    let stats_params = batch.params();
    let mut last = params.writes(&statements);
    if !batch.is_empty() {
        last.push((&add, &stats_params));
    }
    tx.commit_with(&last).await
}

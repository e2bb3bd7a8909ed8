//! The round robin over dispatch keys: the resumable walk ([`KeyWalk`]), the allotment of a claim's slots
//! among keys ([`allot`], [`Gathered`]) and where the next claim resumes ([`Plan`]).

use std::collections::{HashMap, HashSet};

use herald_core::pacing;

use super::{lease_room, to_u32, Leases};
use crate::model::ClaimRequest;

/// Most dispatch keys one claim visits. A claim that stops short says so ([`Claim::more`]) and the next one
/// goes on from there.
pub const WALK: usize = 512;

/// Most keys read per step of the walk. A claim reads as many keys as its remaining slots need and stops
/// once its limit is taken, so its cost follows what it leases, not how many endpoints have work.
pub const WALK_STEP: usize = 64;

/// A dispatch key as the walk sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDue {
    /// The dispatch key (endpoint id, or `direct:<host>`).
    pub key: String,
    /// The earliest due time among its rows (a lease expiry for leased rows).
    pub min_due_ms: i64,
    /// Its endpoint's `max_in_flight`, if it is an endpoint that still exists.
    pub max_in_flight: Option<i64>,
    /// While its circuit breaker is open: when the next probe may be sent.
    pub probe_ms: Option<i64>,
    /// Its endpoint's `rate_limit_per_s`, if it has one.
    pub rate_limit_per_s: Option<i64>,
    /// Its stored pacing time (see [`herald_core::pacing`]).
    pub next_send_ms: Option<i64>,
}

impl KeyDue {
    /// Whether the key may be given work at `now_ms`: it has a due row and its breaker, if open, is past
    /// its cooldown (half-open).
    pub fn claimable(&self, now_ms: i64) -> bool {
        self.min_due_ms <= now_ms && self.probe_ms.is_none_or(|probe| probe <= now_ms)
    }
}

/// A key's `max_in_flight`: its endpoint's, or `default_max_in_flight` for direct keys; at least 1. A
/// half-open breaker allows one: the probe.
pub fn key_limit(key: &KeyDue, default_max_in_flight: u32) -> u32 {
    if key.probe_ms.is_some() {
        return 1;
    }
    key.max_in_flight
        .map(to_u32)
        .unwrap_or(default_max_in_flight)
        .max(1)
}

/// The walk over the keys that have work, in key order after the previous claim's key, wrapping around
/// once, in steps of [`WALK_STEP`] keys, at most [`WALK`] keys in all.
#[derive(Debug)]
pub struct KeyWalk {
    start: String,
    after: String,
    wrapped: bool,
    visited: usize,
    done: bool,
    complete: bool,
}

impl KeyWalk {
    /// A walk resuming after `after_key` ("" starts at the first key).
    pub fn new(after_key: &str) -> KeyWalk {
        KeyWalk {
            start: after_key.to_string(),
            after: after_key.to_string(),
            wrapped: false,
            visited: 0,
            done: false,
            complete: false,
        }
    }

    /// Where the next step starts (keys after this one) and how many keys it reads, for a claim with
    /// `remaining` slots to fill: enough keys for that many rows at [`QUANTUM`] a key, at most
    /// [`WALK_STEP`]. `None` once the walk is over.
    pub fn next_step(&self, remaining: usize) -> Option<(String, usize)> {
        let keys = remaining.div_ceil(QUANTUM).clamp(1, WALK_STEP);
        (!self.done).then(|| (self.after.clone(), keys.min(WALK - self.visited)))
    }

    /// Take the keys one step read (`asked` were asked for) and return those to visit.
    pub fn take(&mut self, mut step: Vec<KeyDue>, asked: usize) -> Vec<KeyDue> {
        let reached_end = step.len() < asked;
        if self.wrapped {
            if let Some(i) = step.iter().position(|k| k.key > self.start) {
                step.truncate(i);
                self.done = true;
                self.complete = true;
            }
        }
        if let Some(last) = step.last() {
            self.after = last.key.clone();
        }
        self.visited += step.len();
        if reached_end && !self.done {
            if self.wrapped || self.start.is_empty() {
                self.done = true;
                self.complete = true;
            } else {
                self.wrapped = true;
                self.after = String::new();
            }
        }
        if self.visited >= WALK {
            self.done = true;
        }
        step
    }

    /// Where a step may wrap to, for a store that reads the wrap in the same statement: the walk's start,
    /// while it has not wrapped yet and did not begin at the first key.
    pub fn wrap_to(&self) -> Option<&str> {
        (!self.wrapped && !self.start.is_empty()).then_some(self.start.as_str())
    }

    /// [`KeyWalk::take`] for a step read up to [`KeyWalk::wrap_to`] in one go: `ahead`, the keys after the
    /// step's start, then `wrapped`, those from the first key up to the walk's start, `asked` in all.
    /// Equal to taking `ahead` and then, if the walk wrapped, `wrapped` as a step of its own.
    pub fn take_wrapping(
        &mut self,
        ahead: Vec<KeyDue>,
        wrapped: Vec<KeyDue>,
        asked: usize,
    ) -> Vec<KeyDue> {
        let rest = asked.saturating_sub(ahead.len());
        let mut keys = self.take(ahead, asked);
        if self.wrapped && !self.done {
            keys.extend(self.take(wrapped, rest));
        }
        keys
    }

    /// End the walk as if it had visited every key: nothing it has not visited is due
    /// ([`crate::sql::DUE_ROWS_UP_TO`]).
    pub fn finish(&mut self) {
        self.done = true;
        self.complete = true;
    }

    /// Whether every key with work was visited.
    pub fn complete(&self) -> bool {
        self.complete
    }
}

/// Rows a key takes per round of the round robin: small enough that a claim rotates through keys quickly,
/// large enough that a key's reads are not one row at a time.
pub const QUANTUM: usize = 4;

/// Share `slots` among keys round robin, up to [`QUANTUM`] per key per round, each at most its `room`.
pub fn allot(room: &[usize], slots: usize) -> Vec<usize> {
    let total: usize = room.iter().sum();
    if total <= slots {
        return room.to_vec();
    }
    let mut given = vec![0; room.len()];
    let mut left = slots;
    while left > 0 {
        for (g, r) in given.iter_mut().zip(room) {
            let take = QUANTUM.min(r - *g).min(left);
            *g += take;
            left -= take;
        }
    }
    given
}

/// What a claim gathers as it walks: the rows it takes, key by key in visiting order, and where the next
/// claim resumes.
#[derive(Debug, Default)]
pub struct Gathered {
    /// Delivery ids to lease, each key's oldest first.
    pub picked: Vec<String>,
    /// Slots of the claim's limit not yet taken.
    pub remaining: usize,
    /// The last key that was given rows.
    pub last_served: Option<String>,
    /// A key was left with free slots and rows it may still have, because the limit ran out.
    pub left_over: bool,
    /// Hinted keys visited beside the walk's first step ([`Gathered::add_hinted`]).
    hinted: HashSet<String>,
}

/// One key's share of a walk step: its free slots and the ids read so far.
#[derive(Debug)]
pub struct KeyShare {
    /// The dispatch key.
    pub key: String,
    /// Free slots (`max_in_flight` minus unexpired leases).
    pub free: usize,
    /// Ids of its oldest due rows read so far.
    pub ids: Vec<String>,
    /// False once a read returned fewer rows than asked: the key has no more due rows.
    pub open: bool,
}

impl KeyShare {
    /// How many more rows this key could take.
    pub fn room(&self) -> usize {
        if self.open {
            self.free - self.ids.len()
        } else {
            0
        }
    }
}

impl Gathered {
    /// A claim with `limit` slots to fill.
    pub fn new(limit: usize) -> Gathered {
        Gathered {
            remaining: limit,
            ..Gathered::default()
        }
    }

    /// The next round of reads for `shares`: how many rows in all to ask of each (0: none), or `None` when
    /// the step is done.
    pub fn next_round(&self, shares: &[KeyShare]) -> Option<Vec<usize>> {
        let room: Vec<usize> = shares.iter().map(KeyShare::room).collect();
        if self.remaining == 0 || room.iter().all(|r| *r == 0) {
            return None;
        }
        let more = allot(&room, self.remaining);
        Some(
            shares
                .iter()
                .zip(more)
                .map(|(s, m)| if m == 0 { 0 } else { s.ids.len() + m })
                .collect(),
        )
    }

    /// Record what a round read for one key (`asked` rows in all, `ids` came back).
    pub fn read(&mut self, share: &mut KeyShare, asked: usize, ids: Vec<String>) {
        let new = ids.len().saturating_sub(share.ids.len());
        if ids.len() < asked {
            share.open = false;
        }
        share.ids = ids;
        self.remaining = self.remaining.saturating_sub(new);
    }

    /// Record a round read before `shares` were known: for each key, how many rows were asked and the
    /// ids that came back, oldest first. Each key keeps its oldest rows up to its free slots and is closed
    /// if fewer came back than were asked; keys without a share take nothing.
    pub fn read_guessed<'k>(
        &mut self,
        shares: &mut [KeyShare],
        read: impl IntoIterator<Item = (&'k str, usize, Vec<String>)>,
    ) {
        for (key, asked, mut ids) in read {
            let Some(share) = shares.iter_mut().find(|s| s.key == key) else {
                continue;
            };
            let exhausted = ids.len() < asked;
            ids.truncate(share.free);
            let asked = ids.len() + usize::from(exhausted);
            self.read(share, asked, ids);
        }
    }

    /// Append to the walk's first step (`keys`) the `hinted` keys it did not read
    /// ([`ClaimRequest::hinted_keys`]). They come last, so the walk's keys are served first in every
    /// round, and serving them does not move where the next claim resumes: a hinted key is extra work
    /// for this claim, not a step of the round robin.
    pub fn add_hinted(&mut self, keys: &mut Vec<KeyDue>, hinted: Vec<KeyDue>) {
        for key in hinted {
            if !keys.iter().any(|k| k.key == key.key) && self.hinted.insert(key.key.clone()) {
                keys.push(key);
            }
        }
    }

    /// Drop from a later step's `keys` the hinted keys this claim already visited.
    pub fn skip_hinted(&self, keys: &mut Vec<KeyDue>) {
        if !self.hinted.is_empty() {
            keys.retain(|k| !self.hinted.contains(&k.key));
        }
    }

    /// Close a step: take its keys' rows.
    pub fn finish_step(&mut self, shares: Vec<KeyShare>) {
        for share in shares {
            if share.open && share.ids.len() < share.free {
                self.left_over = true;
            }
            if !share.ids.is_empty() {
                if !self.hinted.contains(&share.key) {
                    self.last_served = Some(share.key.clone());
                }
                self.picked.extend(share.ids);
            }
        }
    }

    /// The claim's outcome: where the next claim resumes and whether work was left.
    pub fn plan(self, walk: &KeyWalk, after_key: &str, last_visited: Option<&str>) -> Plan {
        let exhausted = self.remaining == 0;
        let more = !walk.complete() || (exhausted && self.left_over);
        let next_key = if exhausted {
            self.last_served.or(last_visited.map(str::to_string))
        } else if !walk.complete() {
            last_visited.map(str::to_string)
        } else {
            None
        };
        Plan {
            picked: self.picked,
            next_key: next_key.unwrap_or_else(|| after_key.to_string()),
            more,
        }
    }
}

/// Which due rows a claim takes, and where the next claim resumes.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Delivery ids to lease, key by key in visiting order, each key's oldest first.
    pub picked: Vec<String>,
    /// The next claim's `after_key`.
    pub next_key: String,
    /// Claimable work was left over.
    pub more: bool,
}

/// The keys of a step that may be given work now ([`KeyDue::claimable`]).
pub fn due_keys(keys: &[KeyDue], now_ms: i64) -> Vec<&str> {
    keys.iter()
        .filter(|k| k.claimable(now_ms))
        .map(|k| k.key.as_str())
        .collect()
}

/// The keys of a step that may be given work and have room for more leases, with how many.
///
/// A key is first given only what it can send at once ([`lease_room`] with a window of 1). It is given
/// its lease window ([`ClaimRequest::window_for`]) only when that leaves slots idle: the walk has visited
/// every key with work (`walk_complete`) and what they can send at once is less than the claim's
/// `remaining` slots. Leases beyond what a key can send wait for its turn and hold a slot meanwhile, so
/// they are worth taking only with slots no other key could use (one busy endpoint), never in place of a
/// request another endpoint could send now (many endpoints sharing the node's slots), and at most
/// [`ClaimRequest::most_ahead`] of them.
pub fn step_shares(
    keys: &[KeyDue],
    in_flight: &HashMap<String, Leases>,
    now_ms: i64,
    request: &ClaimRequest,
    walk_complete: bool,
    remaining: usize,
) -> Vec<KeyShare> {
    let sendable = due_shares(keys, in_flight, now_ms, request, false);
    if !walk_complete
        || request.most_ahead == 0
        || sendable.iter().map(|s| s.free).sum::<usize>() >= remaining
    {
        return sendable;
    }
    let ahead = due_shares(keys, in_flight, now_ms, request, true);
    cap_ahead(ahead, &sendable, request.most_ahead)
}

/// Cut what the shares `ahead` give beyond the `sendable` ones to `most` leases in all, first keys
/// first ([`ClaimRequest::most_ahead`]).
fn cap_ahead(mut ahead: Vec<KeyShare>, sendable: &[KeyShare], mut most: usize) -> Vec<KeyShare> {
    let now: HashMap<&str, usize> = sendable.iter().map(|s| (s.key.as_str(), s.free)).collect();
    for share in &mut ahead {
        let base = now.get(share.key.as_str()).copied().unwrap_or(0);
        let extra = share.free.saturating_sub(base).min(most);
        most -= extra;
        share.free = base + extra;
    }
    ahead.retain(|s| s.free > 0);
    ahead
}

/// The keys of a step that may be given work and have room for more leases, with how many
/// ([`lease_room`] of their limit, the unexpired leases in `in_flight` and, when `ahead`, the request's
/// lease window, else 1; one lease in all while a breaker is half-open: the probe).
pub fn due_shares(
    keys: &[KeyDue],
    in_flight: &HashMap<String, Leases>,
    now_ms: i64,
    request: &ClaimRequest,
    ahead: bool,
) -> Vec<KeyShare> {
    keys.iter()
        .filter(|k| k.claimable(now_ms))
        .filter_map(|k| {
            let leases = in_flight.get(&k.key).copied().unwrap_or_default();
            let room = if k.probe_ms.is_some() {
                1u32.saturating_sub(leases.all)
            } else {
                let window = if ahead { request.window_for(&k.key) } else { 1 };
                lease_room(key_limit(k, request.default_max_in_flight), leases, window)
            };
            let mut free = room as usize;
            if let Some(rate) = k.rate_limit_per_s {
                let allowed = pacing::allowance(to_u32(rate), k.next_send_ms, now_ms);
                free = free.min(allowed as usize);
            }
            (free > 0).then(|| KeyShare {
                key: k.key.clone(),
                free,
                ids: Vec::new(),
                open: true,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;

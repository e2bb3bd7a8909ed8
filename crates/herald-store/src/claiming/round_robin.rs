//! The round robin over dispatch keys: the resumable walk ([`KeyWalk`]), the allotment of a claim's slots
//! among keys ([`allot`], [`Gathered`]) and where the next claim resumes ([`Plan`]).

use std::collections::HashMap;

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

    /// Close a step: take its keys' rows.
    pub fn finish_step(&mut self, shares: Vec<KeyShare>) {
        for share in shares {
            if share.open && share.ids.len() < share.free {
                self.left_over = true;
            }
            if !share.ids.is_empty() {
                self.last_served = Some(share.key.clone());
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
/// request another endpoint could send now (many endpoints sharing the node's slots).
pub fn step_shares(
    keys: &[KeyDue],
    in_flight: &HashMap<String, Leases>,
    now_ms: i64,
    request: &ClaimRequest,
    walk_complete: bool,
    remaining: usize,
) -> Vec<KeyShare> {
    let sendable = due_shares(keys, in_flight, now_ms, request, false);
    if !walk_complete || sendable.iter().map(|s| s.free).sum::<usize>() >= remaining {
        return sendable;
    }
    due_shares(keys, in_flight, now_ms, request, true)
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
mod tests {
    use super::*;

    fn request(default_max_in_flight: u32) -> ClaimRequest {
        ClaimRequest {
            default_max_in_flight,
            lease_window: 1,
            ..ClaimRequest::default()
        }
    }

    fn key(name: &str) -> KeyDue {
        KeyDue {
            key: name.to_string(),
            min_due_ms: 0,
            max_in_flight: Some(4),
            probe_ms: None,
            rate_limit_per_s: None,
            next_send_ms: None,
        }
    }

    #[test]
    fn allotment_is_round_robin_within_room() {
        assert_eq!(allot(&[10, 1, 10], 7), vec![4, 1, 2]);
        assert_eq!(allot(&[10, 1, 10], 13), vec![8, 1, 4]);
        assert_eq!(allot(&[2, 2], 10), vec![2, 2]);
        assert_eq!(allot(&[5, 5, 5], 2), vec![2, 0, 0]);
    }

    #[test]
    fn the_walk_wraps_once_and_stops_at_its_start() {
        let mut walk = KeyWalk::new("b");
        let (after, asked) = walk.next_step(1_000).unwrap();
        assert_eq!(after, "b");
        // Only "c" comes after "b": the walk wraps to the first key.
        assert_eq!(walk.take(vec![key("c")], asked).len(), 1);
        let (after, asked) = walk.next_step(1_000).unwrap();
        assert_eq!(after, "");
        let seen = walk.take(vec![key("a"), key("b"), key("c")], asked);
        let names: Vec<&str> = seen.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(walk.complete());
        assert!(walk.next_step(1_000).is_none());
    }

    #[test]
    fn a_step_read_with_its_wrap_walks_as_two_steps_do() {
        let names = |keys: &[KeyDue]| keys.iter().map(|k| k.key.clone()).collect::<Vec<_>>();
        // One key, which the previous claim ended on: nothing after it, then itself.
        let mut walk = KeyWalk::new("b");
        assert_eq!(walk.wrap_to(), Some("b"));
        let (_, asked) = walk.next_step(1_000).unwrap();
        let seen = walk.take_wrapping(vec![], vec![key("b")], asked);
        assert_eq!(names(&seen), ["b"]);
        assert!(walk.complete());
        assert!(walk.next_step(1_000).is_none());
        // Keys on both sides of the start.
        let mut walk = KeyWalk::new("b");
        let (_, asked) = walk.next_step(1_000).unwrap();
        let seen = walk.take_wrapping(vec![key("c")], vec![key("a"), key("b")], asked);
        assert_eq!(names(&seen), ["c", "a", "b"]);
        assert!(walk.complete());
        // A step filled before the end does not wrap, and the next step may still wrap.
        let mut walk = KeyWalk::new("b");
        let ahead: Vec<KeyDue> = (0..WALK_STEP).map(|i| key(&format!("c{i:03}"))).collect();
        let (_, asked) = walk.next_step(1_000).unwrap();
        assert_eq!(asked, WALK_STEP);
        assert_eq!(walk.take_wrapping(ahead, vec![], asked).len(), WALK_STEP);
        assert!(!walk.complete());
        assert_eq!(walk.wrap_to(), Some("b"));
        // A wrapped walk reads on without wrapping again.
        let mut walk = KeyWalk::new("b");
        let (_, asked) = walk.next_step(WALK_STEP * QUANTUM * 2).unwrap();
        let wrapped: Vec<KeyDue> = (0..asked - 1).map(|i| key(&format!("a{i:03}"))).collect();
        walk.take_wrapping(vec![key("c")], wrapped, asked);
        assert!(!walk.complete());
        assert_eq!(walk.wrap_to(), None);
        let (after, _) = walk.next_step(1_000).unwrap();
        assert_eq!(after, format!("a{:03}", asked - 2));
        // A walk from the first key never wraps.
        assert_eq!(KeyWalk::new("").wrap_to(), None);
    }

    #[test]
    fn a_walk_from_the_start_is_complete_at_the_end() {
        let mut walk = KeyWalk::new("");
        let (_, asked) = walk.next_step(1_000).unwrap();
        walk.take(vec![key("a")], asked);
        assert!(walk.complete());
        assert!(walk.next_step(1_000).is_none());
    }

    #[test]
    fn rows_a_key_lacks_go_to_the_others_and_the_cursor_follows_the_last_served() {
        let mut gathered = Gathered::new(6);
        let mut shares = due_shares(
            &[key("a"), key("b")],
            &HashMap::new(),
            0,
            &request(16),
            true,
        );
        assert_eq!(shares[0].free, 4);
        let asks = gathered.next_round(&shares).unwrap();
        assert_eq!(asks, vec![4, 2]);
        let a: Vec<String> = (1..=4).map(|i| format!("a{i}")).collect();
        gathered.read(&mut shares[0], 4, a);
        gathered.read(&mut shares[1], 2, vec!["b1".into()]);
        // "b" has no more due rows, and "a" has no free slot left: the round robin is over.
        assert!(gathered.next_round(&shares).is_none());
        gathered.finish_step(shares);
        let walk = KeyWalk::new("");
        let plan = gathered.plan(&walk, "", Some("b"));
        assert_eq!(plan.picked, ["a1", "a2", "a3", "a4", "b1"]);
        assert_eq!(plan.next_key, "b");
        // The walk did not report completion, so more may be left.
        assert!(plan.more);
    }

    #[test]
    fn a_key_that_runs_out_leaves_its_share_to_the_next_round() {
        let mut gathered = Gathered::new(8);
        let mut shares = due_shares(
            &[key("a"), key("b")],
            &HashMap::new(),
            0,
            &request(16),
            true,
        );
        shares[0].free = 10;
        shares[1].free = 10;
        assert_eq!(gathered.next_round(&shares).unwrap(), vec![4, 4]);
        gathered.read(&mut shares[0], 4, vec!["a1".into()]);
        let b: Vec<String> = (1..=4).map(|i| format!("b{i}")).collect();
        gathered.read(&mut shares[1], 4, b);
        // Three slots are left, and only "b" may have more rows.
        assert_eq!(gathered.next_round(&shares).unwrap(), vec![0, 7]);
    }

    #[test]
    fn a_paced_key_gets_no_more_than_its_rate_allows_now() {
        let paced = |next_send_ms| KeyDue {
            rate_limit_per_s: Some(2),
            next_send_ms,
            ..key("a")
        };
        let fresh = due_shares(&[paced(None)], &HashMap::new(), 10_000, &request(16), true);
        assert_eq!(
            fresh[0].free, 2,
            "one second's worth, under max_in_flight 4"
        );
        let spent = due_shares(
            &[paced(Some(11_000))],
            &HashMap::new(),
            10_000,
            &request(16),
            true,
        );
        assert!(spent.is_empty(), "its next second is taken");
        let half = due_shares(
            &[paced(Some(10_500))],
            &HashMap::new(),
            10_000,
            &request(16),
            true,
        );
        assert_eq!(half[0].free, 1);
    }

    #[test]
    fn an_open_breaker_gives_no_work_and_a_half_open_one_a_single_probe() {
        let open = KeyDue {
            probe_ms: Some(100),
            ..key("a")
        };
        let shares = due_shares(
            &[open.clone(), key("b")],
            &HashMap::new(),
            50,
            &request(16),
            true,
        );
        assert_eq!(shares.len(), 1);
        assert_eq!(shares[0].key, "b");
        assert_eq!(
            due_keys(std::slice::from_ref(&open), 50),
            Vec::<&str>::new()
        );
        let shares = due_shares(
            std::slice::from_ref(&open),
            &HashMap::new(),
            100,
            &request(16),
            true,
        );
        assert_eq!(shares[0].free, 1);
        let probing = HashMap::from([("a".to_string(), Leases { all: 1, peers: 0 })]);
        assert!(due_shares(&[open], &probing, 100, &request(16), true).is_empty());
    }

    #[test]
    fn keys_lease_ahead_only_with_slots_no_key_could_send_now() {
        let windowed = ClaimRequest {
            lease_window: 4,
            ..request(16)
        };
        let keys = [key("a"), key("b")];
        // Two keys of limit 4 can send 8 at once: a claim of 6 takes only what they can send.
        let shares = step_shares(&keys, &HashMap::new(), 0, &windowed, true, 6);
        assert_eq!(shares.iter().map(|s| s.free).collect::<Vec<_>>(), [4, 4]);
        // A claim of 20 would leave slots idle: the keys get their window.
        let shares = step_shares(&keys, &HashMap::new(), 0, &windowed, true, 20);
        assert_eq!(shares.iter().map(|s| s.free).collect::<Vec<_>>(), [16, 16]);
        // Not while keys the walk has not reached yet may still use those slots.
        let shares = step_shares(&keys, &HashMap::new(), 0, &windowed, false, 20);
        assert_eq!(shares.iter().map(|s| s.free).collect::<Vec<_>>(), [4, 4]);
        // A key sending all it may gets its window's room beyond its requests in flight.
        let busy = HashMap::from([("a".to_string(), Leases { all: 4, peers: 0 })]);
        let shares = step_shares(&keys[..1], &busy, 0, &windowed, true, 20);
        assert_eq!(shares[0].free, 12);
    }
}

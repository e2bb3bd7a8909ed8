//! How a claim chooses work, shared by every store. Dispatch keys (endpoints) are the unit of scheduling:
//!
//! 1. walk the keys that have deliveries with a due time ([`sql::WALK_KEYS`](crate::sql::WALK_KEYS)), in key
//!    order from where the previous claim stopped, wrapping around ([`KeyWalk`]), a step at a time;
//! 2. count each due key's unexpired leases, across every node, and what each may still be given
//!    ([`step_shares`]: what it can send at once, or its lease window when that would leave slots idle);
//! 3. [`allot`] the claim's remaining limit among those keys round robin, each at most its free slots,
//!    and read that many of each key's oldest due rows ([`Gathered`]); a key with a huge backlog gets no
//!    more than a key with one due row, and the next claim resumes after the last key served;
//! 4. stop walking once the limit is taken, read the chosen rows ([`CandidateRow`], the same columns in
//!    every backend) and [`select`] them, setting aside rows that cannot be sent.
//!
//! A claim reads a few index entries per key it visits plus the rows it leases, however deep any backlog
//! is, and visits only as many keys as it needs to fill its limit.

mod round_robin;

pub use round_robin::*;

use std::collections::{BTreeMap, HashMap};

use herald_core::envelope::event_envelope;
use herald_core::retry::RetryPolicy;

use crate::error::StoreResult;
use crate::model::{ClaimedDelivery, EventKind};

/// The unexpired leases of one dispatch key, as a claim counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leases {
    /// Held by anyone.
    pub all: u32,
    /// Held by other nodes than the claiming one.
    pub peers: u32,
}

/// How many more leases the claiming node may take for a key whose `max_in_flight` is `limit`, with a
/// lease window of `window` ([`ClaimRequest::lease_window`](crate::ClaimRequest::lease_window)).
///
/// The node may have `limit - peers` requests of the key in flight (its peers' leases may all be
/// requests in flight), and none if that is not positive. It may hold `window` times that many leases,
/// and the key at most `window × limit` in all. That is `window × limit - all - (window - 1) × peers`:
/// a node never leases more than it could send in `window` turns.
///
/// Why requests in flight stay within `limit` across nodes: a node sends at most `limit` minus the
/// peers' leases its latest claim counted. Leases only grow by claims, so since the latest claim of
/// all, every other node holds no more leases than that claim counted, and sends no more than it holds.
pub fn lease_room(limit: u32, leases: Leases, window: u32) -> u32 {
    let window = window.max(1);
    if leases.peers >= limit {
        return 0;
    }
    window
        .saturating_mul(limit)
        .saturating_sub(leases.all)
        .saturating_sub((window - 1).saturating_mul(leases.peers))
}

/// The part of `counted` a claim reports: the keys some of whose leases other nodes hold.
pub fn peer_leases(counted: &HashMap<String, Leases>) -> HashMap<String, u32> {
    counted
        .iter()
        .filter(|(_, l)| l.peers > 0)
        .map(|(k, l)| (k.clone(), l.peers))
        .collect()
}

/// The columns every backend's candidate query selects, in [`CandidateRow`] order. Aliases: `d` deliveries,
/// `e` events, `ep` endpoints (left-joined).
pub const CANDIDATE_COLUMNS: &str = "d.id, d.tenant_id, d.event_id, d.endpoint_id, d.dispatch_key, \
    COALESCE(ep.url, d.url), d.secret, d.headers, d.retry_policy, d.timeout_ms, \
    ep.id, ep.secret, ep.previous_secret, ep.previous_secret_expires_ms, ep.headers, ep.retry_policy, \
    ep.timeout_ms, ep.max_in_flight, ep.rate_limit_per_s, ep.disabled, \
    d.attempt_count, d.count_4xx, d.cycle_base, d.cycle_started_ms, d.correlation_id, \
    e.kind, e.event_type, e.payload, e.created_ms, d.auth, e.traceparent";

/// One due delivery as read from the database (columns of [`CANDIDATE_COLUMNS`], in order), before it is
/// turned into a [`ClaimedDelivery`].
pub struct CandidateRow {
    pub id: String,
    pub tenant_id: String,
    pub event_id: String,
    pub endpoint_id: Option<String>,
    pub dispatch_key: String,
    pub url: String,
    pub direct_secret: Option<String>,
    pub direct_headers: Option<String>,
    pub direct_policy: Option<String>,
    pub direct_timeout_ms: Option<i64>,
    pub endpoint_found: Option<String>,
    pub secret: Option<String>,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<i64>,
    pub endpoint_headers: Option<String>,
    pub endpoint_policy: Option<String>,
    pub endpoint_timeout_ms: Option<i64>,
    pub max_in_flight: Option<i64>,
    pub rate_limit_per_s: Option<i64>,
    pub disabled: Option<bool>,
    pub attempt_count: i64,
    pub count_4xx: i64,
    pub cycle_base: i64,
    pub cycle_started_ms: i64,
    pub correlation_id: String,
    pub kind: String,
    pub event_type: String,
    pub payload: String,
    pub event_created_ms: i64,
    pub auth: Option<String>,
    pub traceparent: Option<String>,
}

/// What a claim does with the rows it read.
#[derive(Default)]
pub struct Selection {
    /// Lease these (each with its lease expiry).
    pub leased: Vec<(ClaimedDelivery, i64)>,
    /// Cancel these: their endpoint was deleted.
    pub endpoint_deleted: Vec<String>,
    /// Park these: their endpoint is disabled.
    pub endpoint_disabled: Vec<String>,
    /// Fail these with the reason: their stored settings cannot be read, so they can never be sent as
    /// they are. They go to the dead-letter set (an operator can retry them once the cause is fixed)
    /// instead of failing every claim.
    pub quarantined: Vec<(String, String)>,
}

fn json_or_default<T: serde::de::DeserializeOwned + Default>(text: Option<&str>) -> StoreResult<T> {
    match text {
        Some(t) => Ok(serde_json::from_str(t)?),
        None => Ok(T::default()),
    }
}

pub(crate) fn to_u32(v: i64) -> u32 {
    v.clamp(0, i64::from(u32::MAX)) as u32
}

impl CandidateRow {
    fn into_claimed(self, now_ms: i64, default_max_in_flight: u32) -> StoreResult<ClaimedDelivery> {
        let from_endpoint = self.endpoint_found.is_some();
        let mut secrets = Vec::new();
        let (headers, policy, timeout): (BTreeMap<String, String>, RetryPolicy, Option<i64>) =
            if from_endpoint {
                secrets.extend(self.secret);
                if let (Some(previous), Some(until)) =
                    (self.previous_secret, self.previous_secret_until)
                {
                    if until > now_ms {
                        secrets.push(previous);
                    }
                }
                (
                    json_or_default(self.endpoint_headers.as_deref())?,
                    json_or_default(self.endpoint_policy.as_deref())?,
                    self.endpoint_timeout_ms,
                )
            } else {
                secrets.extend(self.direct_secret);
                (
                    json_or_default(self.direct_headers.as_deref())?,
                    json_or_default(self.direct_policy.as_deref())?,
                    self.direct_timeout_ms,
                )
            };
        let body = if self.kind == EventKind::Direct.as_str() {
            self.payload
        } else {
            event_envelope(
                &self.event_id,
                &self.event_type,
                self.event_created_ms,
                &self.payload,
            )
        };
        Ok(ClaimedDelivery {
            id: self.id,
            tenant_id: self.tenant_id,
            event_id: self.event_id,
            endpoint_id: self.endpoint_id,
            dispatch_key: self.dispatch_key,
            url: self.url,
            body,
            secrets,
            headers: headers.into_iter().collect(),
            retry_policy: policy,
            timeout_ms: timeout.map(to_u32).unwrap_or(15_000),
            max_in_flight: self
                .max_in_flight
                .map(to_u32)
                .unwrap_or(default_max_in_flight)
                .max(1),
            rate_limit_per_s: self.rate_limit_per_s.map(to_u32),
            attempt_count: to_u32(self.attempt_count),
            count_4xx: to_u32(self.count_4xx),
            cycle_base: to_u32(self.cycle_base),
            cycle_started_ms: self.cycle_started_ms,
            correlation_id: self.correlation_id,
            auth: self.auth,
            operational: self.kind == EventKind::Operational.as_str(),
            traceparent: self.traceparent,
        })
    }
}

/// The pacing times to store after a claim: for each paced key that was given leases, its time moved on
/// by what it was given (`read`: each paced key's time as the claim read it), sorted by key.
pub fn pacing_writes(
    leased: &[(ClaimedDelivery, i64)],
    read: &HashMap<String, Option<i64>>,
    now_ms: i64,
) -> Vec<(String, i64)> {
    let mut taken: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    for (d, _) in leased {
        if let Some(rate) = d.rate_limit_per_s {
            taken.entry(d.dispatch_key.as_str()).or_insert((rate, 0)).1 += 1;
        }
    }
    taken
        .into_iter()
        .map(|(key, (rate, n))| {
            let before = read.get(key).copied().flatten();
            (
                key.to_string(),
                herald_core::pacing::advance(rate, before, now_ms, n),
            )
        })
        .collect()
}

/// Choose, in the order read (key by key, each key's oldest first), the rows that fit their key's limit
/// (`in_flight`: unexpired leases per key, [`lease_room`]), up to the request's `limit`; rows whose
/// endpoint is gone or disabled are set aside.
pub fn select(
    rows: Vec<CandidateRow>,
    in_flight: &HashMap<String, Leases>,
    request: &crate::model::ClaimRequest,
) -> StoreResult<Selection> {
    let (limit, now_ms, lease_ms) = (request.limit, request.now_ms, request.lease_ms);
    let mut selection = Selection::default();
    let mut taken: HashMap<String, u32> = HashMap::new();
    for row in rows {
        if selection.leased.len() == limit {
            break;
        }
        if row.endpoint_id.is_some() && row.endpoint_found.is_none() {
            selection.endpoint_deleted.push(row.id);
            continue;
        }
        if row.disabled == Some(true) {
            selection.endpoint_disabled.push(row.id);
            continue;
        }
        let id = row.id.clone();
        let claimed = match row.into_claimed(now_ms, request.default_max_in_flight) {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!(delivery_id = %id, error = %e, "quarantined an unreadable delivery");
                selection
                    .quarantined
                    .push((id, format!("quarantined: unreadable stored settings ({e})")));
                continue;
            }
        };
        let leases = in_flight
            .get(&claimed.dispatch_key)
            .copied()
            .unwrap_or_default();
        let used = taken.entry(claimed.dispatch_key.clone()).or_insert(0);
        if *used
            >= lease_room(
                claimed.max_in_flight,
                leases,
                request.window_for(&claimed.dispatch_key),
            )
        {
            continue;
        }
        *used += 1;
        let lease_until = now_ms + i64::from(claimed.timeout_ms) + lease_ms;
        selection.leased.push((claimed, lease_until));
    }
    Ok(selection)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leases(all: u32, peers: u32) -> Leases {
        Leases { all, peers }
    }

    #[test]
    fn a_node_alone_may_lease_the_whole_window() {
        assert_eq!(lease_room(16, leases(0, 0), 4), 64);
        assert_eq!(lease_room(16, leases(64, 0), 4), 0);
        assert_eq!(lease_room(16, leases(5, 0), 4), 59);
        assert_eq!(lease_room(16, leases(5, 0), 1), 11);
    }

    #[test]
    fn peers_leases_shrink_the_room_by_the_window() {
        // Peers hold 4 of a limit of 16: this node may send 12 at a time and hold a window of that.
        let mine = 3;
        let room = lease_room(16, leases(4 + mine, 4), 4);
        assert_eq!(mine + room, 12 * 4);
        // Peers holding the whole limit leave nothing, however few this node holds.
        assert_eq!(lease_room(16, leases(16, 16), 4), 0);
        assert_eq!(lease_room(16, leases(40, 20), 4), 0);
    }
}

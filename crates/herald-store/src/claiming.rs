//! How a claim chooses work, shared by every store. Dispatch keys (endpoints) are the unit of scheduling:
//!
//! 1. walk the keys that have deliveries with a due time ([`sql::WALK_KEYS`](crate::sql::WALK_KEYS)), in key
//!    order from where the previous claim stopped, wrapping around ([`merge_wrapped`]);
//! 2. count each due key's unexpired leases, across every node;
//! 3. read the ids of each due key's oldest due rows, at most its [`free_slots`];
//! 4. [`share`] the claim's limit among them round robin, so a key with a huge backlog never delays the
//!    others;
//! 5. read the chosen rows ([`CandidateRow`], the same columns in every backend) and [`select`] them,
//!    setting aside rows that cannot be sent.
//!
//! A claim reads a few index entries per due key plus the rows it leases, however deep any backlog is.

use std::collections::{BTreeMap, HashMap};

use herald_core::envelope::event_envelope;
use herald_core::retry::RetryPolicy;

use crate::error::StoreResult;
use crate::model::{ClaimedDelivery, EventKind};

/// The columns every backend's candidate query selects, in [`CandidateRow`] order. Aliases: `d` deliveries,
/// `e` events, `ep` endpoints (left-joined).
pub const CANDIDATE_COLUMNS: &str = "d.id, d.tenant_id, d.event_id, d.endpoint_id, d.dispatch_key, \
    COALESCE(ep.url, d.url), d.secret, d.headers, d.retry_policy, d.timeout_ms, \
    ep.id, ep.secret, ep.previous_secret, ep.previous_secret_expires_ms, ep.headers, ep.retry_policy, \
    ep.timeout_ms, ep.max_in_flight, ep.rate_limit_per_s, ep.disabled, \
    d.attempt_count, d.count_4xx, d.cycle_base, d.cycle_started_ms, d.correlation_id, \
    e.kind, e.event_type, e.payload, e.created_ms, d.auth";

/// Most dispatch keys one claim visits. A claim that stops short says so ([`Claim::more`]) and the next one
/// goes on from there.
pub const WALK: usize = 512;

/// A dispatch key as the walk sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDue {
    /// The dispatch key (endpoint id, or `direct:<host>`).
    pub key: String,
    /// The earliest due time among its rows (a lease expiry for leased rows).
    pub min_due_ms: i64,
    /// Its endpoint's `max_in_flight`, if it is an endpoint that still exists.
    pub max_in_flight: Option<i64>,
}

/// Join a walk that started after `after_key` (`first`, asked for `WALK` keys) with the wrapped walk from
/// the first key (`second`, asked for `asked_second`), dropping keys the first part already covered.
/// Returns the keys in visiting order and whether every key was visited.
pub fn merge_wrapped(
    mut first: Vec<KeyDue>,
    second: Option<(Vec<KeyDue>, usize)>,
    after_key: &str,
) -> (Vec<KeyDue>, bool) {
    match second {
        None => {
            let complete = first.len() < WALK && after_key.is_empty();
            (first, complete)
        }
        Some((second, asked)) => {
            let reached_end = second.len() < asked;
            let mut complete = reached_end;
            for k in second {
                if k.key.as_str() > after_key {
                    complete = true;
                    break;
                }
                first.push(k);
            }
            (first, complete)
        }
    }
}

/// Whether a walk that started after `after_key` and returned `got` keys must wrap around, and for how many.
pub fn wrap_needed(got: usize, after_key: &str) -> Option<usize> {
    (got < WALK && !after_key.is_empty()).then(|| WALK - got)
}

/// A key's `max_in_flight`: its endpoint's, or `default_max_in_flight` for direct keys; at least 1.
pub fn key_limit(key: &KeyDue, default_max_in_flight: u32) -> u32 {
    key.max_in_flight
        .map(to_u32)
        .unwrap_or(default_max_in_flight)
        .max(1)
}

/// The due keys of a walk (`walked`, in visiting order) that have free slots, each with how many: its
/// `max_in_flight` (or `default_max_in_flight`) minus its unexpired leases (`in_flight`), at most `limit`.
pub fn free_slots(
    walked: &[KeyDue],
    in_flight: &HashMap<String, u32>,
    limit: usize,
    now_ms: i64,
    default_max_in_flight: u32,
) -> Vec<(String, usize)> {
    walked
        .iter()
        .filter(|k| k.min_due_ms <= now_ms)
        .filter_map(|k| {
            let max = key_limit(k, default_max_in_flight);
            let used = in_flight.get(&k.key).copied().unwrap_or(0);
            let free = (max.saturating_sub(used) as usize).min(limit);
            (free > 0).then(|| (k.key.clone(), free))
        })
        .collect()
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

/// Share `limit` slots among the keys' offered rows (`offers`: per key in visiting order, its due row ids
/// oldest first, at most its free slots). When the rows do not all fit, keys take one row per round, so a
/// key with a deep backlog takes no more than a key with one due row; the next claim resumes after the last
/// key served. `walked_last` is the last key the walk visited and `complete` whether it visited every key.
pub fn share(
    offers: Vec<(String, Vec<String>)>,
    limit: usize,
    walked_last: Option<&str>,
    complete: bool,
    after_key: &str,
) -> Plan {
    let mut plan = Plan {
        next_key: after_key.to_string(),
        more: !complete,
        ..Plan::default()
    };
    if !complete {
        if let Some(last) = walked_last {
            plan.next_key = last.to_string();
        }
    }
    let offered: usize = offers.iter().map(|(_, ids)| ids.len()).sum();
    if offered <= limit {
        plan.picked = offers.into_iter().flat_map(|(_, ids)| ids).collect();
        return plan;
    }
    let mut given = vec![0usize; offers.len()];
    let (mut left, mut last) = (limit, None);
    while left > 0 {
        for (i, (_, ids)) in offers.iter().enumerate() {
            if left > 0 && given[i] < ids.len() {
                given[i] += 1;
                left -= 1;
                last = Some(i);
            }
        }
    }
    if let Some(i) = last {
        plan.next_key = offers[i].0.clone();
    }
    plan.more = true;
    plan.picked = offers
        .into_iter()
        .zip(given)
        .flat_map(|((_, ids), n)| ids.into_iter().take(n))
        .collect();
    plan
}

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

fn to_u32(v: i64) -> u32 {
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
        })
    }
}

/// Choose, oldest due first, the rows that fit their key's limit (`in_flight`: unexpired leases per key),
/// up to `limit`; rows whose endpoint is gone or disabled are set aside.
pub fn select(
    rows: Vec<CandidateRow>,
    in_flight: &HashMap<String, u32>,
    limit: usize,
    now_ms: i64,
    lease_ms: i64,
    default_max_in_flight: u32,
) -> StoreResult<Selection> {
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
        let claimed = match row.into_claimed(now_ms, default_max_in_flight) {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!(delivery_id = %id, error = %e, "quarantined an unreadable delivery");
                selection
                    .quarantined
                    .push((id, format!("quarantined: unreadable stored settings ({e})")));
                continue;
            }
        };
        let out = in_flight.get(&claimed.dispatch_key).copied().unwrap_or(0);
        let used = taken.entry(claimed.dispatch_key.clone()).or_insert(0);
        if out + *used >= claimed.max_in_flight {
            continue;
        }
        *used += 1;
        let lease_until = now_ms + i64::from(claimed.timeout_ms) + lease_ms;
        selection.leased.push((claimed, lease_until));
    }
    Ok(selection)
}

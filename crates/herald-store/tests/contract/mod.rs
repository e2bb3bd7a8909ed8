//! The `Store` contract: behaviour every implementation must show, written once against `Arc<dyn Store>`.
//!
//! A backend's test file declares `mod contract;`, writes an async factory returning a fresh, empty store and
//! calls `contract::contract_tests!(factory)`, which expands to one `#[tokio::test]` per body below.
//!
//! Every body passes explicit times (around [`BASE`]) so nothing depends on the wall clock or sleeps.

pub mod attempts;
pub mod breakers;
pub mod claims;
pub mod deliveries;
pub mod endpoint_lifecycle;
pub mod endpoints;
pub mod guarded;
pub mod history;
pub mod jobs;
pub mod operator;
pub mod publish;
pub mod scheduling;
pub mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;

use herald_core::breaker::{classify, HealthPolicy};
use herald_core::ids::encode_id;
use herald_core::retry::RetryPolicy;
use herald_core::signing::Secret;
use herald_store::error::StoreResult;
use herald_store::{
    AttemptRecord, AttemptResult, ClaimRequest, ClaimedDelivery, EndpointRecord, HealthReport,
    NewDirectDelivery, NewEvent, NextState, Store, StoreError, DEFAULT_TENANT,
};
use herald_store::{DeliveryFilter, Page};

/// A fixed "now" all bodies count from.
pub const BASE: i64 = 1_700_000_000_000;
/// Lease length passed to `claim_due` (beyond the delivery's own timeout).
pub const LEASE_MS: i64 = 30_000;
/// `timeout_ms` of every endpoint made by [`endpoint`].
pub const TIMEOUT_MS: u32 = 5_000;
/// How long a claim made at `t` holds: it expires at `t + LEASE_SPAN`.
pub const LEASE_SPAN: i64 = TIMEOUT_MS as i64 + LEASE_MS;

/// A store under test.
pub type Shared = Arc<dyn Store>;

/// Expands one multi-threaded tokio test per contract body; `$factory` is an async fn returning a fresh,
/// empty `Arc<dyn Store>` and a guard dropped when the test ends (e.g. one that drops a test database), or
/// `None` when the backend is not available outside CI (the factory says so on stderr).
macro_rules! contract_tests {
    ($factory:path) => {
        $crate::contract::contract_tests!(@each $factory;
            endpoints::tenants,
            endpoints::endpoint_crud_and_isolation,
            endpoints::endpoint_listing,
            endpoints::tenant_tokens,
            publish::publish_fan_out,
            publish::idempotency,
            publish::direct_and_event_bodies,
            publish::traces_ride_with_events,
            claims::claims_are_exclusive,
            claims::per_key_limits,
            claims::peer_leases_shrink_a_nodes_share,
            claims::narrow_keys_get_no_lease_window,
            claims::leases_ahead_stop_at_most_ahead,
            claims::keys_lease_ahead_only_with_idle_slots,
            scheduling::claims_interleave_keys,
            scheduling::the_walk_resumes_where_it_stopped,
            scheduling::record_and_claim_refills_freed_slots,
            scheduling::paced_keys_are_claimed_at_their_rate,
            scheduling::hinted_keys_are_visited_beyond_the_walk,
            attempts::record_attempts,
            stats::results_are_tallied_per_endpoint_and_minute,
            stats::outstanding_counts_are_capped_and_name_the_oldest,
            breakers::a_run_of_failures_opens_the_breaker_and_stops_claims,
            breakers::a_half_open_breaker_sends_one_probe,
            breakers::results_written_twice_count_once,
            breakers::dead_letters_and_a_degraded_endpoint_are_announced,
            breakers::an_endpoint_failing_too_long_is_disabled_until_enabled,
            attempts::lost_lease_keeps_attempt_history,
            operator::operator_actions,
            deliveries::list_deliveries_filters,
            deliveries::cursor_pagination_under_inserts,
            claims::release_leases,
            attempts::purge_next_due_and_stats,
            endpoint_lifecycle::replay_endpoint,
            endpoint_lifecycle::recover_endpoint_retries_failed_deliveries,
            endpoint_lifecycle::delete_endpoint_cancels_deliveries,
            endpoint_lifecycle::disabled_endpoint_parks_deliveries,
            jobs::routes_crud,
            jobs::job_creation_and_progress,
            jobs::completion_and_the_long_poll_rule,
            jobs::overdue_jobs,
            jobs::list_jobs_filters_and_pages,
            jobs::purge_finished_jobs,
            guarded::cancel_never_overwrites_a_recorded_result,
            guarded::secrets_change_only_through_set_endpoint_secret,
            guarded::a_failed_claims_leases_are_given_back_by_owner,
        );
    };
    (@each $factory:path; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some((store, _guard)) = $factory().await else { return };
                let store: ::std::sync::Arc<dyn ::herald_store::Store> = store;
                $crate::contract::$module::$name(store).await;
            }
        )*
    };
}
pub(crate) use contract_tests;

/// A valid `whsec_` secret made of 32 copies of `byte`.
pub fn secret(byte: u8) -> String {
    Secret::from_bytes(&[byte; 32])
        .expect("32 bytes is a valid secret length")
        .to_whsec()
}

/// A well-formed endpoint id; `n` orders them (`endpoint_id(1) < endpoint_id(2)`).
pub fn endpoint_id(n: u64) -> String {
    encode_id("ep", BASE as u64, u128::from(n))
}

/// An enabled endpoint record with the given filters, created at [`BASE`].
pub fn endpoint(tenant: &str, n: u64, event_types: &[&str]) -> EndpointRecord {
    EndpointRecord {
        id: endpoint_id(n),
        tenant_id: tenant.to_string(),
        url: format!("https://hooks{n}.example.com/in"),
        event_types: event_types.iter().map(|s| s.to_string()).collect(),
        secret: secret(n as u8),
        previous_secret: None,
        previous_secret_expires_ms: None,
        headers: BTreeMap::from([("x-endpoint".to_string(), n.to_string())]),
        retry_policy: RetryPolicy::default(),
        timeout_ms: TIMEOUT_MS,
        rate_limit_per_s: None,
        max_in_flight: 100,
        disabled: false,
        description: Some(format!("endpoint {n}")),
        metadata: serde_json::json!({ "n": n }),
        created_ms: BASE,
        updated_ms: BASE,
    }
}

/// Create [`endpoint`]`(tenant, n, event_types)` and return it.
pub async fn add_endpoint(
    store: &Shared,
    tenant: &str,
    n: u64,
    event_types: &[&str],
) -> EndpointRecord {
    let ep = endpoint(tenant, n, event_types);
    store.create_endpoint(&ep).await.expect("create endpoint");
    ep
}

/// A publish request without an idempotency key.
pub fn new_event(tenant: &str, event_type: &str, payload: &str, now_ms: i64) -> NewEvent {
    NewEvent {
        tenant_id: tenant.to_string(),
        event_type: event_type.to_string(),
        payload: payload.to_string(),
        idempotency_key: None,
        correlation_id: format!("corr-{now_ms}"),
        traceparent: None,
        now_ms,
    }
}

/// Publish an event to the default tenant and return its id and delivery ids.
pub async fn publish(store: &Shared, event_type: &str, now_ms: i64) -> (String, Vec<String>) {
    let published = store
        .publish(new_event(DEFAULT_TENANT, event_type, r#"{"k":1}"#, now_ms))
        .await
        .expect("publish");
    let ids = published.deliveries.into_iter().map(|d| d.id).collect();
    (published.event.id, ids)
}

/// Publish an event to the default tenant and return the id of its delivery to `endpoint_id`.
pub async fn publish_to(
    store: &Shared,
    event_type: &str,
    now_ms: i64,
    endpoint_id: &str,
) -> String {
    let published = store
        .publish(new_event(DEFAULT_TENANT, event_type, r#"{"k":2}"#, now_ms))
        .await
        .expect("publish");
    published
        .deliveries
        .into_iter()
        .find(|d| d.endpoint_id.as_deref() == Some(endpoint_id))
        .map(|d| d.id)
        .expect("a delivery to the endpoint")
}

/// A direct delivery request to `url`.
pub fn new_direct(tenant: &str, url: &str, payload: &str, now_ms: i64) -> NewDirectDelivery {
    NewDirectDelivery {
        tenant_id: tenant.to_string(),
        url: url.to_string(),
        payload: payload.to_string(),
        headers: BTreeMap::from([("x-direct".to_string(), "yes".to_string())]),
        secret: Some(secret(99)),
        retry_policy: RetryPolicy::default(),
        timeout_ms: TIMEOUT_MS,
        reference_id: Some(format!("ref-{now_ms}")),
        correlation_id: format!("dcorr-{now_ms}"),
        traceparent: None,
        auth: None,
        message_id: None,
        now_ms,
    }
}

/// A claim that starts the round robin at the first key.
/// The lease window of [`claim_request`]'s claims.
pub const WINDOW: u32 = 2;

pub fn claim_request(owner: &str, now_ms: i64, limit: usize) -> ClaimRequest {
    ClaimRequest {
        owner: owner.to_string(),
        node: owner.to_string(),
        now_ms,
        lease_ms: LEASE_MS,
        limit,
        after_key: String::new(),
        default_max_in_flight: 1_000,
        lease_window: WINDOW,
        most_ahead: usize::MAX,
        narrow_keys: Default::default(),
        hinted_keys: Vec::new(),
    }
}

/// The deliveries `request` claims.
pub async fn claimed(store: &Shared, request: &ClaimRequest) -> Vec<ClaimedDelivery> {
    store
        .claim_due(request)
        .await
        .expect("claim_due")
        .deliveries
}

/// Claim everything due at `now_ms` for `owner`.
pub async fn claim(store: &Shared, owner: &str, now_ms: i64) -> Vec<ClaimedDelivery> {
    store
        .claim_due(&claim_request(owner, now_ms, 10_000))
        .await
        .expect("claim_due")
        .deliveries
}

/// The ids of some claimed deliveries.
pub fn claimed_ids(claimed: &[ClaimedDelivery]) -> BTreeSet<String> {
    claimed.iter().map(|c| c.id.clone()).collect()
}

/// An attempt result with a response code (or a `timeout` error when `status_code` is `None`).
pub fn attempt_result(
    delivery_id: &str,
    owner: &str,
    number: u32,
    status_code: Option<u16>,
    next: NextState,
    now_ms: i64,
) -> AttemptResult {
    AttemptResult {
        delivery_id: delivery_id.to_string(),
        owner: owner.to_string(),
        attempt: AttemptRecord {
            number,
            started_ms: now_ms - 40,
            duration_ms: 40,
            status_code,
            error: if status_code.is_none() {
                Some("timeout".to_string())
            } else {
                None
            },
            response_body: status_code.map(|c| format!("answer {c}")),
        },
        was_4xx: matches!(status_code, Some(400..=499)),
        next,
        now_ms,
        health: None,
    }
}

/// [`attempt_result`] for a delivery `owner` claimed, counted towards its endpoint's breaker under `policy`.
pub fn counted_result(
    delivery: &ClaimedDelivery,
    owner: &str,
    status_code: Option<u16>,
    next: NextState,
    now_ms: i64,
    policy: HealthPolicy,
) -> AttemptResult {
    AttemptResult {
        health: Some(HealthReport {
            endpoint_id: delivery.dispatch_key.clone(),
            signal: classify(status_code),
            policy,
        }),
        ..attempt_result(
            &delivery.id,
            owner,
            delivery.attempt_count + 1,
            status_code,
            next,
            now_ms,
        )
    }
}

/// Record one attempt.
pub async fn record(store: &Shared, result: AttemptResult) {
    store
        .record_attempts(vec![result])
        .await
        .expect("record_attempts");
}

/// Assert that `result` is `StoreError::NotFound`.
#[track_caller]
pub fn assert_not_found<T: Debug>(result: StoreResult<T>) {
    match result {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// Assert that `result` is `StoreError::Conflict`.
#[track_caller]
pub fn assert_conflict<T: Debug>(result: StoreResult<T>) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
}

/// Ids of the tenant's deliveries matching `filter`, in listing order; checks `count_deliveries` agrees.
pub async fn ids_matching(store: &Shared, tenant: &str, filter: DeliveryFilter) -> Vec<String> {
    let listing = store
        .list_deliveries(tenant, &filter, &Page::first(1_000))
        .await
        .unwrap();
    assert_eq!(listing.next_after, None);
    let count = store.count_deliveries(tenant, &filter).await.unwrap();
    assert_eq!(
        count as usize,
        listing.items.len(),
        "count agrees with the listing for {filter:?}"
    );
    listing.items.into_iter().map(|d| d.id).collect()
}

/// A filter on one endpoint.
pub fn by_endpoint(endpoint: &str) -> DeliveryFilter {
    DeliveryFilter {
        endpoint_id: Some(endpoint.to_string()),
        ..Default::default()
    }
}

//! The [`Store`] trait: the one interface between Herald and its database.

use async_trait::async_trait;

use crate::error::StoreResult;
use crate::jobs_model::*;
use crate::model::*;
use crate::query::*;

/// What [`Store::watch_for_work`] calls: with the dispatch keys another node just gave work, when the
/// notification names them (it may name none).
pub type WorkWake = std::sync::Arc<dyn Fn(&[&str]) + Send + Sync>;

/// Durable storage for Herald. Every method that writes resolves only after its data is committed.
///
/// All reads and writes are scoped to a tenant: a record of another tenant is reported as not found.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short name for logs and `/health` (`sqlite`, `postgres`).
    fn kind(&self) -> &'static str;

    /// Cheap round trip proving the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Call `wake` whenever another node commits work that may be due now (new events, operator
    /// retries), with the dispatch keys it gave work when it says (a publish; none otherwise). Stores
    /// that only one process can use need nothing beyond the node's own wake-ups: the default does
    /// nothing.
    fn watch_for_work(&self, wake: WorkWake) {
        let _ = wake;
    }

    /// Call `changed(job_id)` whenever another node changes a job (for long polls held on this node).
    /// Single-process stores need nothing: the default does nothing.
    fn watch_jobs(&self, changed: std::sync::Arc<dyn Fn(&str) + Send + Sync>) {
        let _ = changed;
    }

    // ---- tenants ----

    /// Create a tenant with a first API token (named `initial`) that hashes to `token_sha256` (hex).
    async fn create_tenant(
        &self,
        id: &str,
        token_sha256: &str,
        now_ms: i64,
    ) -> StoreResult<TenantRecord>;
    /// The tenant whose unrevoked token hashes to `token_sha256`.
    async fn tenant_by_token(&self, token_sha256: &str) -> StoreResult<Option<TenantRecord>>;
    /// One tenant.
    async fn get_tenant(&self, id: &str) -> StoreResult<TenantRecord>;
    /// All tenants, oldest first.
    async fn list_tenants(&self) -> StoreResult<Vec<TenantRecord>>;
    /// Add a token to an existing tenant (`NotFound` otherwise).
    async fn create_token(&self, token: &TokenRecord) -> StoreResult<()>;
    /// A tenant's tokens, revoked ones included, oldest first.
    async fn list_tokens(&self, tenant_id: &str) -> StoreResult<Vec<TokenRecord>>;
    /// Revoke a token; revoking a revoked token changes nothing. Returns the token.
    async fn revoke_token(
        &self,
        tenant_id: &str,
        id: &str,
        now_ms: i64,
    ) -> StoreResult<TokenRecord>;
    /// Revoke an unrevoked token and add `replacement`, in one commit (`Conflict` if already revoked).
    async fn rotate_token(
        &self,
        tenant_id: &str,
        id: &str,
        replacement: &TokenRecord,
        now_ms: i64,
    ) -> StoreResult<TokenRecord>;

    // ---- endpoints ----

    /// Insert a new endpoint.
    async fn create_endpoint(&self, endpoint: &EndpointRecord) -> StoreResult<()>;
    /// One endpoint.
    async fn get_endpoint(&self, tenant_id: &str, id: &str) -> StoreResult<EndpointRecord>;
    /// Endpoints oldest first.
    async fn list_endpoints(
        &self,
        tenant_id: &str,
        filter: &EndpointFilter,
        page: &Page,
    ) -> StoreResult<Listing<EndpointRecord>>;
    /// Replace an endpoint's mutable fields (matched by tenant and id), its secrets excepted: a rotation
    /// committed since `endpoint` was read is kept.
    async fn update_endpoint(&self, endpoint: &EndpointRecord) -> StoreResult<()>;
    /// Set an endpoint's signing secret. With `previous_until`, rotate: the current secret becomes the
    /// previous one, still signing until then, in the same statement. Returns the endpoint as it now stands.
    async fn set_endpoint_secret(
        &self,
        tenant_id: &str,
        id: &str,
        secret: &str,
        previous_until: Option<i64>,
        now_ms: i64,
    ) -> StoreResult<EndpointRecord>;
    /// Delete an endpoint and cancel its unfinished deliveries.
    async fn delete_endpoint(&self, tenant_id: &str, id: &str, now_ms: i64) -> StoreResult<()>;
    /// Create new deliveries to one endpoint for the matching events published since `since_ms`; returns how many.
    async fn replay_endpoint(
        &self,
        tenant_id: &str,
        id: &str,
        since_ms: i64,
        now_ms: i64,
    ) -> StoreResult<u64>;

    /// Retry the endpoint's failed deliveries (the dead-letter set) created since `since_ms`, at most
    /// 100,000: each is due at `now_ms` with a fresh retry cycle. Returns how many. `NotFound` for an
    /// endpoint of another tenant.
    async fn recover_endpoint(
        &self,
        tenant_id: &str,
        id: &str,
        since_ms: i64,
        now_ms: i64,
    ) -> StoreResult<u64>;

    // ---- events ----

    /// Store an event and fan it out to every matching enabled endpoint, in one commit. With an idempotency key
    /// seen in the last 24 h, returns the earlier answer and creates nothing.
    async fn publish(&self, event: NewEvent) -> StoreResult<Published>;
    /// One event.
    async fn get_event(&self, tenant_id: &str, id: &str) -> StoreResult<EventRecord>;

    // ---- deliveries ----

    /// Store a one-off delivery to a URL.
    async fn create_direct_delivery(
        &self,
        delivery: NewDirectDelivery,
    ) -> StoreResult<DeliveryRecord>;
    /// One delivery.
    async fn get_delivery(&self, tenant_id: &str, id: &str) -> StoreResult<DeliveryRecord>;
    /// A delivery's attempts, oldest first.
    async fn list_attempts(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> StoreResult<Vec<AttemptRecord>>;
    /// Deliveries newest first.
    async fn list_deliveries(
        &self,
        tenant_id: &str,
        filter: &DeliveryFilter,
        page: &Page,
    ) -> StoreResult<Listing<DeliveryRecord>>;
    /// How many deliveries match.
    async fn count_deliveries(&self, tenant_id: &str, filter: &DeliveryFilter) -> StoreResult<u64>;
    /// Operator retry: make the delivery due now with a fresh retry cycle. Conflict while it is in flight.
    async fn retry_delivery(
        &self,
        tenant_id: &str,
        id: &str,
        now_ms: i64,
    ) -> StoreResult<DeliveryRecord>;
    /// Operator cancel. Conflict if it already ended.
    async fn cancel_delivery(
        &self,
        tenant_id: &str,
        id: &str,
        now_ms: i64,
    ) -> StoreResult<DeliveryRecord>;
    /// Delete one delivery and its attempts.
    async fn delete_delivery(&self, tenant_id: &str, id: &str) -> StoreResult<()>;
    /// Delete matching deliveries that are not in flight; returns how many.
    async fn delete_deliveries(&self, tenant_id: &str, filter: &DeliveryFilter)
        -> StoreResult<u64>;

    // ---- jobs and routes ----

    /// Create or replace a route.
    async fn put_route(&self, route: &RouteRecord) -> StoreResult<()>;
    /// One route.
    async fn get_route(&self, tenant_id: &str, name: &str) -> StoreResult<RouteRecord>;
    /// A tenant's routes by name.
    async fn list_routes(&self, tenant_id: &str) -> StoreResult<Vec<RouteRecord>>;
    /// Delete a route (its jobs stay).
    async fn delete_route(&self, tenant_id: &str, name: &str) -> StoreResult<()>;
    /// Store a new job and, in the same commit, its first delivery (a worker notification).
    async fn create_job(
        &self,
        job: &JobRecord,
        first: Option<NewDirectDelivery>,
    ) -> StoreResult<()>;
    /// One job.
    async fn get_job(&self, tenant_id: &str, id: &str) -> StoreResult<JobRecord>;
    /// A tenant's jobs, newest first.
    async fn list_jobs(
        &self,
        tenant_id: &str,
        filter: &JobFilter,
        page: &Page,
    ) -> StoreResult<Listing<JobRecord>>;
    /// Set a job's progress (and status `running`) if it is unfinished and its progress is still
    /// `expected`; queue `webhook` in the same commit. Returns the job as it stands and whether it changed.
    async fn set_job_progress(
        &self,
        tenant_id: &str,
        id: &str,
        expected: Option<&str>,
        progress: &str,
        webhook: Option<NewDirectDelivery>,
        now_ms: i64,
    ) -> StoreResult<(JobRecord, bool)>;
    /// Move an unfinished job to `running` with a deadline (a proxy call started).
    async fn start_job(
        &self,
        tenant_id: &str,
        id: &str,
        deadline_ms: i64,
        now_ms: i64,
    ) -> StoreResult<JobRecord>;
    /// End an unfinished job. The webhook is queued in the same commit unless the initiating request is still
    /// long-polling (`waiter_until_ms` in the future). Conflict if the job already ended.
    async fn complete_job(&self, completion: JobCompletion) -> StoreResult<Completed>;
    /// Record (or clear) the initiating request's long poll.
    async fn set_job_waiter(
        &self,
        tenant_id: &str,
        id: &str,
        until_ms: Option<i64>,
    ) -> StoreResult<()>;
    /// Unfinished jobs whose deadline passed (their proxy call was interrupted), across tenants.
    async fn overdue_jobs(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<JobRecord>>;
    /// Delete at most `batch` finished jobs last changed before `finished_before_ms`; returns them (so their
    /// offloaded results can be deleted too).
    async fn purge_jobs(
        &self,
        finished_before_ms: i64,
        batch: usize,
    ) -> StoreResult<Vec<JobRecord>>;

    // ---- the delivery engine ----

    /// Lease due deliveries to `request.owner`: dispatch keys in round robin from `request.after_key`, each
    /// up to its free slots (`max_in_flight` minus unexpired leases on every node), each key's rows oldest
    /// due first.
    async fn claim_due(&self, request: &ClaimRequest) -> StoreResult<Claim>;
    /// Record attempts and move their deliveries on, in one commit. The results that moved a delivery on and
    /// carry a [`HealthReport`] are folded into their endpoints' circuit breakers in the same commit; a
    /// breaker that opens or closes publishes `endpoint.failing` or `endpoint.recovered` (an operational
    /// event) into the endpoint's tenant, also in that commit.
    async fn record_attempts(&self, results: Vec<AttemptResult>) -> StoreResult<()>;
    /// [`record_attempts`](Store::record_attempts), then [`claim_due`](Store::claim_due), in one commit: the
    /// slots the recorded attempts free are refilled without a round trip of their own.
    ///
    /// The claim is handed to `claimed` as soon as its leases are written, before the commit, so its
    /// attempts can start while the commit is made durable; the call returns once it is. If the call fails,
    /// neither the results nor the leases may have been kept: the caller records the results again and gives
    /// back the claim's owner id ([`release_owner`](Store::release_owner)). Attempts started meanwhile may
    /// be repeated, which at-least-once delivery allows. With no results it is a claim whose attempts may
    /// start before its commit.
    async fn record_and_claim(
        &self,
        results: Vec<AttemptResult>,
        request: &ClaimRequest,
        claimed: tokio::sync::oneshot::Sender<Claim>,
    ) -> StoreResult<()>;
    /// Give back every lease held by exactly `owner`, due at `now_ms`; returns how many. A node calls this
    /// with the owner id of a claim whose answer it never got: that claim may have committed.
    async fn release_owner(&self, owner: &str, now_ms: i64) -> StoreResult<u64>;
    /// Give back leased deliveries that were never attempted (shutdown), due at `now_ms`.
    async fn release_leases(&self, owner: &str, ids: &[String], now_ms: i64) -> StoreResult<()>;
    /// The earliest time any delivery becomes claimable: a pending or retrying one falls due, or a lease expires.
    async fn next_due_ms(&self) -> StoreResult<Option<i64>>;
    /// Delete at most `batch` finished deliveries older than their retention; returns how many.
    async fn purge_finished(
        &self,
        failed_before_ms: i64,
        others_before_ms: i64,
        batch: usize,
    ) -> StoreResult<u64>;
    /// Queue counts at `now_ms`, across tenants.
    async fn stats(&self, now_ms: i64) -> StoreResult<StoreStats>;
    /// When the oldest delivery that is due at `now_ms` and not leased fell due, across tenants.
    async fn oldest_due_ms(&self, now_ms: i64) -> StoreResult<Option<i64>>;
    /// How many jobs there are of each status, across tenants.
    async fn count_jobs(&self) -> StoreResult<Vec<(String, u64)>>;

    /// Tenant's attempt statistics per minute in `[since_ms, until_ms)`, of one endpoint or of all its
    /// endpoints together, ascending; minutes without attempts are left out.
    async fn attempt_minutes(
        &self,
        tenant_id: &str,
        endpoint_id: Option<&str>,
        since_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Vec<(i64, herald_core::stats::Tally)>>;
    /// Tenant's deliveries not yet done (and its dead letters), each status counted up to `cap`, and the
    /// oldest one waiting.
    async fn outstanding(&self, tenant_id: &str, cap: u64) -> StoreResult<crate::Outstanding>;

    // ---- endpoint health ----

    /// The stored circuit breakers of a tenant's endpoints among `ids`; an endpoint left out has a closed
    /// breaker and no failure since its last success.
    async fn endpoint_circuits(
        &self,
        tenant_id: &str,
        ids: &[String],
    ) -> StoreResult<Vec<EndpointCircuit>>;
    /// How many breakers are open and half-open at `now_ms`, across tenants.
    async fn circuit_counts(&self, now_ms: i64) -> StoreResult<CircuitCounts>;
}

//! [`Store`] for [`SqliteStore`]: reads go to the reader pool, writes to the group-commit writer.

use async_trait::async_trait;

use super::{claims, deliveries, endpoints, jobs, publish, stats, tenants, SqliteStore};
use crate::error::StoreResult;
use crate::jobs_model::*;
use crate::model::*;
use crate::query::*;
use crate::Store;

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    async fn create_tenant(
        &self,
        id: &str,
        token_sha256: &str,
        now_ms: i64,
    ) -> StoreResult<TenantRecord> {
        let (id, token) = (id.to_string(), token_sha256.to_string());
        self.writer
            .write_atomic(move |ctx| tenants::create_tenant(&ctx.conn, &id, &token, now_ms))
            .await
    }

    async fn tenant_by_token(&self, token_sha256: &str) -> StoreResult<Option<TenantRecord>> {
        let token = token_sha256.to_string();
        self.read(move |conn| tenants::tenant_by_token(conn, &token))
            .await
    }

    async fn get_tenant(&self, id: &str) -> StoreResult<TenantRecord> {
        let id = id.to_string();
        self.read(move |conn| tenants::get_tenant(conn, &id)).await
    }

    async fn list_tenants(&self) -> StoreResult<Vec<TenantRecord>> {
        self.read(tenants::list_tenants).await
    }

    async fn create_token(&self, token: &TokenRecord) -> StoreResult<()> {
        let token = token.clone();
        self.writer
            .write_atomic(move |ctx| tenants::insert_token(&ctx.conn, &token))
            .await
    }

    async fn list_tokens(&self, tenant_id: &str) -> StoreResult<Vec<TokenRecord>> {
        let tenant_id = tenant_id.to_string();
        self.read(move |conn| tenants::list_tokens(conn, &tenant_id))
            .await
    }

    async fn revoke_token(
        &self,
        tenant_id: &str,
        id: &str,
        now_ms: i64,
    ) -> StoreResult<TokenRecord> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.writer
            .write_atomic(move |ctx| tenants::revoke_token(&ctx.conn, &tenant_id, &id, now_ms))
            .await
    }

    async fn rotate_token(
        &self,
        tenant_id: &str,
        id: &str,
        replacement: &TokenRecord,
        now_ms: i64,
    ) -> StoreResult<TokenRecord> {
        let (tenant_id, id, replacement) =
            (tenant_id.to_string(), id.to_string(), replacement.clone());
        self.writer
            .write_atomic(move |ctx| {
                tenants::rotate_token(&ctx.conn, &tenant_id, &id, &replacement, now_ms)
            })
            .await
    }

    async fn create_endpoint(&self, endpoint: &EndpointRecord) -> StoreResult<()> {
        let endpoint = endpoint.clone();
        self.writer
            .write(move |ctx| endpoints::create_endpoint(&ctx.conn, &endpoint))
            .await
    }

    async fn get_endpoint(&self, tenant_id: &str, id: &str) -> StoreResult<EndpointRecord> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.read(move |conn| endpoints::get_endpoint(conn, &tenant_id, &id))
            .await
    }

    async fn list_endpoints(
        &self,
        tenant_id: &str,
        filter: &EndpointFilter,
        page: &Page,
    ) -> StoreResult<Listing<EndpointRecord>> {
        let (tenant_id, filter, page) = (tenant_id.to_string(), filter.clone(), page.clone());
        self.read(move |conn| endpoints::list_endpoints(conn, &tenant_id, &filter, &page))
            .await
    }

    async fn update_endpoint(&self, endpoint: &EndpointRecord) -> StoreResult<()> {
        let endpoint = endpoint.clone();
        self.writer
            .write_atomic(move |ctx| endpoints::update_endpoint(&ctx.conn, &endpoint))
            .await
    }

    async fn set_endpoint_secret(
        &self,
        tenant_id: &str,
        id: &str,
        secret: &str,
        previous_until: Option<i64>,
        now_ms: i64,
    ) -> StoreResult<EndpointRecord> {
        let (tenant_id, id, secret) = (tenant_id.to_string(), id.to_string(), secret.to_string());
        self.writer
            .write_atomic(move |ctx| {
                endpoints::set_endpoint_secret(
                    &ctx.conn,
                    &tenant_id,
                    &id,
                    &secret,
                    previous_until,
                    now_ms,
                )
            })
            .await
    }

    async fn delete_endpoint(&self, tenant_id: &str, id: &str, now_ms: i64) -> StoreResult<()> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.writer
            .write_atomic(move |ctx| endpoints::delete_endpoint(&ctx.conn, &tenant_id, &id, now_ms))
            .await
    }

    async fn recover_endpoint(
        &self,
        tenant_id: &str,
        id: &str,
        since_ms: i64,
        now_ms: i64,
    ) -> StoreResult<u64> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.writer
            .write(move |ctx| {
                endpoints::recover_endpoint(&ctx.conn, &tenant_id, &id, since_ms, now_ms)
            })
            .await
    }

    async fn replay_endpoint(
        &self,
        tenant_id: &str,
        id: &str,
        since_ms: i64,
        now_ms: i64,
    ) -> StoreResult<u64> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.writer
            .write_atomic(move |ctx| {
                publish::replay_endpoint(ctx, &tenant_id, &id, since_ms, now_ms)
            })
            .await
    }

    async fn publish(&self, event: NewEvent) -> StoreResult<Published> {
        self.writer
            .write(move |ctx| publish::publish(ctx, event))
            .await
    }

    async fn get_event(&self, tenant_id: &str, id: &str) -> StoreResult<EventRecord> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.read(move |conn| deliveries::get_event(conn, &tenant_id, &id))
            .await
    }

    async fn create_direct_delivery(
        &self,
        delivery: NewDirectDelivery,
    ) -> StoreResult<DeliveryRecord> {
        self.writer
            .write_atomic(move |ctx| publish::create_direct(ctx, delivery))
            .await
    }

    async fn get_delivery(&self, tenant_id: &str, id: &str) -> StoreResult<DeliveryRecord> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.read(move |conn| deliveries::get_delivery(conn, &tenant_id, &id))
            .await
    }

    async fn list_attempts(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> StoreResult<Vec<AttemptRecord>> {
        let (tenant_id, id) = (tenant_id.to_string(), delivery_id.to_string());
        self.read(move |conn| deliveries::list_attempts(conn, &tenant_id, &id))
            .await
    }

    async fn list_deliveries(
        &self,
        tenant_id: &str,
        filter: &DeliveryFilter,
        page: &Page,
    ) -> StoreResult<Listing<DeliveryRecord>> {
        let (tenant_id, filter, page) = (tenant_id.to_string(), filter.clone(), page.clone());
        self.read(move |conn| deliveries::list_deliveries(conn, &tenant_id, &filter, &page))
            .await
    }

    async fn count_deliveries(&self, tenant_id: &str, filter: &DeliveryFilter) -> StoreResult<u64> {
        let (tenant_id, filter) = (tenant_id.to_string(), filter.clone());
        self.read(move |conn| deliveries::count_deliveries(conn, &tenant_id, &filter))
            .await
    }

    async fn retry_delivery(
        &self,
        tenant_id: &str,
        id: &str,
        now_ms: i64,
    ) -> StoreResult<DeliveryRecord> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.writer
            .write(move |ctx| deliveries::retry_delivery(&ctx.conn, &tenant_id, &id, now_ms))
            .await
    }

    async fn cancel_delivery(
        &self,
        tenant_id: &str,
        id: &str,
        now_ms: i64,
    ) -> StoreResult<DeliveryRecord> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.writer
            .write(move |ctx| deliveries::cancel_delivery(&ctx.conn, &tenant_id, &id, now_ms))
            .await
    }

    async fn delete_delivery(&self, tenant_id: &str, id: &str) -> StoreResult<()> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.writer
            .write_atomic(move |ctx| deliveries::delete_delivery(&ctx.conn, &tenant_id, &id))
            .await
    }

    async fn delete_deliveries(
        &self,
        tenant_id: &str,
        filter: &DeliveryFilter,
    ) -> StoreResult<u64> {
        let (tenant_id, filter) = (tenant_id.to_string(), filter.clone());
        self.writer
            .write_atomic(move |ctx| deliveries::delete_deliveries(&ctx.conn, &tenant_id, &filter))
            .await
    }

    async fn put_route(&self, route: &RouteRecord) -> StoreResult<()> {
        let route = route.clone();
        self.writer
            .write(move |ctx| jobs::put_route(&ctx.conn, &route))
            .await
    }

    async fn get_route(&self, tenant_id: &str, name: &str) -> StoreResult<RouteRecord> {
        let (tenant_id, name) = (tenant_id.to_string(), name.to_string());
        self.read(move |conn| jobs::get_route(conn, &tenant_id, &name))
            .await
    }

    async fn list_routes(&self, tenant_id: &str) -> StoreResult<Vec<RouteRecord>> {
        let tenant_id = tenant_id.to_string();
        self.read(move |conn| jobs::list_routes(conn, &tenant_id))
            .await
    }

    async fn delete_route(&self, tenant_id: &str, name: &str) -> StoreResult<()> {
        let (tenant_id, name) = (tenant_id.to_string(), name.to_string());
        self.writer
            .write(move |ctx| jobs::delete_route(&ctx.conn, &tenant_id, &name))
            .await
    }

    async fn create_job(
        &self,
        job: &JobRecord,
        first: Option<NewDirectDelivery>,
    ) -> StoreResult<()> {
        let job = job.clone();
        self.writer
            .write_atomic(move |ctx| jobs::create_job(ctx, &job, first))
            .await
    }

    async fn list_jobs(
        &self,
        tenant_id: &str,
        filter: &JobFilter,
        page: &Page,
    ) -> StoreResult<Listing<JobRecord>> {
        let (tenant_id, filter, page) = (tenant_id.to_string(), filter.clone(), page.clone());
        self.read(move |conn| jobs::list_jobs(conn, &tenant_id, &filter, &page))
            .await
    }

    async fn get_job(&self, tenant_id: &str, id: &str) -> StoreResult<JobRecord> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.read(move |conn| jobs::get_job(conn, &tenant_id, &id))
            .await
    }

    async fn set_job_progress(
        &self,
        tenant_id: &str,
        id: &str,
        expected: Option<&str>,
        progress: &str,
        webhook: Option<NewDirectDelivery>,
        now_ms: i64,
    ) -> StoreResult<(JobRecord, bool)> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        let (expected, progress) = (expected.map(str::to_string), progress.to_string());
        self.writer
            .write_atomic(move |ctx| {
                jobs::set_job_progress(
                    ctx,
                    &tenant_id,
                    &id,
                    expected.as_deref(),
                    &progress,
                    webhook,
                    now_ms,
                )
            })
            .await
    }

    async fn start_job(
        &self,
        tenant_id: &str,
        id: &str,
        deadline_ms: i64,
        now_ms: i64,
    ) -> StoreResult<JobRecord> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.writer
            .write(move |ctx| jobs::start_job(&ctx.conn, &tenant_id, &id, deadline_ms, now_ms))
            .await
    }

    async fn complete_job(&self, completion: JobCompletion) -> StoreResult<Completed> {
        self.writer
            .write_atomic(move |ctx| jobs::complete_job(ctx, completion))
            .await
    }

    async fn set_job_waiter(
        &self,
        tenant_id: &str,
        id: &str,
        until_ms: Option<i64>,
    ) -> StoreResult<()> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.writer
            .write(move |ctx| jobs::set_job_waiter(&ctx.conn, &tenant_id, &id, until_ms))
            .await
    }

    async fn purge_jobs(
        &self,
        finished_before_ms: i64,
        batch: usize,
    ) -> StoreResult<Vec<JobRecord>> {
        self.writer
            .write_atomic(move |ctx| jobs::purge_jobs(&ctx.conn, finished_before_ms, batch))
            .await
    }

    async fn overdue_jobs(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<JobRecord>> {
        self.read(move |conn| jobs::overdue_jobs(conn, now_ms, limit))
            .await
    }

    async fn claim_due(&self, request: &ClaimRequest) -> StoreResult<Claim> {
        let request = request.clone();
        self.writer
            .write(move |ctx| claims::claim_due(&ctx.conn, &request))
            .await
    }

    async fn record_attempts(&self, results: Vec<AttemptResult>) -> StoreResult<()> {
        self.writer
            .write(move |ctx| claims::record_attempts(ctx, &results))
            .await
    }

    async fn record_and_claim(
        &self,
        results: Vec<AttemptResult>,
        request: &ClaimRequest,
        claimed: tokio::sync::oneshot::Sender<Claim>,
    ) -> StoreResult<()> {
        let request = request.clone();
        // Not atomic: if the claim fails after the results were written, they commit with the group and the
        // caller's second write of them changes nothing (it is guarded by the lease owner).
        self.writer
            .write(move |ctx| {
                claims::record_attempts(ctx, &results)?;
                let _ = claimed.send(claims::claim_due(&ctx.conn, &request)?);
                Ok(())
            })
            .await
    }

    async fn release_owner(&self, owner: &str, now_ms: i64) -> StoreResult<u64> {
        let owner = owner.to_string();
        self.writer
            .write_atomic(move |ctx| {
                let released = ctx
                    .conn
                    .prepare_cached(crate::sql::RELEASE_OWNER)?
                    .execute(rusqlite::params![now_ms, owner])?;
                Ok(released as u64)
            })
            .await
    }

    async fn release_leases(&self, owner: &str, ids: &[String], now_ms: i64) -> StoreResult<()> {
        let (owner, ids) = (owner.to_string(), ids.to_vec());
        self.writer
            .write_atomic(move |ctx| claims::release_leases(&ctx.conn, &owner, &ids, now_ms))
            .await
    }

    async fn next_due_ms(&self) -> StoreResult<Option<i64>> {
        self.read(claims::next_due_ms).await
    }

    async fn purge_finished(
        &self,
        failed_before_ms: i64,
        others_before_ms: i64,
        batch: usize,
    ) -> StoreResult<u64> {
        self.writer
            .write_atomic(move |ctx| {
                claims::purge_finished(&ctx.conn, failed_before_ms, others_before_ms, batch)
            })
            .await
    }

    async fn oldest_due_ms(&self, now_ms: i64) -> StoreResult<Option<i64>> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(crate::sql::OLDEST_DUE)?
                .query_row([now_ms], |r| r.get(0))?)
        })
        .await
    }

    async fn count_jobs(&self) -> StoreResult<Vec<(String, u64)>> {
        self.read(|conn| {
            let counts = conn
                .prepare_cached(crate::sql::COUNT_JOBS)?
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })?
                .collect::<Result<_, _>>()?;
            Ok(counts)
        })
        .await
    }

    async fn endpoint_circuits(
        &self,
        tenant_id: &str,
        ids: &[String],
    ) -> StoreResult<Vec<EndpointCircuit>> {
        let (tenant_id, ids) = (tenant_id.to_string(), ids.to_vec());
        self.read(move |conn| super::health::endpoint_circuits(conn, &tenant_id, &ids))
            .await
    }

    async fn circuit_counts(&self, now_ms: i64) -> StoreResult<CircuitCounts> {
        self.read(move |conn| super::health::circuit_counts(conn, now_ms))
            .await
    }

    async fn stats(&self, now_ms: i64) -> StoreResult<StoreStats> {
        self.read(move |conn| claims::stats(conn, now_ms)).await
    }

    async fn attempt_minutes(
        &self,
        tenant_id: &str,
        endpoint_id: Option<&str>,
        since_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Vec<(i64, herald_core::stats::Tally)>> {
        let (tenant_id, endpoint_id) = (tenant_id.to_string(), endpoint_id.map(str::to_string));
        self.read(move |conn| {
            stats::minutes(conn, &tenant_id, endpoint_id.as_deref(), since_ms, until_ms)
        })
        .await
    }

    async fn outstanding(&self, tenant_id: &str, cap: u64) -> StoreResult<crate::Outstanding> {
        let tenant_id = tenant_id.to_string();
        self.read(move |conn| stats::outstanding(conn, &tenant_id, cap))
            .await
    }
}

//! [`Store`] for [`PostgresStore`]: every operation on a pooled connection under the store's timeout.

use std::sync::Arc;

use async_trait::async_trait;

use super::{claims, deliveries, endpoints, jobs, publish, tenants, upkeep, PostgresStore};
use crate::error::StoreResult;
use crate::jobs_model::*;
use crate::model::*;
use crate::query::*;
use crate::Store;

#[async_trait]
impl Store for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.timed(async {
            let client = self.client().await?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(super::pg_error)?;
            Ok(())
        })
        .await
    }

    fn watch_for_work(&self, wake: crate::store::WorkWake) {
        self.listen(
            super::WORK_CHANNEL,
            Arc::new(move |payload| {
                let keys: Vec<&str> = payload
                    .map(|p| super::fan_out::notified_keys(p).collect())
                    .unwrap_or_default();
                wake(&keys)
            }),
        );
    }

    fn watch_jobs(&self, changed: Arc<dyn Fn(&str) + Send + Sync>) {
        self.listen(
            super::JOBS_CHANNEL,
            Arc::new(move |id| {
                if let Some(id) = id {
                    changed(id)
                }
            }),
        );
    }

    async fn create_tenant(
        &self,
        id: &str,
        token_sha256: &str,
        now_ms: i64,
    ) -> StoreResult<TenantRecord> {
        self.timed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(super::pg_error)?;
            let tenant = tenants::create_tenant(&tx, id, token_sha256, now_ms).await?;
            tx.commit().await.map_err(super::pg_error)?;
            Ok(tenant)
        })
        .await
    }

    async fn tenant_by_token(&self, token_sha256: &str) -> StoreResult<Option<TenantRecord>> {
        self.timed(async { tenants::tenant_by_token(&self.client().await?, token_sha256).await })
            .await
    }

    async fn get_tenant(&self, id: &str) -> StoreResult<TenantRecord> {
        self.timed(async { tenants::get_tenant(&self.client().await?, id).await })
            .await
    }

    async fn list_tenants(&self) -> StoreResult<Vec<TenantRecord>> {
        self.timed(async { tenants::list_tenants(&self.client().await?).await })
            .await
    }

    async fn create_token(&self, token: &TokenRecord) -> StoreResult<()> {
        self.timed(async { tenants::insert_token(&self.client().await?, token).await })
            .await
    }

    async fn list_tokens(&self, tenant_id: &str) -> StoreResult<Vec<TokenRecord>> {
        self.timed(async { tenants::list_tokens(&self.client().await?, tenant_id).await })
            .await
    }

    async fn revoke_token(
        &self,
        tenant_id: &str,
        id: &str,
        now_ms: i64,
    ) -> StoreResult<TokenRecord> {
        self.timed(async {
            tenants::revoke_token(&self.client().await?, tenant_id, id, now_ms).await
        })
        .await
    }

    async fn rotate_token(
        &self,
        tenant_id: &str,
        id: &str,
        replacement: &TokenRecord,
        now_ms: i64,
    ) -> StoreResult<TokenRecord> {
        self.timed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(super::pg_error)?;
            let made = tenants::rotate_token(&tx, tenant_id, id, replacement, now_ms).await?;
            tx.commit().await.map_err(super::pg_error)?;
            Ok(made)
        })
        .await
    }

    async fn create_endpoint(&self, endpoint: &EndpointRecord) -> StoreResult<()> {
        self.timed(async { endpoints::create_endpoint(&self.client().await?, endpoint).await })
            .await
    }

    async fn get_endpoint(&self, tenant_id: &str, id: &str) -> StoreResult<EndpointRecord> {
        self.timed(async { endpoints::get_endpoint(&self.client().await?, tenant_id, id).await })
            .await
    }

    async fn list_endpoints(
        &self,
        tenant_id: &str,
        filter: &EndpointFilter,
        page: &Page,
    ) -> StoreResult<Listing<EndpointRecord>> {
        self.timed(async {
            endpoints::list_endpoints(&self.client().await?, tenant_id, filter, page).await
        })
        .await
    }

    async fn update_endpoint(&self, endpoint: &EndpointRecord) -> StoreResult<()> {
        self.timed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(super::pg_error)?;
            endpoints::update_endpoint(&tx, endpoint).await?;
            tx.commit().await.map_err(super::pg_error)
        })
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
        self.timed(async {
            endpoints::set_endpoint_secret(
                &self.client().await?,
                tenant_id,
                id,
                secret,
                previous_until,
                now_ms,
            )
            .await
        })
        .await
    }

    async fn delete_endpoint(&self, tenant_id: &str, id: &str, now_ms: i64) -> StoreResult<()> {
        self.timed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(super::pg_error)?;
            endpoints::delete_endpoint(&tx, tenant_id, id, now_ms).await?;
            tx.commit().await.map_err(super::pg_error)
        })
        .await
    }

    async fn recover_endpoint(
        &self,
        tenant_id: &str,
        id: &str,
        since_ms: i64,
        now_ms: i64,
    ) -> StoreResult<u64> {
        self.timed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(super::pg_error)?;
            let n = endpoints::recover_endpoint(&tx, tenant_id, id, since_ms, now_ms).await?;
            tx.commit().await.map_err(super::pg_error)?;
            Ok(n)
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
        self.timed(publish::replay_endpoint(
            self, tenant_id, id, since_ms, now_ms,
        ))
        .await
    }

    async fn publish(&self, event: NewEvent) -> StoreResult<Published> {
        self.timed(self.publisher.publish(event)).await
    }

    async fn get_event(&self, tenant_id: &str, id: &str) -> StoreResult<EventRecord> {
        self.timed(async { deliveries::get_event(&self.client().await?, tenant_id, id).await })
            .await
    }

    async fn create_direct_delivery(
        &self,
        delivery: NewDirectDelivery,
    ) -> StoreResult<DeliveryRecord> {
        self.timed(publish::create_direct(self, delivery)).await
    }

    async fn get_delivery(&self, tenant_id: &str, id: &str) -> StoreResult<DeliveryRecord> {
        self.timed(async { deliveries::get_delivery(&self.client().await?, tenant_id, id).await })
            .await
    }

    async fn list_attempts(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> StoreResult<Vec<AttemptRecord>> {
        self.timed(async {
            deliveries::list_attempts(&self.client().await?, tenant_id, delivery_id).await
        })
        .await
    }

    async fn list_deliveries(
        &self,
        tenant_id: &str,
        filter: &DeliveryFilter,
        page: &Page,
    ) -> StoreResult<Listing<DeliveryRecord>> {
        self.timed(async {
            deliveries::list_deliveries(&self.client().await?, tenant_id, filter, page).await
        })
        .await
    }

    async fn count_deliveries(&self, tenant_id: &str, filter: &DeliveryFilter) -> StoreResult<u64> {
        self.timed(async {
            deliveries::count_deliveries(&self.client().await?, tenant_id, filter).await
        })
        .await
    }

    async fn retry_delivery(
        &self,
        tenant_id: &str,
        id: &str,
        now_ms: i64,
    ) -> StoreResult<DeliveryRecord> {
        self.timed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(super::pg_error)?;
            let record = deliveries::retry_delivery(&tx, tenant_id, id, now_ms).await?;
            tx.commit().await.map_err(super::pg_error)?;
            Ok(record)
        })
        .await
    }

    async fn cancel_delivery(
        &self,
        tenant_id: &str,
        id: &str,
        now_ms: i64,
    ) -> StoreResult<DeliveryRecord> {
        self.timed(async {
            deliveries::cancel_delivery(&self.client().await?, tenant_id, id, now_ms).await
        })
        .await
    }

    async fn delete_delivery(&self, tenant_id: &str, id: &str) -> StoreResult<()> {
        self.timed(async {
            deliveries::delete_delivery(&self.client().await?, tenant_id, id).await
        })
        .await
    }

    async fn delete_deliveries(
        &self,
        tenant_id: &str,
        filter: &DeliveryFilter,
    ) -> StoreResult<u64> {
        self.timed(async {
            deliveries::delete_deliveries(&self.client().await?, tenant_id, filter).await
        })
        .await
    }

    async fn put_route(&self, route: &RouteRecord) -> StoreResult<()> {
        self.timed(async { jobs::put_route(&self.client().await?, route).await })
            .await
    }

    async fn get_route(&self, tenant_id: &str, name: &str) -> StoreResult<RouteRecord> {
        self.timed(async { jobs::get_route(&self.client().await?, tenant_id, name).await })
            .await
    }

    async fn list_routes(&self, tenant_id: &str) -> StoreResult<Vec<RouteRecord>> {
        self.timed(async { jobs::list_routes(&self.client().await?, tenant_id).await })
            .await
    }

    async fn delete_route(&self, tenant_id: &str, name: &str) -> StoreResult<()> {
        self.timed(async { jobs::delete_route(&self.client().await?, tenant_id, name).await })
            .await
    }

    async fn create_job(
        &self,
        job: &JobRecord,
        first: Option<NewDirectDelivery>,
    ) -> StoreResult<()> {
        self.timed(jobs::create_job(self, job, first)).await
    }

    async fn list_jobs(
        &self,
        tenant_id: &str,
        filter: &JobFilter,
        page: &Page,
    ) -> StoreResult<Listing<JobRecord>> {
        self.timed(async { jobs::list_jobs(&self.client().await?, tenant_id, filter, page).await })
            .await
    }

    async fn get_job(&self, tenant_id: &str, id: &str) -> StoreResult<JobRecord> {
        self.timed(async { jobs::get_job(&self.client().await?, tenant_id, id).await })
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
        self.timed(jobs::set_job_progress(
            self, tenant_id, id, expected, progress, webhook, now_ms,
        ))
        .await
    }

    async fn start_job(
        &self,
        tenant_id: &str,
        id: &str,
        deadline_ms: i64,
        now_ms: i64,
    ) -> StoreResult<JobRecord> {
        self.timed(jobs::start_job(self, tenant_id, id, deadline_ms, now_ms))
            .await
    }

    async fn complete_job(&self, completion: JobCompletion) -> StoreResult<Completed> {
        self.timed(jobs::complete_job(self, completion)).await
    }

    async fn set_job_waiter(
        &self,
        tenant_id: &str,
        id: &str,
        until_ms: Option<i64>,
    ) -> StoreResult<()> {
        self.timed(async {
            jobs::set_job_waiter(&self.client().await?, tenant_id, id, until_ms).await
        })
        .await
    }

    async fn purge_jobs(
        &self,
        finished_before_ms: i64,
        batch: usize,
    ) -> StoreResult<Vec<JobRecord>> {
        self.timed(async {
            jobs::purge_jobs(&self.client().await?, finished_before_ms, batch).await
        })
        .await
    }

    async fn overdue_jobs(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<JobRecord>> {
        self.timed(async { jobs::overdue_jobs(&self.client().await?, now_ms, limit).await })
            .await
    }

    async fn claim_due(&self, request: &ClaimRequest) -> StoreResult<Claim> {
        self.timed(claims::claim_due(self, request)).await
    }

    async fn record_attempts(&self, results: Vec<AttemptResult>) -> StoreResult<()> {
        self.timed(claims::record_attempts(self, &results)).await
    }

    async fn record_and_claim(
        &self,
        results: Vec<AttemptResult>,
        request: &ClaimRequest,
        claimed: tokio::sync::oneshot::Sender<Claim>,
    ) -> StoreResult<()> {
        self.timed(claims::record_and_claim(self, &results, request, claimed))
            .await
    }

    async fn release_owner(&self, owner: &str, now_ms: i64) -> StoreResult<u64> {
        self.timed(async {
            self.client()
                .await?
                .execute(crate::sql::RELEASE_OWNER, &[&now_ms, &owner])
                .await
                .map_err(super::pg_error)
        })
        .await
    }

    async fn release_leases(&self, owner: &str, ids: &[String], now_ms: i64) -> StoreResult<()> {
        self.timed(async {
            upkeep::release_leases(&self.client().await?, owner, ids, now_ms).await
        })
        .await
    }

    async fn next_due_ms(&self) -> StoreResult<Option<i64>> {
        self.timed(async { upkeep::next_due_ms(&self.client().await?).await })
            .await
    }

    async fn purge_finished(
        &self,
        failed_before_ms: i64,
        others_before_ms: i64,
        batch: usize,
    ) -> StoreResult<u64> {
        self.timed(async {
            upkeep::purge_finished(
                &self.client().await?,
                failed_before_ms,
                others_before_ms,
                batch,
            )
            .await
        })
        .await
    }

    async fn oldest_due_ms(&self, now_ms: i64) -> StoreResult<Option<i64>> {
        self.timed(async {
            let row = self
                .client()
                .await?
                .query_one(crate::sql::OLDEST_DUE, &[&now_ms])
                .await
                .map_err(super::pg_error)?;
            super::rows::get(&row, 0)
        })
        .await
    }

    async fn count_jobs(&self) -> StoreResult<Vec<(String, u64)>> {
        self.timed(async {
            let rows = self
                .client()
                .await?
                .query(crate::sql::COUNT_JOBS, &[])
                .await
                .map_err(super::pg_error)?;
            rows.iter()
                .map(|r| {
                    Ok((
                        super::rows::get::<String>(r, 0)?,
                        super::rows::get::<i64>(r, 1)? as u64,
                    ))
                })
                .collect()
        })
        .await
    }

    async fn endpoint_circuits(
        &self,
        tenant_id: &str,
        ids: &[String],
    ) -> StoreResult<Vec<EndpointCircuit>> {
        self.timed(async {
            super::health::endpoint_circuits(&self.client().await?, tenant_id, ids).await
        })
        .await
    }

    async fn circuit_counts(&self, now_ms: i64) -> StoreResult<CircuitCounts> {
        self.timed(async { super::health::circuit_counts(&self.client().await?, now_ms).await })
            .await
    }

    async fn stats(&self, now_ms: i64) -> StoreResult<StoreStats> {
        self.timed(async { upkeep::stats(&self.client().await?, now_ms).await })
            .await
    }

    async fn attempt_minutes(
        &self,
        tenant_id: &str,
        endpoint_id: Option<&str>,
        since_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Vec<(i64, herald_core::stats::Tally)>> {
        self.timed(async {
            let client = self.client().await?;
            super::stats::minutes(&client, tenant_id, endpoint_id, since_ms, until_ms).await
        })
        .await
    }

    async fn outstanding(&self, tenant_id: &str, cap: u64) -> StoreResult<crate::Outstanding> {
        self.timed(async { super::stats::outstanding(&self.client().await?, tenant_id, cap).await })
            .await
    }
}

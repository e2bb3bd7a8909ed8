//! Jobs and routes on PostgreSQL. Read-modify-write operations lock the job row (`FOR UPDATE`) in a
//! transaction that also queues the webhook delivery, so two nodes cannot both complete a job.

use std::str::FromStr;

use deadpool_postgres::GenericClient;
use herald_core::status::JobStatus;
use tokio_postgres::Row;

use super::publish::insert_direct;
use super::rows::get;
use super::{pg_error, PostgresStore};
use crate::error::{StoreError, StoreResult};
use crate::jobs_model::*;
use crate::model::NewDirectDelivery;
use crate::query::{Listing, Page};
use crate::sql::{JOB_COLUMNS, ROUTE_COLUMNS};

fn job(row: &Row) -> StoreResult<JobRecord> {
    let status: String = get(row, 3)?;
    Ok(JobRecord {
        id: get(row, 0)?,
        tenant_id: get(row, 1)?,
        route: get(row, 2)?,
        status: JobStatus::from_str(&status)
            .map_err(|_| StoreError::Internal(format!("unknown job status {status}")))?,
        progress: get(row, 4)?,
        payload: get(row, 5)?,
        result: get(row, 6)?,
        error: get(row, 7)?,
        result_blob: get(row, 8)?,
        webhook_url: get(row, 9)?,
        progress_reports: get(row, 10)?,
        correlation_id: get(row, 11)?,
        waiter_until_ms: get(row, 12)?,
        deadline_ms: get(row, 13)?,
        created_ms: get(row, 14)?,
        updated_ms: get(row, 15)?,
        traceparent: get(row, 16)?,
    })
}

fn route(row: &Row) -> StoreResult<RouteRecord> {
    let kind: String = get(row, 2)?;
    Ok(RouteRecord {
        tenant_id: get(row, 0)?,
        name: get(row, 1)?,
        kind: RouteKind::parse(&kind)
            .ok_or_else(|| StoreError::Internal(format!("unknown route kind {kind}")))?,
        url: get(row, 3)?,
        timeout_ms: get::<i64>(row, 4)?.clamp(0, i64::from(u32::MAX)) as u32,
        secret: get(row, 5)?,
        auth: get(row, 6)?,
        retry_policy: get(row, 7)?,
        created_ms: get(row, 8)?,
        updated_ms: get(row, 9)?,
    })
}

pub async fn put_route(c: &impl GenericClient, r: &RouteRecord) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO routes ({ROUTE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (tenant_id, name) DO UPDATE SET kind = EXCLUDED.kind, url = EXCLUDED.url, \
         timeout_ms = EXCLUDED.timeout_ms, secret = EXCLUDED.secret, auth = EXCLUDED.auth, \
         retry_policy = EXCLUDED.retry_policy, updated_ms = EXCLUDED.updated_ms"
    );
    c.execute(
        sql.as_str(),
        &[
            &r.tenant_id,
            &r.name,
            &r.kind.as_str(),
            &r.url,
            &i64::from(r.timeout_ms),
            &r.secret,
            &r.auth,
            &r.retry_policy,
            &r.created_ms,
            &r.updated_ms,
        ],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

pub async fn get_route(
    c: &impl GenericClient,
    tenant_id: &str,
    name: &str,
) -> StoreResult<RouteRecord> {
    let sql = format!("SELECT {ROUTE_COLUMNS} FROM routes WHERE tenant_id = $1 AND name = $2");
    let row = c
        .query_opt(sql.as_str(), &[&tenant_id, &name])
        .await
        .map_err(pg_error)?
        .ok_or(StoreError::NotFound("route"))?;
    route(&row)
}

pub async fn list_routes(c: &impl GenericClient, tenant_id: &str) -> StoreResult<Vec<RouteRecord>> {
    let sql = format!("SELECT {ROUTE_COLUMNS} FROM routes WHERE tenant_id = $1 ORDER BY name");
    c.query(sql.as_str(), &[&tenant_id])
        .await
        .map_err(pg_error)?
        .iter()
        .map(route)
        .collect()
}

pub async fn delete_route(c: &impl GenericClient, tenant_id: &str, name: &str) -> StoreResult<()> {
    match c
        .execute(
            "DELETE FROM routes WHERE tenant_id = $1 AND name = $2",
            &[&tenant_id, &name],
        )
        .await
        .map_err(pg_error)?
    {
        0 => Err(StoreError::NotFound("route")),
        _ => Ok(()),
    }
}

pub async fn create_job(
    store: &PostgresStore,
    j: &JobRecord,
    first: Option<NewDirectDelivery>,
) -> StoreResult<()> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg_error)?;
    let sql = format!(
        "INSERT INTO jobs ({JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    );
    tx.execute(
        sql.as_str(),
        &[
            &j.id,
            &j.tenant_id,
            &j.route,
            &j.status.as_str(),
            &j.progress,
            &j.payload,
            &j.result,
            &j.error,
            &j.result_blob,
            &j.webhook_url,
            &j.progress_reports,
            &j.correlation_id,
            &j.waiter_until_ms,
            &j.deadline_ms,
            &j.created_ms,
            &j.updated_ms,
            &j.traceparent,
        ],
    )
    .await
    .map_err(pg_error)?;
    if let Some(first) = first {
        insert_direct(&tx, &store.ids, first).await?;
    }
    tx.commit().await.map_err(pg_error)
}

pub async fn get_job(c: &impl GenericClient, tenant_id: &str, id: &str) -> StoreResult<JobRecord> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND tenant_id = $2");
    let row = c
        .query_opt(sql.as_str(), &[&id, &tenant_id])
        .await
        .map_err(pg_error)?
        .ok_or(StoreError::NotFound("job"))?;
    job(&row)
}

/// The job, locked for the rest of the transaction; Conflict if it already ended.
async fn lock_unfinished(
    c: &impl GenericClient,
    tenant_id: &str,
    id: &str,
) -> StoreResult<JobRecord> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND tenant_id = $2 FOR UPDATE");
    let row = c
        .query_opt(sql.as_str(), &[&id, &tenant_id])
        .await
        .map_err(pg_error)?
        .ok_or(StoreError::NotFound("job"))?;
    let current = job(&row)?;
    if current.status.is_final() {
        return Err(StoreError::Conflict(format!(
            "job already {}",
            current.status.as_str()
        )));
    }
    Ok(current)
}

pub async fn set_job_progress(
    store: &PostgresStore,
    tenant_id: &str,
    id: &str,
    expected: Option<&str>,
    progress: &str,
    webhook: Option<NewDirectDelivery>,
    now_ms: i64,
) -> StoreResult<(JobRecord, bool)> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg_error)?;
    let current = lock_unfinished(&tx, tenant_id, id).await?;
    if current.progress.as_deref() != expected {
        return Ok((current, false));
    }
    tx.execute(
        "UPDATE jobs SET progress = $2, status = 'running', updated_ms = $3 WHERE id = $1",
        &[&id, &progress, &now_ms],
    )
    .await
    .map_err(pg_error)?;
    if let Some(webhook) = webhook {
        insert_direct(&tx, &store.ids, webhook).await?;
    }
    notify_job(&tx, id).await?;
    let updated = get_job(&tx, tenant_id, id).await?;
    tx.commit().await.map_err(pg_error)?;
    Ok((updated, true))
}

pub async fn start_job(
    store: &PostgresStore,
    tenant_id: &str,
    id: &str,
    deadline_ms: i64,
    now_ms: i64,
) -> StoreResult<JobRecord> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg_error)?;
    lock_unfinished(&tx, tenant_id, id).await?;
    tx.execute(
        "UPDATE jobs SET status = 'running', deadline_ms = $2, updated_ms = $3 WHERE id = $1",
        &[&id, &deadline_ms, &now_ms],
    )
    .await
    .map_err(pg_error)?;
    let updated = get_job(&tx, tenant_id, id).await?;
    tx.commit().await.map_err(pg_error)?;
    Ok(updated)
}

pub async fn complete_job(store: &PostgresStore, c: JobCompletion) -> StoreResult<Completed> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg_error)?;
    let current = lock_unfinished(&tx, &c.tenant_id, &c.id).await?;
    let long_poll_answers = current
        .waiter_until_ms
        .is_some_and(|until| until > c.now_ms);
    tx.execute(
        "UPDATE jobs SET status = $2, result = $3, error = $4, result_blob = $5, deadline_ms = NULL, \
         updated_ms = $6 WHERE id = $1",
        &[&c.id, &c.status.as_str(), &c.result, &c.error, &c.result_blob, &c.now_ms],
    )
    .await
    .map_err(pg_error)?;
    let webhook_queued = match c.webhook {
        Some(webhook) if !long_poll_answers => {
            insert_direct(&tx, &store.ids, webhook).await?;
            true
        }
        _ => false,
    };
    notify_job(&tx, &c.id).await?;
    let job = get_job(&tx, &c.tenant_id, &c.id).await?;
    tx.commit().await.map_err(pg_error)?;
    Ok(Completed {
        job,
        webhook_queued,
    })
}

pub async fn set_job_waiter(
    c: &impl GenericClient,
    tenant_id: &str,
    id: &str,
    until_ms: Option<i64>,
) -> StoreResult<()> {
    match c
        .execute(
            "UPDATE jobs SET waiter_until_ms = $3 WHERE id = $1 AND tenant_id = $2",
            &[&id, &tenant_id, &until_ms],
        )
        .await
        .map_err(pg_error)?
    {
        0 => Err(StoreError::NotFound("job")),
        _ => Ok(()),
    }
}

pub async fn overdue_jobs(
    c: &impl GenericClient,
    now_ms: i64,
    limit: usize,
) -> StoreResult<Vec<JobRecord>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE deadline_ms IS NOT NULL AND deadline_ms < $1 \
         AND status IN ('accepted', 'running') ORDER BY deadline_ms LIMIT $2"
    );
    c.query(sql.as_str(), &[&now_ms, &(limit as i64)])
        .await
        .map_err(pg_error)?
        .iter()
        .map(job)
        .collect()
}

pub async fn purge_jobs(
    c: &impl GenericClient,
    finished_before_ms: i64,
    batch: usize,
) -> StoreResult<Vec<JobRecord>> {
    let sql = format!(
        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') \
         AND updated_ms < $1 ORDER BY updated_ms LIMIT $2) RETURNING {JOB_COLUMNS}"
    );
    c.query(sql.as_str(), &[&finished_before_ms, &(batch as i64)])
        .await
        .map_err(pg_error)?
        .iter()
        .map(job)
        .collect()
}

/// Tell the other nodes' long polls that the job changed (delivered on commit).
async fn notify_job(c: &impl GenericClient, id: &str) -> StoreResult<()> {
    c.execute("SELECT pg_notify($1, $2)", &[&super::JOBS_CHANNEL, &id])
        .await
        .map_err(pg_error)?;
    Ok(())
}

pub async fn list_jobs(
    c: &impl GenericClient,
    tenant_id: &str,
    filter: &JobFilter,
    page: &Page,
) -> StoreResult<Listing<JobRecord>> {
    let stmt = c
        .prepare_cached(&crate::sql::list_jobs())
        .await
        .map_err(pg_error)?;
    let rows = c
        .query(
            &stmt,
            &[
                &tenant_id,
                &filter.status.as_ref().map(|s| s.as_str()),
                &filter.route,
                &page.after,
                &(page.limit as i64 + 1),
            ],
        )
        .await
        .map_err(pg_error)?;
    let mut items = rows.iter().map(job).collect::<StoreResult<Vec<_>>>()?;
    Ok(crate::query::into_listing(&mut items, page.limit, |j| {
        j.id.clone()
    }))
}

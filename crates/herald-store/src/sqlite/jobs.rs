//! Jobs and routes on SQLite. Read-modify-write operations run on the writer thread, so they see and change
//! the job atomically with the webhook delivery they queue.

use std::str::FromStr;

use herald_core::status::JobStatus;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::publish::create_direct;
use super::writer::WriteCtx;
use crate::error::{StoreError, StoreResult};
use crate::jobs_model::*;
use crate::model::NewDirectDelivery;
use crate::query::{Listing, Page};
use crate::sql::{JOB_COLUMNS, ROUTE_COLUMNS};

fn bad(index: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("malformed {what}").into(),
    )
}

fn job(row: &Row) -> rusqlite::Result<JobRecord> {
    let status: String = row.get(3)?;
    Ok(JobRecord {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        route: row.get(2)?,
        status: JobStatus::from_str(&status).map_err(|_| bad(3, "job status"))?,
        progress: row.get(4)?,
        payload: row.get(5)?,
        result: row.get(6)?,
        error: row.get(7)?,
        result_blob: row.get(8)?,
        webhook_url: row.get(9)?,
        progress_reports: row.get(10)?,
        correlation_id: row.get(11)?,
        waiter_until_ms: row.get(12)?,
        deadline_ms: row.get(13)?,
        created_ms: row.get(14)?,
        updated_ms: row.get(15)?,
        traceparent: row.get(16)?,
    })
}

fn route(row: &Row) -> rusqlite::Result<RouteRecord> {
    let kind: String = row.get(2)?;
    Ok(RouteRecord {
        tenant_id: row.get(0)?,
        name: row.get(1)?,
        kind: RouteKind::parse(&kind).ok_or_else(|| bad(2, "route kind"))?,
        url: row.get(3)?,
        timeout_ms: row.get(4)?,
        secret: row.get(5)?,
        auth: row.get(6)?,
        retry_policy: row.get(7)?,
        created_ms: row.get(8)?,
        updated_ms: row.get(9)?,
    })
}

pub fn put_route(conn: &Connection, r: &RouteRecord) -> StoreResult<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO routes ({ROUTE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (tenant_id, name) DO UPDATE SET kind = excluded.kind, url = excluded.url, \
         timeout_ms = excluded.timeout_ms, secret = excluded.secret, auth = excluded.auth, \
         retry_policy = excluded.retry_policy, updated_ms = excluded.updated_ms"
    ))?
    .execute(params![
        r.tenant_id,
        r.name,
        r.kind.as_str(),
        r.url,
        r.timeout_ms,
        r.secret,
        r.auth,
        r.retry_policy,
        r.created_ms,
        r.updated_ms
    ])?;
    Ok(())
}

pub fn get_route(conn: &Connection, tenant_id: &str, name: &str) -> StoreResult<RouteRecord> {
    conn.prepare_cached(&format!(
        "SELECT {ROUTE_COLUMNS} FROM routes WHERE tenant_id = ?1 AND name = ?2"
    ))?
    .query_row([tenant_id, name], route)
    .optional()?
    .ok_or(StoreError::NotFound("route"))
}

pub fn list_routes(conn: &Connection, tenant_id: &str) -> StoreResult<Vec<RouteRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ROUTE_COLUMNS} FROM routes WHERE tenant_id = ?1 ORDER BY name"
    ))?;
    let routes = stmt
        .query_map([tenant_id], route)?
        .collect::<Result<_, _>>()?;
    Ok(routes)
}

pub fn delete_route(conn: &Connection, tenant_id: &str, name: &str) -> StoreResult<()> {
    match conn.execute(
        "DELETE FROM routes WHERE tenant_id = ?1 AND name = ?2",
        [tenant_id, name],
    )? {
        0 => Err(StoreError::NotFound("route")),
        _ => Ok(()),
    }
}

pub fn create_job(
    ctx: &mut WriteCtx,
    j: &JobRecord,
    first: Option<NewDirectDelivery>,
) -> StoreResult<()> {
    ctx.conn
        .prepare_cached(&format!(
            "INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
        ))?
        .execute(params![
            j.id,
            j.tenant_id,
            j.route,
            j.status.as_str(),
            j.progress,
            j.payload,
            j.result,
            j.error,
            j.result_blob,
            j.webhook_url,
            j.progress_reports,
            j.correlation_id,
            j.waiter_until_ms,
            j.deadline_ms,
            j.created_ms,
            j.updated_ms,
            j.traceparent
        ])?;
    if let Some(first) = first {
        create_direct(ctx, first)?;
    }
    Ok(())
}

pub fn get_job(conn: &Connection, tenant_id: &str, id: &str) -> StoreResult<JobRecord> {
    conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1 AND tenant_id = ?2"
    ))?
    .query_row([id, tenant_id], job)
    .optional()?
    .ok_or(StoreError::NotFound("job"))
}

fn unfinished(conn: &Connection, tenant_id: &str, id: &str) -> StoreResult<JobRecord> {
    let current = get_job(conn, tenant_id, id)?;
    if current.status.is_final() {
        return Err(StoreError::Conflict(format!(
            "job already {}",
            current.status.as_str()
        )));
    }
    Ok(current)
}

pub fn set_job_progress(
    ctx: &mut WriteCtx,
    tenant_id: &str,
    id: &str,
    expected: Option<&str>,
    progress: &str,
    webhook: Option<NewDirectDelivery>,
    now_ms: i64,
) -> StoreResult<(JobRecord, bool)> {
    let current = unfinished(&ctx.conn, tenant_id, id)?;
    if current.progress.as_deref() != expected {
        return Ok((current, false));
    }
    ctx.conn.execute(
        "UPDATE jobs SET progress = ?2, status = 'running', updated_ms = ?3 WHERE id = ?1",
        params![id, progress, now_ms],
    )?;
    if let Some(webhook) = webhook {
        create_direct(ctx, webhook)?;
    }
    Ok((get_job(&ctx.conn, tenant_id, id)?, true))
}

pub fn start_job(
    conn: &Connection,
    tenant_id: &str,
    id: &str,
    deadline_ms: i64,
    now_ms: i64,
) -> StoreResult<JobRecord> {
    unfinished(conn, tenant_id, id)?;
    conn.execute(
        "UPDATE jobs SET status = 'running', deadline_ms = ?2, updated_ms = ?3 WHERE id = ?1",
        params![id, deadline_ms, now_ms],
    )?;
    get_job(conn, tenant_id, id)
}

pub fn complete_job(ctx: &mut WriteCtx, c: JobCompletion) -> StoreResult<Completed> {
    let current = unfinished(&ctx.conn, &c.tenant_id, &c.id)?;
    let long_poll_answers = current
        .waiter_until_ms
        .is_some_and(|until| until > c.now_ms);
    ctx.conn.execute(
        "UPDATE jobs SET status = ?2, result = ?3, error = ?4, result_blob = ?5, deadline_ms = NULL, \
         updated_ms = ?6 WHERE id = ?1",
        params![c.id, c.status.as_str(), c.result, c.error, c.result_blob, c.now_ms],
    )?;
    let webhook_queued = match c.webhook {
        Some(webhook) if !long_poll_answers => {
            create_direct(ctx, webhook)?;
            true
        }
        _ => false,
    };
    Ok(Completed {
        job: get_job(&ctx.conn, &c.tenant_id, &c.id)?,
        webhook_queued,
    })
}

pub fn set_job_waiter(
    conn: &Connection,
    tenant_id: &str,
    id: &str,
    until_ms: Option<i64>,
) -> StoreResult<()> {
    match conn.execute(
        "UPDATE jobs SET waiter_until_ms = ?3 WHERE id = ?1 AND tenant_id = ?2",
        params![id, tenant_id, until_ms],
    )? {
        0 => Err(StoreError::NotFound("job")),
        _ => Ok(()),
    }
}

pub fn overdue_jobs(conn: &Connection, now_ms: i64, limit: usize) -> StoreResult<Vec<JobRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE deadline_ms IS NOT NULL AND deadline_ms < ?1 \
         AND status IN ('accepted', 'running') ORDER BY deadline_ms LIMIT ?2"
    ))?;
    let jobs = stmt
        .query_map(params![now_ms, limit as i64], job)?
        .collect::<Result<_, _>>()?;
    Ok(jobs)
}

pub fn purge_jobs(
    conn: &Connection,
    finished_before_ms: i64,
    batch: usize,
) -> StoreResult<Vec<JobRecord>> {
    let doomed: Vec<JobRecord> = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') \
             AND updated_ms < ?1 ORDER BY updated_ms LIMIT ?2"
        ))?
        .query_map(params![finished_before_ms, batch as i64], job)?
        .collect::<Result<_, _>>()?;
    let mut delete = conn.prepare_cached("DELETE FROM jobs WHERE id = ?1")?;
    for j in &doomed {
        delete.execute([&j.id])?;
    }
    Ok(doomed)
}

pub fn list_jobs(
    conn: &Connection,
    tenant_id: &str,
    filter: &JobFilter,
    page: &Page,
) -> StoreResult<Listing<JobRecord>> {
    let mut items: Vec<JobRecord> = conn
        .prepare_cached(&crate::sql::list_jobs())?
        .query_map(
            params![
                tenant_id,
                filter.status.as_ref().map(|s| s.as_str()),
                filter.route,
                page.after,
                page.limit as i64 + 1
            ],
            job,
        )?
        .collect::<Result<_, _>>()?;
    Ok(crate::query::into_listing(&mut items, page.limit, |j| {
        j.id.clone()
    }))
}

//! Tenants and endpoints on PostgreSQL.

use deadpool_postgres::GenericClient;
use herald_core::event_type::filter_matches;

use super::rows;
use super::{pg_error, WORK_CHANNEL};
use crate::error::{StoreError, StoreResult};
use crate::model::EndpointRecord;
use crate::query::{EndpointFilter, Listing, Page};
use crate::sql::ENDPOINT_COLUMNS;

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("serializing plain data cannot fail")
}

pub async fn create_endpoint(c: &impl GenericClient, ep: &EndpointRecord) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO endpoints ({ENDPOINT_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    );
    c.execute(
        sql.as_str(),
        &[
            &ep.id,
            &ep.tenant_id,
            &ep.url,
            &json(&ep.event_types),
            &ep.secret,
            &ep.previous_secret,
            &ep.previous_secret_expires_ms,
            &json(&ep.headers),
            &json(&ep.retry_policy),
            &i64::from(ep.timeout_ms),
            &ep.rate_limit_per_s.map(i64::from),
            &i64::from(ep.max_in_flight),
            &ep.disabled,
            &ep.description,
            &json(&ep.metadata),
            &ep.created_ms,
            &ep.updated_ms,
        ],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

pub async fn get_endpoint(
    c: &impl GenericClient,
    tenant_id: &str,
    id: &str,
) -> StoreResult<EndpointRecord> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = $1 AND tenant_id = $2");
    let stmt = c.prepare_cached(&sql).await.map_err(pg_error)?;
    let row = c
        .query_opt(&stmt, &[&id, &tenant_id])
        .await
        .map_err(pg_error)?
        .ok_or(StoreError::NotFound("endpoint"))?;
    rows::endpoint(&row)
}

pub async fn list_endpoints(
    c: &impl GenericClient,
    tenant_id: &str,
    filter: &EndpointFilter,
    page: &Page,
) -> StoreResult<Listing<EndpointRecord>> {
    let after = page.after.clone().unwrap_or_default();
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE tenant_id = $1 AND id > $2 ORDER BY id"
    );
    let found = c
        .query(sql.as_str(), &[&tenant_id, &after])
        .await
        .map_err(pg_error)?;
    let skip = if page.after.is_some() {
        0
    } else {
        page.offset as usize
    };
    let mut items: Vec<EndpointRecord> = Vec::with_capacity(page.limit.min(256));
    let mut matching = 0usize;
    for row in &found {
        let ep = rows::endpoint(row)?;
        if let Some(t) = &filter.event_type {
            if !filter_matches(&ep.event_types, t) {
                continue;
            }
        }
        matching += 1;
        if matching <= skip {
            continue;
        }
        if items.len() == page.limit {
            let next_after = items.last().map(|e| e.id.clone());
            return Ok(Listing { items, next_after });
        }
        items.push(ep);
    }
    Ok(Listing {
        items,
        next_after: None,
    })
}

pub async fn update_endpoint(c: &impl GenericClient, ep: &EndpointRecord) -> StoreResult<()> {
    if !ep.disabled {
        // Enabling a disabled endpoint starts its health afresh (a closed breaker).
        c.execute(crate::sql::RESET_ON_ENABLE, &[&ep.id, &ep.tenant_id, &true])
            .await
            .map_err(pg_error)?;
    }
    let changed = c
        .execute(
            crate::sql::UPDATE_ENDPOINT,
            &[
                &ep.url,
                &json(&ep.event_types),
                &json(&ep.headers),
                &json(&ep.retry_policy),
                &i64::from(ep.timeout_ms),
                &ep.rate_limit_per_s.map(i64::from),
                &i64::from(ep.max_in_flight),
                &ep.disabled,
                &ep.description,
                &json(&ep.metadata),
                &ep.updated_ms,
                &ep.id,
                &ep.tenant_id,
            ],
        )
        .await
        .map_err(pg_error)?;
    if changed == 0 {
        return Err(StoreError::NotFound("endpoint"));
    }
    if !ep.disabled {
        let woken = c
            .execute(
                "UPDATE deliveries SET due_ms = $2, updated_ms = $2 \
                 WHERE endpoint_id = $1 AND status IN ('pending', 'retrying') AND due_ms IS NULL",
                &[&ep.id, &ep.updated_ms],
            )
            .await
            .map_err(pg_error)?;
        if woken > 0 {
            notify_work(c).await?;
        }
    }
    Ok(())
}

/// Replace (or, with `previous_until`, rotate) an endpoint's signing secret.
pub async fn set_endpoint_secret(
    c: &impl GenericClient,
    tenant_id: &str,
    id: &str,
    secret: &str,
    previous_until: Option<i64>,
    now_ms: i64,
) -> StoreResult<EndpointRecord> {
    let changed = match previous_until {
        Some(until) => c
            .execute(
                crate::sql::ROTATE_ENDPOINT_SECRET,
                &[&until, &secret, &now_ms, &id, &tenant_id],
            )
            .await
            .map_err(pg_error)?,
        None => c
            .execute(
                crate::sql::SET_ENDPOINT_SECRET,
                &[&secret, &now_ms, &id, &tenant_id],
            )
            .await
            .map_err(pg_error)?,
    };
    if changed == 0 {
        return Err(StoreError::NotFound("endpoint"));
    }
    get_endpoint(c, tenant_id, id).await
}

pub async fn recover_endpoint(
    c: &impl GenericClient,
    tenant_id: &str,
    id: &str,
    since_ms: i64,
    now_ms: i64,
) -> StoreResult<u64> {
    get_endpoint(c, tenant_id, id).await?;
    let recovered = c
        .execute(
            crate::sql::RECOVER_ENDPOINT,
            &[
                &now_ms,
                &id,
                &tenant_id,
                &since_ms,
                &crate::sql::RECOVER_LIMIT,
            ],
        )
        .await
        .map_err(pg_error)?;
    if recovered > 0 {
        notify_work(c).await?;
    }
    Ok(recovered)
}

pub async fn delete_endpoint(
    c: &impl GenericClient,
    tenant_id: &str,
    id: &str,
    now_ms: i64,
) -> StoreResult<()> {
    let deleted = c
        .execute(
            "DELETE FROM endpoints WHERE id = $1 AND tenant_id = $2",
            &[&id, &tenant_id],
        )
        .await
        .map_err(pg_error)?;
    if deleted == 0 {
        return Err(StoreError::NotFound("endpoint"));
    }
    c.execute(
        "UPDATE deliveries SET status = 'cancelled', due_ms = NULL, lease_owner = NULL, \
         last_error = 'endpoint deleted', updated_ms = $2 \
         WHERE endpoint_id = $1 AND status IN ('pending', 'retrying', 'in_progress')",
        &[&id, &now_ms],
    )
    .await
    .map_err(pg_error)?;
    c.execute(crate::sql::FORGET_DISPATCH_KEY, &[&id])
        .await
        .map_err(pg_error)?;
    c.execute(crate::sql::FORGET_KEY_PACING, &[&id])
        .await
        .map_err(pg_error)?;
    Ok(())
}

/// Notify `$1` (a channel) with an empty payload; [`NOTIFY_PARAMS`] names the work channel.
pub const NOTIFY_WORK: &str = "SELECT pg_notify($1, '')";

/// The parameters of [`NOTIFY_WORK`] that wake nodes for due work.
pub const NOTIFY_PARAMS: &[&(dyn tokio_postgres::types::ToSql + Sync)] = &[&WORK_CHANNEL];

/// Tell listening nodes that work may be due (delivered when the surrounding transaction commits).
pub async fn notify_work(c: &impl GenericClient) -> StoreResult<()> {
    // Prepared once per connection: a statement given as text costs a round trip of its own to prepare.
    let stmt = c.prepare_cached(NOTIFY_WORK).await.map_err(pg_error)?;
    c.execute(&stmt, NOTIFY_PARAMS).await.map_err(pg_error)?;
    Ok(())
}

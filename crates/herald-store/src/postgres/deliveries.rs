//! The status API's queries and the operator's actions on PostgreSQL.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::endpoints::notify_work;
use super::pg_error;
use super::rows;
use crate::error::{StoreError, StoreResult};
use crate::model::{AttemptRecord, DeliveryRecord, EventRecord};
use crate::query::{DeliveryFilter, Listing, Page};
use crate::sql;
use crate::sql::{ATTEMPT_COLUMNS, DELIVERY_COLUMNS, EVENT_COLUMNS};

pub async fn get_event(
    c: &impl GenericClient,
    tenant_id: &str,
    id: &str,
) -> StoreResult<EventRecord> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1 AND tenant_id = $2");
    let stmt = c.prepare_cached(&sql).await.map_err(pg_error)?;
    let row = c
        .query_opt(&stmt, &[&id, &tenant_id])
        .await
        .map_err(pg_error)?
        .ok_or(StoreError::NotFound("event"))?;
    rows::event(&row)
}

pub async fn get_delivery(
    c: &impl GenericClient,
    tenant_id: &str,
    id: &str,
) -> StoreResult<DeliveryRecord> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1 AND tenant_id = $2");
    let stmt = c.prepare_cached(&sql).await.map_err(pg_error)?;
    let row = c
        .query_opt(&stmt, &[&id, &tenant_id])
        .await
        .map_err(pg_error)?
        .ok_or(StoreError::NotFound("delivery"))?;
    rows::delivery(&row)
}

pub async fn list_attempts(
    c: &impl GenericClient,
    tenant_id: &str,
    id: &str,
) -> StoreResult<Vec<AttemptRecord>> {
    get_delivery(c, tenant_id, id).await?;
    let sql =
        format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = $1 ORDER BY number");
    c.query(sql.as_str(), &[&id])
        .await
        .map_err(pg_error)?
        .iter()
        .map(rows::attempt)
        .collect()
}

/// A filter as SQL text with numbered placeholders and its values.
struct Where {
    sql: String,
    args: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Where {
    fn new(tenant_id: &str, filter: &DeliveryFilter) -> Where {
        let mut w = Where {
            sql: String::new(),
            args: Vec::new(),
        };
        w.push("tenant_id =", Box::new(tenant_id.to_string()));
        if let Some(status) = filter.status {
            w.push("status =", Box::new(status.as_str().to_string()));
        }
        for (column, value) in [
            ("endpoint_id =", &filter.endpoint_id),
            ("event_id =", &filter.event_id),
            ("correlation_id =", &filter.correlation_id),
            ("reference_id =", &filter.reference_id),
        ] {
            if let Some(v) = value {
                w.push(column, Box::new(v.clone()));
            }
        }
        if let Some(before) = filter.updated_before_ms {
            w.push("updated_ms <", Box::new(before));
        }
        if filter.finished_only {
            w.sql
                .push_str(" AND status IN ('delivered', 'failed', 'cancelled')");
        }
        w
    }

    fn push(&mut self, condition: &str, value: Box<dyn ToSql + Sync + Send>) {
        if !self.sql.is_empty() {
            self.sql.push_str(" AND ");
        }
        self.args.push(value);
        self.sql
            .push_str(&format!("{condition} ${}", self.args.len()));
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

pub async fn list_deliveries(
    c: &impl GenericClient,
    tenant_id: &str,
    filter: &DeliveryFilter,
    page: &Page,
) -> StoreResult<Listing<DeliveryRecord>> {
    let mut w = Where::new(tenant_id, filter);
    if let Some(after) = &page.after {
        w.push("id <", Box::new(after.clone()));
    }
    let offset = if page.after.is_some() {
        0
    } else {
        page.offset as i64
    };
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {} ORDER BY id DESC LIMIT {} OFFSET {}",
        w.sql,
        page.limit as i64 + 1,
        offset
    );
    let found = c.query(sql.as_str(), &w.params()).await.map_err(pg_error)?;
    let mut items = found
        .iter()
        .map(rows::delivery)
        .collect::<StoreResult<Vec<_>>>()?;
    let next_after = if items.len() > page.limit {
        items.truncate(page.limit);
        items.last().map(|d| d.id.clone())
    } else {
        None
    };
    Ok(Listing { items, next_after })
}

pub async fn count_deliveries(
    c: &impl GenericClient,
    tenant_id: &str,
    filter: &DeliveryFilter,
) -> StoreResult<u64> {
    let w = Where::new(tenant_id, filter);
    let sql = format!("SELECT COUNT(*) FROM deliveries WHERE {}", w.sql);
    let count: i64 = c
        .query_one(sql.as_str(), &w.params())
        .await
        .map_err(pg_error)?
        .get(0);
    Ok(count as u64)
}

pub async fn retry_delivery(
    c: &impl GenericClient,
    tenant_id: &str,
    id: &str,
    now_ms: i64,
) -> StoreResult<DeliveryRecord> {
    let changed = c
        .execute(sql::RETRY_DELIVERY, &[&now_ms, &id, &tenant_id])
        .await
        .map_err(pg_error)?;
    if changed == 0 {
        let current = get_delivery(c, tenant_id, id).await?;
        return Err(StoreError::Conflict(format!(
            "delivery is {}; it can be retried once the attempt in flight ends",
            current.status.as_str()
        )));
    }
    notify_work(c).await?;
    get_delivery(c, tenant_id, id).await
}

pub async fn cancel_delivery(
    c: &impl GenericClient,
    tenant_id: &str,
    id: &str,
    now_ms: i64,
) -> StoreResult<DeliveryRecord> {
    let changed = c
        .execute(sql::CANCEL_DELIVERY, &[&now_ms, &id, &tenant_id])
        .await
        .map_err(pg_error)?;
    if changed == 0 {
        let current = get_delivery(c, tenant_id, id).await?;
        return Err(StoreError::Conflict(format!(
            "delivery is already {}; only unfinished deliveries can be cancelled",
            current.status.as_str()
        )));
    }
    get_delivery(c, tenant_id, id).await
}

pub async fn delete_delivery(c: &impl GenericClient, tenant_id: &str, id: &str) -> StoreResult<()> {
    let deleted = c
        .execute(
            "DELETE FROM deliveries WHERE id = $1 AND tenant_id = $2",
            &[&id, &tenant_id],
        )
        .await
        .map_err(pg_error)?;
    if deleted == 0 {
        return Err(StoreError::NotFound("delivery"));
    }
    c.execute("DELETE FROM attempts WHERE delivery_id = $1", &[&id])
        .await
        .map_err(pg_error)?;
    Ok(())
}

pub async fn delete_deliveries(
    c: &impl GenericClient,
    tenant_id: &str,
    filter: &DeliveryFilter,
) -> StoreResult<u64> {
    let w = Where::new(tenant_id, filter);
    let sql = format!(
        "WITH gone AS (DELETE FROM deliveries WHERE {} AND status <> 'in_progress' RETURNING id), \
         attempts_gone AS (DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM gone)) \
         SELECT COUNT(*) FROM gone",
        w.sql
    );
    let count: i64 = c
        .query_one(sql.as_str(), &w.params())
        .await
        .map_err(pg_error)?
        .get(0);
    Ok(count as u64)
}

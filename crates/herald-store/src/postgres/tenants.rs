//! Tenants and their API tokens.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{pg_error, rows};
use crate::error::{StoreError, StoreResult};
use crate::model::{TenantRecord, TokenRecord};
use crate::sql;

/// A tenant and its first token (named `initial`); `c` should be a transaction.
pub async fn create_tenant(
    c: &impl GenericClient,
    id: &str,
    token_sha256: &str,
    now_ms: i64,
) -> StoreResult<TenantRecord> {
    let inserted = c
        .execute(
            "INSERT INTO tenants (id, token_sha256, created_ms) VALUES ($1, NULL, $2) ON CONFLICT DO NOTHING",
            &[&id, &now_ms],
        )
        .await
        .map_err(pg_error)?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!("tenant {id} already exists")));
    }
    insert_token(c, &TokenRecord::initial(id, token_sha256, now_ms)).await?;
    Ok(TenantRecord {
        id: id.to_string(),
        created_ms: now_ms,
    })
}

pub async fn tenant_by_token(
    c: &impl GenericClient,
    token_sha256: &str,
) -> StoreResult<Option<TenantRecord>> {
    let stmt = c
        .prepare_cached(sql::TENANT_BY_TOKEN)
        .await
        .map_err(pg_error)?;
    c.query_opt(&stmt, &[&token_sha256])
        .await
        .map_err(pg_error)?
        .as_ref()
        .map(rows::tenant)
        .transpose()
}

pub async fn get_tenant(c: &impl GenericClient, id: &str) -> StoreResult<TenantRecord> {
    let stmt = c
        .prepare_cached("SELECT id, created_ms FROM tenants WHERE id = $1")
        .await
        .map_err(pg_error)?;
    let row = c
        .query_opt(&stmt, &[&id])
        .await
        .map_err(pg_error)?
        .ok_or(StoreError::NotFound("tenant"))?;
    rows::tenant(&row)
}

pub async fn list_tenants(c: &impl GenericClient) -> StoreResult<Vec<TenantRecord>> {
    let found = c
        .query(
            "SELECT id, created_ms FROM tenants ORDER BY created_ms, id",
            &[],
        )
        .await
        .map_err(pg_error)?;
    found.iter().map(rows::tenant).collect()
}

fn token(row: &Row) -> StoreResult<TokenRecord> {
    let get = |e: tokio_postgres::Error| StoreError::Internal(format!("malformed token row: {e}"));
    Ok(TokenRecord {
        id: row.try_get(0).map_err(get)?,
        tenant_id: row.try_get(1).map_err(get)?,
        token_sha256: row.try_get(2).map_err(get)?,
        name: row.try_get(3).map_err(get)?,
        created_ms: row.try_get(4).map_err(get)?,
        revoked_ms: row.try_get(5).map_err(get)?,
    })
}

/// Store a token of an existing tenant.
pub async fn insert_token(c: &impl GenericClient, t: &TokenRecord) -> StoreResult<()> {
    get_tenant(c, &t.tenant_id).await?;
    c.execute(
        sql::INSERT_TOKEN,
        &[&t.id, &t.tenant_id, &t.token_sha256, &t.name, &t.created_ms],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

pub async fn list_tokens(c: &impl GenericClient, tenant_id: &str) -> StoreResult<Vec<TokenRecord>> {
    get_tenant(c, tenant_id).await?;
    let found = c
        .query(sql::LIST_TOKENS, &[&tenant_id])
        .await
        .map_err(pg_error)?;
    found.iter().map(token).collect()
}

pub async fn get_token(
    c: &impl GenericClient,
    tenant_id: &str,
    id: &str,
) -> StoreResult<TokenRecord> {
    let row = c
        .query_opt(sql::GET_TOKEN, &[&id, &tenant_id])
        .await
        .map_err(pg_error)?
        .ok_or(StoreError::NotFound("token"))?;
    token(&row)
}

/// Revoke a token (a revoked one stays as it is); returns it.
pub async fn revoke_token(
    c: &impl GenericClient,
    tenant_id: &str,
    id: &str,
    now_ms: i64,
) -> StoreResult<TokenRecord> {
    c.execute(sql::REVOKE_TOKEN, &[&now_ms, &id, &tenant_id])
        .await
        .map_err(pg_error)?;
    get_token(c, tenant_id, id).await
}

/// Revoke an unrevoked token and store its replacement; `c` should be a transaction.
pub async fn rotate_token(
    c: &impl GenericClient,
    tenant_id: &str,
    id: &str,
    replacement: &TokenRecord,
    now_ms: i64,
) -> StoreResult<TokenRecord> {
    let revoked = c
        .execute(sql::REVOKE_TOKEN, &[&now_ms, &id, &tenant_id])
        .await
        .map_err(pg_error)?;
    if revoked == 0 {
        get_token(c, tenant_id, id).await?;
        return Err(StoreError::Conflict(format!(
            "token {id} is already revoked"
        )));
    }
    insert_token(c, replacement).await?;
    Ok(replacement.clone())
}

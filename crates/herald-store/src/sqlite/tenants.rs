//! Tenants and their API tokens.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::rows;
use crate::error::{StoreError, StoreResult};
use crate::model::{TenantRecord, TokenRecord};
use crate::sql;

/// A tenant and its first token (named `initial`), in the caller's transaction.
pub fn create_tenant(
    conn: &Connection,
    id: &str,
    token_sha256: &str,
    now_ms: i64,
) -> StoreResult<TenantRecord> {
    let inserted = conn.execute(
        "INSERT OR IGNORE INTO tenants (id, token_sha256, created_ms) VALUES (?1, NULL, ?2)",
        params![id, now_ms],
    )?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!("tenant {id} already exists")));
    }
    insert_token(conn, &TokenRecord::initial(id, token_sha256, now_ms))?;
    Ok(TenantRecord {
        id: id.to_string(),
        created_ms: now_ms,
    })
}

pub fn tenant_by_token(conn: &Connection, token_sha256: &str) -> StoreResult<Option<TenantRecord>> {
    Ok(conn
        .prepare_cached(sql::TENANT_BY_TOKEN)?
        .query_row([token_sha256], rows::tenant)
        .optional()?)
}

pub fn get_tenant(conn: &Connection, id: &str) -> StoreResult<TenantRecord> {
    conn.prepare_cached("SELECT id, created_ms FROM tenants WHERE id = ?1")?
        .query_row([id], rows::tenant)
        .optional()?
        .ok_or(StoreError::NotFound("tenant"))
}

pub fn list_tenants(conn: &Connection) -> StoreResult<Vec<TenantRecord>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, created_ms FROM tenants ORDER BY created_ms, id")?;
    let tenants = stmt
        .query_map([], rows::tenant)?
        .collect::<Result<_, _>>()?;
    Ok(tenants)
}

fn token(row: &Row) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        token_sha256: row.get(2)?,
        name: row.get(3)?,
        created_ms: row.get(4)?,
        revoked_ms: row.get(5)?,
    })
}

/// Store a token of an existing tenant.
pub fn insert_token(conn: &Connection, t: &TokenRecord) -> StoreResult<()> {
    get_tenant(conn, &t.tenant_id)?;
    conn.prepare_cached(sql::INSERT_TOKEN)?.execute(params![
        t.id,
        t.tenant_id,
        t.token_sha256,
        t.name,
        t.created_ms
    ])?;
    Ok(())
}

pub fn list_tokens(conn: &Connection, tenant_id: &str) -> StoreResult<Vec<TokenRecord>> {
    get_tenant(conn, tenant_id)?;
    let tokens = conn
        .prepare_cached(sql::LIST_TOKENS)?
        .query_map([tenant_id], token)?
        .collect::<Result<_, _>>()?;
    Ok(tokens)
}

pub fn get_token(conn: &Connection, tenant_id: &str, id: &str) -> StoreResult<TokenRecord> {
    conn.prepare_cached(sql::GET_TOKEN)?
        .query_row([id, tenant_id], token)
        .optional()?
        .ok_or(StoreError::NotFound("token"))
}

/// Revoke a token (a revoked one stays as it is); returns it.
pub fn revoke_token(
    conn: &Connection,
    tenant_id: &str,
    id: &str,
    now_ms: i64,
) -> StoreResult<TokenRecord> {
    conn.prepare_cached(sql::REVOKE_TOKEN)?
        .execute(params![now_ms, id, tenant_id])?;
    get_token(conn, tenant_id, id)
}

/// Revoke an unrevoked token and store its replacement, in the caller's transaction.
pub fn rotate_token(
    conn: &Connection,
    tenant_id: &str,
    id: &str,
    replacement: &TokenRecord,
    now_ms: i64,
) -> StoreResult<TokenRecord> {
    let revoked = conn
        .prepare_cached(sql::REVOKE_TOKEN)?
        .execute(params![now_ms, id, tenant_id])?;
    if revoked == 0 {
        get_token(conn, tenant_id, id)?;
        return Err(StoreError::Conflict(format!(
            "token {id} is already revoked"
        )));
    }
    insert_token(conn, replacement)?;
    Ok(replacement.clone())
}

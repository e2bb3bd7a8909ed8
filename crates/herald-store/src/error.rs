//! Errors a store operation can end with.

/// Why a store operation failed. `NotFound` and `Conflict` are expected outcomes the API maps to 404 and 409;
/// `Unavailable` means the database could not be reached (503); `Internal` is a bug or a corrupt database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist (or belongs to another tenant).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The operation does not fit the record's current state.
    #[error("{0}")]
    Conflict(String),
    /// The database is unreachable or overloaded; the caller may retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database refused a value it cannot hold (a NUL character in text, a number out of range). Input
    /// is checked before it reaches the store, so this is a gap in that checking, reported as bad input.
    #[error("value refused by the database: {0}")]
    Invalid(String),
    /// Anything else: a failed query, a malformed stored value.
    #[error("store error: {0}")]
    Internal(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::Conflict(format!("already exists: {e}"))
            }
            _ => StoreError::Internal(e.to_string()),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Internal(format!("stored JSON is malformed: {e}"))
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

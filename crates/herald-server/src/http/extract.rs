//! Request extractors whose failures are [`ApiError`]s: JSON bodies (400 malformed, 413 too large, 422 naming
//! the field) and query strings (400).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::app::AppState;

/// A JSON body deserialized into `T`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The raw body, size-checked.
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        read_body(req, state).await.map(RawBody)
    }
}

async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let limit = state.config.max_payload_bytes;
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(limit)
        } else {
            ApiError::bad_request("unreadable_body", rejection.body_text())
        }
    })
}

/// Fields that hold the client's own JSON, stored as JSON text: a NUL escape inside them is kept as written.
const FREE_FORM_FIELDS: &[&str] = &["payload", "metadata", "progress", "result", "error", "data"];

/// Deserialize JSON, telling syntax errors (400) from shape errors (422 with the field's path). A NUL
/// character in any string outside the free-form fields is refused (422): no store can keep it in text.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.windows(6).any(|w| w == b"\\u0000") {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
            if let Some(field) = nul_field(&value, "") {
                return Err(ApiError::invalid(field, "must not contain NUL characters"));
            }
        }
    }
    parse_free_form_json(bytes)
}

/// [`parse_json`] for bodies whose every field is the client's own JSON (kept as written, NUL escapes
/// included), such as a job's result: `T` may borrow from `bytes`.
pub fn parse_free_form_json<'de, T: serde::Deserialize<'de>>(
    bytes: &'de [u8],
) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson("the body is empty".into()));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if path == "." {
                    missing_field(&inner.to_string())
                } else {
                    path
                };
                ApiError::invalid(field, strip_position(&inner.to_string()))
            }
            _ => ApiError::MalformedJson(inner.to_string()),
        }
    })
}

/// The dotted path of the first string (or object key) holding a NUL, outside the free-form fields.
fn nul_field(value: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(if path.is_empty() {
            "body".into()
        } else {
            path.into()
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_field(v, &join(&i.to_string()))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join(&k.replace('\0', "\\u0000")))
            } else if FREE_FORM_FIELDS.contains(&k.as_str()) {
                None
            } else {
                nul_field(v, &join(k))
            }
        }),
        _ => None,
    }
}

/// serde reports a missing field at the parent's path; take the name from the message instead.
fn missing_field(message: &str) -> String {
    message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("missing field") || message.starts_with("unknown field"))
        .unwrap_or("body")
        .to_string()
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Path parameters deserialized into `T`; a segment that is not valid UTF-8 or does not fit answers 400 (as
/// JSON, like every other error).
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|e| {
                ApiError::bad_request("invalid_path", format!("invalid path: {}", e.body_text()))
            })
    }
}

/// Middleware: refuse a request whose path or query encodes a NUL character (`%00`), which no id, name or
/// filter may contain and no store can hold in text.
pub async fn refuse_nul(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("");
    let has_nul = target
        .as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0');
    if has_nul {
        return ApiError::bad_request(
            "invalid_request",
            "the path and query must not contain NUL characters (%00)",
        )
        .into_response();
    }
    next.run(req).await
}

/// A query string deserialized into `T`; bad values answer 400.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded_query(query).map(QueryParams)
    }
}

fn serde_urlencoded_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| bad_query("unparseable"))?,
    )
    .map(|q| q.0)
    .map_err(|e| bad_query(&e.body_text()))
}

fn bad_query(message: &str) -> ApiError {
    ApiError::bad_request("invalid_query", format!("invalid query string: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        url: String,
        timeout_ms: Option<u32>,
    }

    #[test]
    fn nul_characters_are_refused_outside_free_form_fields() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Input {
            description: Option<String>,
            tags: Option<Vec<String>>,
            payload: Option<serde_json::Value>,
        }
        let field = |body: &str| match parse_json::<Input>(body.as_bytes()) {
            Err(ApiError::Validation { field, .. }) => Some(field),
            Ok(_) => None,
            Err(other) => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            field(r#"{"description": "a\u0000b"}"#).as_deref(),
            Some("description")
        );
        assert_eq!(
            field(r#"{"tags": ["ok", "\u0000"]}"#).as_deref(),
            Some("tags.1")
        );
        assert_eq!(field(r#"{"payload": {"x": "\u0000"}}"#), None);
        assert_eq!(field(r#"{"description": "\\u0000 is fine escaped"}"#), None);
    }

    #[test]
    fn json_errors_are_classified() {
        assert!(matches!(
            parse_json::<Body>(b"{"),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse_json::<Body>(b""),
            Err(ApiError::MalformedJson(_))
        ));
        let check = |body: &[u8], want: &str| match parse_json::<Body>(body) {
            Err(ApiError::Validation { field, .. }) => assert_eq!(field, want),
            other => panic!("expected a validation error, got {other:?}"),
        };
        check(b"{}", "url");
        check(br#"{"url": 5}"#, "url");
        check(br#"{"url": "x", "timeout_ms": "soon"}"#, "timeout_ms");
        check(br#"{"url": "x", "colour": 1}"#, "colour");
    }
}

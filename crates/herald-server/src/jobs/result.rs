//! A job's outcome as JSON text, without copies of large data: a worker's result is a slice of its request
//! body, and a gateway answer keeps the upstream body once and writes the JSON around it straight into the
//! compressor (or a string, when it is small enough to stay inline).

use std::io::Write;

use bytes::Bytes;
use serde_json::Value;

use herald_core::envelope::storable_text;

/// Bytes of an upstream body kept in a failed job's error (errors stay inline, never offloaded).
const ERROR_BODY_BYTES: usize = 64 * 1024;

/// How a job ended: `Ok` succeeds it with a result, `Err` fails it with an error; both are JSON.
pub type JobOutcome = Result<ResultJson, ResultJson>;

/// JSON text of a result or error.
#[derive(Debug, Clone)]
pub enum ResultJson {
    /// A JSON value, already encoded.
    Text(String),
    /// Valid JSON text held in shared bytes (a slice of the request that carried it).
    Raw(Bytes),
    /// An upstream answer: `{"status", "headers", "body"}`; the body is embedded as JSON when it is valid
    /// JSON, else as a string.
    Upstream(Upstream),
}

/// An upstream answer, as the gateway received it.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// HTTP status.
    pub status: u16,
    /// Response headers that are text.
    pub headers: serde_json::Map<String, Value>,
    /// The body as received.
    pub body: Bytes,
}

impl ResultJson {
    /// The JSON encoding of `value`.
    pub fn of(value: &Value) -> ResultJson {
        ResultJson::Text(value.to_string())
    }

    /// About how many bytes the JSON text has (exact for text and raw JSON).
    pub fn len(&self) -> usize {
        match self {
            ResultJson::Text(t) => t.len(),
            ResultJson::Raw(b) => b.len(),
            ResultJson::Upstream(u) => u.body.len() + 64 + u.headers.len() * 48,
        }
    }

    /// Whether the text is empty (it never is for a valid value).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Write the JSON text to `out`.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        match self {
            ResultJson::Text(t) => out.write_all(t.as_bytes()),
            ResultJson::Raw(b) => out.write_all(b),
            ResultJson::Upstream(u) => {
                write!(out, "{{\"status\":{},\"headers\":", u.status)?;
                serde_json::to_writer(&mut *out, &u.headers)?;
                out.write_all(b",\"body\":")?;
                if is_json(&u.body) {
                    out.write_all(&u.body)?;
                } else {
                    serde_json::to_writer(&mut *out, &String::from_utf8_lossy(&u.body))?;
                }
                out.write_all(b"}")
            }
        }
    }

    /// The JSON text as a string.
    pub fn into_string(self) -> String {
        match self {
            ResultJson::Text(t) => t,
            other => {
                let mut out = Vec::with_capacity(other.len());
                other
                    .write_to(&mut out)
                    .expect("writing to memory cannot fail");
                // Every variant writes valid JSON, which is UTF-8.
                String::from_utf8(out)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
            }
        }
    }
}

impl Upstream {
    /// The job's error for this answer (a non-2xx): the answer with `kind` and `message`, and at most
    /// 64 KiB of the body, as text.
    pub fn into_error(self) -> ResultJson {
        let body = if self.body.len() > ERROR_BODY_BYTES || !is_json(&self.body) {
            Value::String(storable_text(&self.body, ERROR_BODY_BYTES))
        } else {
            serde_json::from_slice(&self.body).unwrap_or(Value::Null)
        };
        ResultJson::of(&serde_json::json!({
            "status": self.status,
            "headers": self.headers,
            "body": body,
            "kind": "upstream_status",
            "message": format!("the upstream answered {}", self.status),
        }))
    }
}

/// Whether `bytes` is one valid JSON value (checked without building it).
fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(body: &'static [u8]) -> Upstream {
        let mut headers = serde_json::Map::new();
        headers.insert("content-type".into(), "application/json".into());
        Upstream {
            status: 201,
            headers,
            body: Bytes::from_static(body),
        }
    }

    #[test]
    fn upstream_answers_embed_json_bodies_and_quote_the_rest() {
        let json: Value = serde_json::from_str(
            &ResultJson::Upstream(upstream(br#"{"a": [1, 2]}"#)).into_string(),
        )
        .unwrap();
        assert_eq!(json["status"], 201);
        assert_eq!(json["body"]["a"][1], 2);
        assert_eq!(json["headers"]["content-type"], "application/json");
        let text: Value =
            serde_json::from_str(&ResultJson::Upstream(upstream(b"plain \xff text")).into_string())
                .unwrap();
        assert_eq!(text["body"], "plain \u{FFFD} text");
    }

    #[test]
    fn errors_keep_at_most_64_kib_of_the_body() {
        let mut big = upstream(b"");
        big.status = 500;
        big.body = Bytes::from(vec![b'x'; 100_000]);
        let error: Value = serde_json::from_str(&big.into_error().into_string()).unwrap();
        assert_eq!(error["kind"], "upstream_status");
        assert_eq!(error["body"].as_str().unwrap().len(), ERROR_BODY_BYTES);
    }
}

//! The proxy call of the async gateway (seed 001): forward the client's request to the route's upstream and
//! turn whatever comes back (status, headers, body) or fails (timeout, connection) into the job's outcome.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// Largest upstream answer kept (bigger results are offloaded to the blob store, not refused).
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// Headers that describe one hop, not the message: never forwarded (RFC 9110 §7.6.1), plus the client's
/// credentials for Herald itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "authorization",
    "x-herald-tenant",
    "prefer",
];

/// What the gateway sends upstream.
pub struct UpstreamRequest {
    /// HTTP method.
    pub method: Method,
    /// Full URL (route URL + path rest + query).
    pub url: String,
    /// End-to-end headers of the client's request.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
}

/// How the upstream call ended: the job succeeds with `Ok` (a 2xx) and fails with `Err`, both as JSON.
pub type UpstreamOutcome = Result<Value, Value>;

/// Client for upstream calls (any method, full response body).
pub struct UpstreamClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Default for UpstreamClient {
    fn default() -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        UpstreamClient {
            http: Client::builder(TokioExecutor::new()).build(https),
        }
    }
}

/// The end-to-end headers of `incoming`, ready to forward.
pub fn forwardable(incoming: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in incoming {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

fn body_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

impl UpstreamClient {
    /// Call the upstream with `extra` headers (correlation id, callback URL, service-user auth) on top.
    pub async fn call(
        &self,
        req: UpstreamRequest,
        extra: Vec<(HeaderName, HeaderValue)>,
        timeout: Duration,
    ) -> UpstreamOutcome {
        let mut builder = Request::builder().method(req.method).uri(&req.url);
        if let Some(headers) = builder.headers_mut() {
            headers.extend(req.headers);
            for (name, value) in extra {
                headers.insert(name, value);
            }
        }
        let request = builder
            .body(Full::new(req.body))
            .map_err(|e| json!({"kind": "invalid_request", "message": e.to_string()}))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| json!({"kind": "connect", "message": format!("cannot reach the upstream: {e}")}))?;
            let status = response.status().as_u16();
            let headers: serde_json::Map<String, Value> = response
                .headers()
                .iter()
                .filter_map(|(k, v)| {
                    v.to_str()
                        .ok()
                        .map(|v| (k.to_string(), Value::String(v.to_string())))
                })
                .collect();
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| json!({"kind": "invalid_response", "message": e.to_string()}))?
                .to_bytes();
            Ok::<_, Value>((status, headers, body))
        };
        let timeout_ms = timeout.as_millis() as u64;
        let (status, headers, body) = tokio::time::timeout(timeout, exchange).await.map_err(|_| {
            json!({"kind": "timeout", "message": format!("the upstream did not answer within {timeout_ms} ms")})
        })??;
        let answer = json!({"status": status, "headers": headers, "body": body_value(&body)});
        if (200..300).contains(&status) {
            Ok(answer)
        } else {
            let mut error = answer;
            error["kind"] = json!("upstream_status");
            error["message"] = json!(format!("the upstream answered {status}"));
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_credentials_stay_behind() {
        let mut incoming = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer herald"),
            ("connection", "close"),
            ("x-app", "1"),
            ("callback-url", "http://cb"),
        ] {
            incoming.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let out = forwardable(&incoming);
        assert!(out.get("authorization").is_none() && out.get("connection").is_none());
        assert_eq!(out.get("x-app").unwrap(), "1");
        assert_eq!(out.get("callback-url").unwrap(), "http://cb");
    }
}

//! The proxy call of the async gateway (seed 001): forward the client's request to the route's upstream and
//! turn whatever comes back (status, headers, body) or fails (timeout, connection) into the job's outcome.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request};
use serde_json::{json, Value};

use herald_core::url_policy::TargetUrl;

use super::result::{JobOutcome, ResultJson, Upstream};
use crate::outbound::{read_capped, ClientOptions, GuardedClient, Outbound, OutboundError};

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

/// Client for upstream calls (any method, full response body), from the node's guarded outbound layer.
pub struct UpstreamClient {
    http: GuardedClient,
    max_bytes: usize,
}

impl UpstreamClient {
    /// A client whose calls are held to `outbound`'s URL policy and read at most `max_bytes` of an answer
    /// (a larger one fails the job as `too_large`).
    pub fn new(outbound: &Outbound, max_bytes: usize) -> UpstreamClient {
        UpstreamClient {
            http: outbound.client(ClientOptions::default()),
            max_bytes,
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

/// The upstream URL for a gateway call: the route's URL, the rest of the request path as sent (still
/// percent-encoded), and the query. The rest can never leave the route's base path: dot segments (plain or
/// encoded), encoded slashes and backslashes are refused, and the normalized result must still lie under
/// the base.
pub fn upstream_url(base: &str, raw_rest: &str, query: Option<&str>) -> Result<String, String> {
    for segment in raw_rest.split('/') {
        let lower = segment.to_ascii_lowercase();
        if lower.contains("%2f") || lower.contains("%5c") || lower.contains('\\') {
            return Err("the path must not contain encoded slashes or backslashes".into());
        }
        let dots = lower.replace("%2e", ".");
        if dots == "." || dots == ".." {
            return Err("the path must not contain . or .. segments".into());
        }
    }
    let mut url = base.trim_end_matches('/').to_string();
    if !raw_rest.is_empty() {
        url.push('/');
        url.push_str(raw_rest);
    }
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    let parsed = TargetUrl::parse(&url).map_err(|e| e.to_string())?;
    let base_path = TargetUrl::parse(base).map_err(|e| e.to_string())?;
    let base_path = base_path.as_url().path().trim_end_matches('/');
    let path = parsed.as_url().path();
    let inside = path == base_path
        || path.starts_with(&format!("{base_path}/"))
        || (base_path.is_empty() && path.starts_with('/'));
    if !inside {
        return Err("the path leaves the route's base path".into());
    }
    Ok(url)
}

impl UpstreamClient {
    /// Call the upstream with `extra` headers (correlation id, callback URL, service-user auth) on top.
    /// Returns the upstream's status, if it answered, and the job's outcome.
    pub async fn call(
        &self,
        req: UpstreamRequest,
        extra: Vec<(HeaderName, HeaderValue)>,
        timeout: Duration,
    ) -> (Option<u16>, JobOutcome) {
        let fail = |kind: &str, message: String| {
            ResultJson::of(&json!({"kind": kind, "message": message}))
        };
        let mut builder = Request::builder().method(req.method).uri(&req.url);
        if let Some(headers) = builder.headers_mut() {
            headers.extend(req.headers);
            for (name, value) in extra {
                headers.insert(name, value);
            }
        }
        let request = match builder.body(Full::new(req.body)) {
            Ok(request) => request,
            Err(e) => return (None, Err(fail("invalid_request", e.to_string()))),
        };
        let max = self.max_bytes;
        let exchange = async {
            let response = match self.http.send(request).await {
                Ok(response) => response,
                Err(OutboundError::Blocked(m)) => {
                    return Err(fail("blocked", format!("the upstream is not allowed: {m}")))
                }
                Err(e) => return Err(fail("connect", format!("cannot reach the upstream: {e}"))),
            };
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
            match read_capped(response.into_body(), max).await {
                Ok((_, true)) => Err(fail(
                    "too_large",
                    format!("the upstream answered more than {max} bytes"),
                )),
                Ok((body, false)) => Ok(Upstream {
                    status,
                    headers,
                    body,
                }),
                Err(e) => Err(fail("invalid_response", e.to_string())),
            }
        };
        let timeout_ms = timeout.as_millis() as u64;
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => (
                None,
                Err(fail(
                    "timeout",
                    format!("the upstream did not answer within {timeout_ms} ms"),
                )),
            ),
            Ok(Err(failed)) => (None, Err(failed)),
            Ok(Ok(answer)) if (200..300).contains(&answer.status) => {
                (Some(answer.status), Ok(ResultJson::Upstream(answer)))
            }
            Ok(Ok(answer)) => (Some(answer.status), Err(answer.into_error())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_of_the_path_stays_under_the_route() {
        let base = "http://up.example/api/v1";
        assert_eq!(
            upstream_url(base, "orders/7", Some("a=1")).unwrap(),
            "http://up.example/api/v1/orders/7?a=1"
        );
        assert_eq!(upstream_url(base, "", None).unwrap(), base);
        assert_eq!(
            upstream_url("http://up.example/", "x%20y", None).unwrap(),
            "http://up.example/x%20y"
        );
        for hostile in [
            "..",
            "../admin",
            "a/../../admin",
            "%2e%2e/admin",
            ".%2E/admin",
            "a%2fb",
            "a%2F..%2Fadmin",
            "a%5c..",
            "a\\..\\b",
            "./x",
        ] {
            assert!(upstream_url(base, hostile, None).is_err(), "{hostile}");
        }
    }

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

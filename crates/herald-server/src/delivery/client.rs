//! The one pooled, keep-alive HTTP client every attempt goes through.
//!
//! - No redirects (hyper never follows them; a 3xx is just a status).
//! - SSRF guard at DNS resolution: [`GuardedResolver`] drops addresses the URL policy forbids, so a hostname
//!   that resolves (or re-resolves) to a private address cannot slip past a check made on the URL alone.
//!   IP-literal hosts never reach the resolver and are checked against the same policy before sending.
//! - The whole attempt (connect, request, first 64 KiB of the response) runs under the endpoint's timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use hyper::Request;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use herald_core::envelope::truncate_utf8;
use herald_core::retry::{AttemptOutcome, ErrorKind};
use herald_core::url_policy::{TargetUrl, UrlPolicy};

/// Bytes of the response body kept in the attempt log.
pub const KEPT_BODY_BYTES: usize = 4096;
/// Bytes of the response body read at most (reading lets the connection be reused).
const DRAINED_BODY_BYTES: usize = 64 * 1024;

/// Why a name did not resolve to a usable address.
#[derive(Debug, thiserror::Error)]
enum ResolveError {
    #[error("dns lookup failed: {0}")]
    Lookup(String),
    #[error("every address of the host is forbidden by the URL policy")]
    Blocked,
}

/// DNS resolution that filters addresses through the URL policy.
#[derive(Clone)]
pub struct GuardedResolver {
    policy: Arc<UrlPolicy>,
}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|e| std::io::Error::other(ResolveError::Lookup(e.to_string())))?;
            let allowed: Vec<SocketAddr> = found.filter(|a| policy.is_ip_allowed(a.ip())).collect();
            if allowed.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    ResolveError::Blocked,
                ));
            }
            Ok(allowed.into_iter())
        })
    }
}

/// What came back from one attempt.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Status (with `Retry-After`) or error kind.
    pub outcome: AttemptOutcome,
    /// First 4 KiB of the response body.
    pub response_body: Option<String>,
}

/// One request to send.
pub struct Outgoing<'a> {
    /// Target URL.
    pub url: &'a str,
    /// Body bytes.
    pub body: Bytes,
    /// Headers besides content-type and user-agent.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Attempt timeout.
    pub timeout: Duration,
}

type HttpsClient = Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>;

/// The shared delivery client.
pub struct DeliveryClient {
    http: HttpsClient,
    policy: Arc<UrlPolicy>,
    user_agent: HeaderValue,
}

impl DeliveryClient {
    /// A client enforcing `policy`.
    pub fn new(policy: Arc<UrlPolicy>) -> DeliveryClient {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver {
            policy: policy.clone(),
        });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .build(https);
        let user_agent = HeaderValue::from_str(&format!("Herald/{}", env!("CARGO_PKG_VERSION")))
            .expect("version is a valid header value");
        DeliveryClient {
            http,
            policy,
            user_agent,
        }
    }

    /// Send one POST and classify what happened. Never fails: every failure is an [`AttemptOutcome`].
    pub async fn send(&self, out: Outgoing<'_>) -> Sent {
        let blocked = Sent {
            outcome: AttemptOutcome::Error(ErrorKind::Blocked),
            response_body: None,
        };
        let Ok(target) = TargetUrl::parse(out.url) else {
            return blocked;
        };
        if self.policy.check_url(&target).is_err() {
            return blocked;
        }
        let mut builder = Request::post(out.url)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, self.user_agent.clone());
        for (name, value) in out.headers {
            builder = builder.header(name, value);
        }
        let Ok(request) = builder.body(Full::new(out.body)) else {
            return blocked;
        };
        match tokio::time::timeout(out.timeout, self.exchange(request)).await {
            Ok(sent) => sent,
            Err(_) => Sent {
                outcome: AttemptOutcome::Error(ErrorKind::Timeout),
                response_body: None,
            },
        }
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Sent {
        let response = match self.http.request(request).await {
            Ok(r) => r,
            Err(e) => {
                return Sent {
                    outcome: AttemptOutcome::Error(classify(&e)),
                    response_body: None,
                }
            }
        };
        let status = response.status().as_u16();
        let retry_after_ms = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(parse_retry_after);
        let mut body = response.into_body();
        let mut kept = Vec::new();
        let mut read = 0usize;
        while read < DRAINED_BODY_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        read += data.len();
                        let room = KEPT_BODY_BYTES.saturating_sub(kept.len());
                        kept.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                Some(Err(_)) => {
                    return Sent {
                        outcome: AttemptOutcome::Error(ErrorKind::InvalidResponse),
                        response_body: None,
                    }
                }
                None => break,
            }
        }
        let response_body = (!kept.is_empty()).then(|| truncate_utf8(&kept, KEPT_BODY_BYTES));
        Sent {
            outcome: AttemptOutcome::Response {
                status,
                retry_after_ms,
            },
            response_body,
        }
    }
}

/// `Retry-After` as delay-seconds or an HTTP date, in milliseconds from now.
fn parse_retry_after(value: &HeaderValue) -> Option<u64> {
    let text = value.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

/// Map a client error to the attempt log's error kinds.
fn classify(error: &hyper_util::client::legacy::Error) -> ErrorKind {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut text = String::new();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(resolve) = io.get_ref().and_then(|i| i.downcast_ref::<ResolveError>()) {
                return match resolve {
                    ResolveError::Blocked => ErrorKind::Blocked,
                    ResolveError::Lookup(_) => ErrorKind::Dns,
                };
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_parse() || h.is_parse_status() {
                return ErrorKind::InvalidResponse;
            }
        }
        text.push_str(&e.to_string().to_ascii_lowercase());
        text.push(' ');
        source = e.source();
    }
    if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
        ErrorKind::Tls
    } else if text.contains("dns") {
        ErrorKind::Dns
    } else {
        ErrorKind::Connect
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("120")),
            Some(120_000)
        );
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(0)
        );
        assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
    }
}

//! The one pooled, keep-alive HTTP client every attempt goes through, built on the guarded outbound layer
//! ([`crate::outbound`]): the URL policy at connect time, no redirects, a connect timeout.
//!
//! The whole attempt (connect, request, first 64 KiB of the response) runs under the endpoint's timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use hyper::Request;

use herald_core::envelope::storable_text;
use herald_core::retry::{AttemptOutcome, ErrorKind};

use crate::outbound::{ClientOptions, GuardedClient, Outbound};

/// Bytes of the response body kept in the attempt log.
pub const KEPT_BODY_BYTES: usize = 4096;
/// Bytes of the response body read at most (reading lets the connection be reused).
const DRAINED_BODY_BYTES: usize = 64 * 1024;

/// What came back from one attempt.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Status (with `Retry-After`) or error kind.
    pub outcome: AttemptOutcome,
    /// First 4 KiB of the response body, as storable text (no NUL, valid UTF-8).
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

/// The shared delivery client.
pub struct DeliveryClient {
    http: GuardedClient,
    user_agent: HeaderValue,
}

impl DeliveryClient {
    /// A client from the node's outbound layer.
    pub fn new(outbound: &Outbound) -> DeliveryClient {
        let http = outbound.client(ClientOptions {
            max_idle_per_host: 1024,
            ..ClientOptions::default()
        });
        let user_agent = HeaderValue::from_str(&format!("Herald/{}", env!("CARGO_PKG_VERSION")))
            .expect("version is a valid header value");
        DeliveryClient { http, user_agent }
    }

    /// Send one POST and classify what happened. Never fails: every failure is an [`AttemptOutcome`].
    pub async fn send(&self, out: Outgoing<'_>) -> Sent {
        let failed = |kind| Sent {
            outcome: AttemptOutcome::Error(kind),
            response_body: None,
        };
        let mut builder = Request::post(out.url)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, self.user_agent.clone());
        for (name, value) in out.headers {
            builder = builder.header(name, value);
        }
        let Ok(request) = builder.body(Full::new(out.body)) else {
            return failed(ErrorKind::Blocked);
        };
        match tokio::time::timeout(out.timeout, self.exchange(request)).await {
            Ok(sent) => sent,
            Err(_) => failed(ErrorKind::Timeout),
        }
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Sent {
        let response = match self.http.send(request).await {
            Ok(r) => r,
            Err(e) => {
                return Sent {
                    outcome: AttemptOutcome::Error(e.kind()),
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
        let response_body = (!kept.is_empty()).then(|| storable_text(&kept, KEPT_BODY_BYTES));
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

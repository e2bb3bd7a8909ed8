//! The one outbound HTTP layer: every request Herald makes (deliveries, gateway upstream calls, OAuth2 token
//! fetches) goes through a [`GuardedClient`] built by [`Outbound`].
//!
//! What every such client guarantees:
//! - **The URL policy at connect time.** IP-literal hosts and the allowlist are checked on the request's URL
//!   before anything is sent; names are resolved by [`resolver::GuardedResolver`], which drops every address
//!   the policy forbids, so a name that resolves (or re-resolves) to a private address is refused too.
//!   `allow_private_targets` governs all of it.
//! - **No redirects**: hyper never follows them; a 3xx is just a status.
//! - **A connect timeout**, and [`read_capped`] to read at most a given number of bytes of an answer.
//!   The caller puts the whole exchange under its own timeout.

mod resolver;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use herald_core::retry::ErrorKind;
use herald_core::url_policy::{TargetUrl, UrlPolicy};

pub use resolver::{GuardedResolver, ResolveError, ResolveOverrides};

/// How one client is tuned; the guard itself is not optional.
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    /// Longest TCP connect.
    pub connect_timeout: Duration,
    /// How long an idle keep-alive connection is kept.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per host.
    pub max_idle_per_host: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(60),
            max_idle_per_host: 32,
        }
    }
}

/// Builds guarded clients that share one URL policy and one set of resolver overrides.
#[derive(Clone)]
pub struct Outbound {
    policy: Arc<UrlPolicy>,
    overrides: Arc<ResolveOverrides>,
}

impl Outbound {
    /// Clients that enforce `policy`, resolving the names in `overrides` to the given addresses (which the
    /// policy still checks) and every other name through the system resolver.
    pub fn new(policy: Arc<UrlPolicy>, overrides: ResolveOverrides) -> Outbound {
        Outbound {
            policy,
            overrides: Arc::new(overrides),
        }
    }

    /// Clients that may reach any address, with no allowlist: for tools and tests that talk to loopback.
    pub fn permissive() -> Outbound {
        Outbound::new(
            Arc::new(UrlPolicy::permissive()),
            ResolveOverrides::default(),
        )
    }

    /// The policy in force.
    pub fn policy(&self) -> &UrlPolicy {
        &self.policy
    }

    /// A pooled keep-alive client (http and https, rustls with the webpki roots).
    pub fn client(&self, options: ClientOptions) -> GuardedClient {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver::new(
            self.policy.clone(),
            self.overrides.clone(),
        ));
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(options.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(options.pool_idle_timeout)
            .pool_max_idle_per_host(options.max_idle_per_host)
            .build(https);
        GuardedClient {
            http,
            policy: self.policy.clone(),
        }
    }
}

/// Why an outbound request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The URL policy forbids the target (private address, allowlist, not http(s)).
    #[error("the target is not allowed: {0}")]
    Blocked(String),
    /// The name did not resolve.
    #[error("dns lookup failed: {0}")]
    Dns(String),
    /// TCP connect failed or the connection broke.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The TLS handshake failed.
    #[error("tls failed: {0}")]
    Tls(String),
    /// The peer answered something that is not HTTP.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
}

impl OutboundError {
    /// The attempt log's error kind for this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            OutboundError::Blocked(_) => ErrorKind::Blocked,
            OutboundError::Dns(_) => ErrorKind::Dns,
            OutboundError::Connect(_) => ErrorKind::Connect,
            OutboundError::Tls(_) => ErrorKind::Tls,
            OutboundError::InvalidResponse(_) => ErrorKind::InvalidResponse,
        }
    }
}

type HyperClient = Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>;

/// A client that refuses what the URL policy forbids. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct GuardedClient {
    http: HyperClient,
    policy: Arc<UrlPolicy>,
}

impl GuardedClient {
    /// Send `request` if its URL passes the policy; resolved addresses are checked as the connection is made.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, OutboundError> {
        let url = request.uri().to_string();
        let target = TargetUrl::parse(&url).map_err(|e| OutboundError::Blocked(e.to_string()))?;
        self.policy
            .check_url(&target)
            .map_err(|e| OutboundError::Blocked(e.to_string()))?;
        self.http.request(request).await.map_err(|e| classify(&e))
    }
}

/// Read at most `max` bytes of `body`. Returns what was read and whether the body was longer (the rest is
/// not read).
pub async fn read_capped(mut body: Incoming, max: usize) -> Result<(Bytes, bool), OutboundError> {
    let mut kept = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| OutboundError::InvalidResponse(e.to_string()))?;
        if let Some(data) = frame.data_ref() {
            let room = max - kept.len();
            if data.len() > room {
                kept.extend_from_slice(&data[..room]);
                return Ok((kept.freeze(), true));
            }
            kept.extend_from_slice(data);
        }
    }
    Ok((kept.freeze(), false))
}

/// Map a client error to an [`OutboundError`].
fn classify(error: &hyper_util::client::legacy::Error) -> OutboundError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut text = String::new();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(resolve) = io.get_ref().and_then(|i| i.downcast_ref::<ResolveError>()) {
                return match resolve {
                    ResolveError::Blocked => OutboundError::Blocked(resolve.to_string()),
                    ResolveError::Lookup(m) => OutboundError::Dns(m.clone()),
                };
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_parse() || h.is_parse_status() {
                return OutboundError::InvalidResponse(h.to_string());
            }
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&e.to_string());
        source = e.source();
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        OutboundError::Tls(text)
    } else if lower.contains("dns") {
        OutboundError::Dns(text)
    } else {
        OutboundError::Connect(text)
    }
}

#[cfg(test)]
mod tests;

//! Name resolution for outbound requests: fixed answers for configured names (like curl's `--resolve`), the
//! system resolver for the rest, and the URL policy applied to every address either way.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

use herald_core::url_policy::UrlPolicy;

/// Why a name did not resolve to a usable address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The lookup itself failed.
    #[error("dns lookup failed: {0}")]
    Lookup(String),
    /// Every address found is forbidden by the URL policy.
    #[error("every address of the host is forbidden by the URL policy")]
    Blocked,
}

/// Names answered without DNS (setting `resolve`: `host=ip,other=ip`). The answers are still checked
/// against the URL policy, so an override never opens a way around the SSRF guard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolveOverrides(HashMap<String, Vec<IpAddr>>);

impl ResolveOverrides {
    /// Answer `name` (case-insensitive) with `ip`, besides any address given before.
    pub fn insert(&mut self, name: &str, ip: IpAddr) {
        self.0
            .entry(name.trim_end_matches('.').to_ascii_lowercase())
            .or_default()
            .push(ip);
    }

    /// The fixed answer for `name`, if any.
    pub fn get(&self, name: &str) -> Option<&[IpAddr]> {
        self.0
            .get(&name.trim_end_matches('.').to_ascii_lowercase())
            .map(Vec::as_slice)
    }

    /// Whether no name is overridden.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for ResolveOverrides {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = ResolveOverrides::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, ip) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not name=address"))?;
            let name = name.trim();
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '/') {
                return Err(format!("`{name}` is not a host name"));
            }
            let ip: IpAddr = ip
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| format!("`{ip}` is not an IP address"))?;
            out.insert(name, ip);
        }
        Ok(out)
    }
}

/// DNS resolution that filters addresses through the URL policy.
#[derive(Clone)]
pub struct GuardedResolver {
    policy: Arc<UrlPolicy>,
    overrides: Arc<ResolveOverrides>,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<UrlPolicy>, overrides: Arc<ResolveOverrides>) -> GuardedResolver {
        GuardedResolver { policy, overrides }
    }
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
        let fixed: Option<Vec<SocketAddr>> = self
            .overrides
            .get(name.as_str())
            .map(|ips| ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect());
        Box::pin(async move {
            let found: Vec<SocketAddr> = match fixed {
                Some(fixed) => fixed,
                None => tokio::net::lookup_host((name.as_str(), 0))
                    .await
                    .map_err(|e| std::io::Error::other(ResolveError::Lookup(e.to_string())))?
                    .collect(),
            };
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| policy.is_ip_allowed(a.ip()))
                .collect();
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

//! Target URL validation and SSRF policy.
//!
//! [`TargetUrl`] enforces the static shape of an endpoint URL. [`UrlPolicy`]
//! decides whether a URL (and, after DNS resolution by the caller, each
//! resolved IP address) may be contacted.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// Maximum accepted URL length in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// Why a URL was rejected. Display messages are meant for API users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The string is not a URL.
    #[error("url is not a valid absolute URL")]
    Invalid,
    /// The scheme is neither http nor https.
    #[error("url must use http or https")]
    Scheme,
    /// The URL has no host.
    #[error("url must have a host")]
    NoHost,
    /// The URL embeds a username or password.
    #[error("url must not contain a username or password")]
    Credentials,
    /// The URL is longer than [`MAX_URL_LEN`].
    #[error("url must be at most 2048 characters")]
    TooLong,
    /// The URL does not match the configured allowlist.
    #[error("url is not allowed by the configured allowlist")]
    NotAllowlisted,
    /// The host is a private, loopback or otherwise non-public address.
    #[error("url points to a private or reserved address")]
    PrivateAddress,
}

/// A syntactically acceptable webhook target URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetUrl(Url);

impl TargetUrl {
    /// Parses and checks scheme, host, credentials and length.
    pub fn parse(s: &str) -> Result<TargetUrl, UrlError> {
        if s.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        let url = Url::parse(s).map_err(|e| match e {
            url::ParseError::EmptyHost => UrlError::NoHost,
            _ => UrlError::Invalid,
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlError::Scheme);
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::NoHost);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        if url.as_str().len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        Ok(TargetUrl(url))
    }

    /// The normalized URL string.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host (domain or IP literal; IPv6 in brackets).
    pub fn host_str(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    /// The underlying parsed URL.
    pub fn as_url(&self) -> &Url {
        &self.0
    }

    /// Consumes the value, returning the normalized URL string.
    pub fn into_string(self) -> String {
        self.0.into()
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for TargetUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TargetUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        TargetUrl::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Which target URLs and addresses may be contacted.
#[derive(Debug, Clone)]
pub struct UrlPolicy {
    /// Whether private, loopback and other non-public addresses are allowed.
    pub allow_private: bool,
    /// Optional regex (anchored to the whole URL) that URLs must match.
    allowlist: Option<regex_lite::Regex>,
}

impl UrlPolicy {
    /// Builds a policy; `allowlist` must match the entire URL string.
    pub fn new(
        allow_private: bool,
        allowlist: Option<&str>,
    ) -> Result<UrlPolicy, regex_lite::Error> {
        let allowlist = allowlist
            .map(|p| regex_lite::Regex::new(&format!("^(?:{p})$")))
            .transpose()?;
        Ok(UrlPolicy {
            allow_private,
            allowlist,
        })
    }

    /// A policy that allows everything (private addresses, no allowlist).
    pub fn permissive() -> Self {
        UrlPolicy {
            allow_private: true,
            allowlist: None,
        }
    }

    /// Checks the allowlist and, unless private targets are allowed, rejects
    /// IP-literal hosts that are not public and `localhost` names. Names that
    /// need DNS must additionally be checked with [`UrlPolicy::is_ip_allowed`]
    /// after resolution.
    pub fn check_url(&self, url: &TargetUrl) -> Result<(), UrlError> {
        if let Some(re) = &self.allowlist {
            if !re.is_match(url.as_str()) {
                return Err(UrlError::NotAllowlisted);
            }
        }
        if self.allow_private {
            return Ok(());
        }
        let allowed = match url.as_url().host() {
            Some(Host::Ipv4(ip)) => self.is_ip_allowed(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.is_ip_allowed(IpAddr::V6(ip)),
            Some(Host::Domain(d)) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d != "localhost" && !d.ends_with(".localhost")
            }
            None => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(UrlError::PrivateAddress)
        }
    }

    /// Whether a resolved address may be contacted: always when
    /// `allow_private`, otherwise only globally routable unicast addresses.
    pub fn is_ip_allowed(&self, ip: IpAddr) -> bool {
        self.allow_private || is_public(ip)
    }
}

/// Whether `ip` is within `net/len`.
fn in_v4(ip: Ipv4Addr, net: [u8; 4], len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

/// Non-public IPv4 ranges.
const V4_BLOCKED: &[([u8; 4], u32)] = &[
    ([0, 0, 0, 0], 8),       // "this network", includes unspecified
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // carrier-grade NAT
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation TEST-NET-1
    ([192, 88, 99, 0], 24),  // deprecated 6to4 relay anycast
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation TEST-NET-2
    ([203, 0, 113, 0], 24),  // documentation TEST-NET-3
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, includes broadcast
];

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !V4_BLOCKED.iter().any(|&(net, len)| in_v4(ip, net, len))
}

fn v4_from_tail(seg: &[u16; 8], hi: usize) -> Ipv4Addr {
    let [a, b] = seg[hi].to_be_bytes();
    let [c, d] = seg[hi + 1].to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    if ip.is_unspecified() || ip.is_loopback() {
        return false;
    }
    match seg {
        // IPv4-compatible (::a.b.c.d) and IPv4-mapped (::ffff:a.b.c.d).
        [0, 0, 0, 0, 0, 0 | 0xffff, _, _] => is_public_v4(v4_from_tail(&seg, 6)),
        // NAT64 well-known prefix 64:ff9b::/96.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => is_public_v4(v4_from_tail(&seg, 6)),
        // 6to4 2002::/16 embeds an IPv4 address in bits 16..48.
        [0x2002, ..] => is_public_v4(v4_from_tail(&seg, 1)),
        // Discard-only 100::/64.
        [0x100, 0, 0, 0, ..] => false,
        // Documentation 2001:db8::/32.
        [0x2001, 0xdb8, ..] => false,
        // Unique local fc00::/7, link-local fe80::/10, site-local fec0::/10,
        // multicast ff00::/8.
        [s, ..] if s & 0xfe00 == 0xfc00 || s & 0xffc0 == 0xfe80 || s & 0xffc0 == 0xfec0 => false,
        [s, ..] if s & 0xff00 == 0xff00 => false,
        _ => true,
    }
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

#[cfg(test)]
mod tests;

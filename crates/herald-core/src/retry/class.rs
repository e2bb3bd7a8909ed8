//! Retry classes and the outcome of a single HTTP attempt.
//!
//! A failed delivery attempt is data ([`AttemptOutcome`]), not an error; a
//! [`RetryClass`] describes which outcomes a policy retries.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A class of failed outcomes a retry policy may retry.
///
/// Serialized as `"network"`, `"timeout"`, `"3xx"`, `"4xx"`, `"5xx"`, or a
/// three-digit status code string such as `"503"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryClass {
    /// Connection, DNS, TLS and invalid-response errors.
    Network,
    /// The attempt timed out.
    Timeout,
    /// Any 3xx response.
    Redirect,
    /// Any 4xx response.
    ClientError,
    /// Any 5xx response.
    ServerError,
    /// One exact HTTP status code.
    Status(u16),
}

const ALLOWED_CLASSES: &str =
    "network, timeout, 3xx, 4xx, 5xx, or a status code between 100 and 599 such as \"503\"";

/// Error returned when a string is not a valid [`RetryClass`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown retry class {0:?}: expected one of network, timeout, 3xx, 4xx, 5xx, or a status code between 100 and 599 such as \"503\"")]
pub struct UnknownRetryClass(pub String);

impl fmt::Display for RetryClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryClass::Network => f.write_str("network"),
            RetryClass::Timeout => f.write_str("timeout"),
            RetryClass::Redirect => f.write_str("3xx"),
            RetryClass::ClientError => f.write_str("4xx"),
            RetryClass::ServerError => f.write_str("5xx"),
            RetryClass::Status(s) => write!(f, "{s}"),
        }
    }
}

impl FromStr for RetryClass {
    type Err = UnknownRetryClass;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "network" => Ok(RetryClass::Network),
            "timeout" => Ok(RetryClass::Timeout),
            "3xx" => Ok(RetryClass::Redirect),
            "4xx" => Ok(RetryClass::ClientError),
            "5xx" => Ok(RetryClass::ServerError),
            _ if s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()) => match s.parse::<u16>() {
                Ok(code @ 100..=599) => Ok(RetryClass::Status(code)),
                _ => Err(UnknownRetryClass(s.to_owned())),
            },
            _ => Err(UnknownRetryClass(s.to_owned())),
        }
    }
}

impl Serialize for RetryClass {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

struct RetryClassVisitor;

impl Visitor<'_> for RetryClassVisitor {
    type Value = RetryClass;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(ALLOWED_CLASSES)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RetryClass, E> {
        v.parse().map_err(|e: UnknownRetryClass| E::custom(e))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RetryClass, E> {
        match v {
            100..=599 => Ok(RetryClass::Status(v as u16)),
            _ => Err(E::custom(UnknownRetryClass(v.to_string()))),
        }
    }
}

impl<'de> Deserialize<'de> for RetryClass {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RetryClassVisitor)
    }
}

/// Why an attempt failed without an HTTP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The attempt exceeded its deadline.
    Timeout,
    /// The TCP connection could not be established.
    Connect,
    /// The host name could not be resolved.
    Dns,
    /// The TLS handshake failed.
    Tls,
    /// The target address was refused by the SSRF policy (never retried).
    Blocked,
    /// The peer sent something that is not a valid HTTP response.
    InvalidResponse,
}

/// Error returned when a string is not a valid [`ErrorKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error kind {0:?}: expected one of timeout, connect, dns, tls, blocked, invalid_response")]
pub struct UnknownErrorKind(pub String);

impl ErrorKind {
    /// Every error kind.
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Timeout,
        ErrorKind::Connect,
        ErrorKind::Dns,
        ErrorKind::Tls,
        ErrorKind::Blocked,
        ErrorKind::InvalidResponse,
    ];

    /// The snake_case name, identical to the serde representation.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Dns => "dns",
            ErrorKind::Tls => "tls",
            ErrorKind::Blocked => "blocked",
            ErrorKind::InvalidResponse => "invalid_response",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorKind {
    type Err = UnknownErrorKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownErrorKind(s.to_owned()))
    }
}

/// The outcome of one HTTP delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The target answered with an HTTP status.
    Response {
        /// HTTP status code.
        status: u16,
        /// Parsed `Retry-After` header, in milliseconds from now.
        retry_after_ms: Option<u64>,
    },
    /// No usable HTTP response was received.
    Error(ErrorKind),
}

impl AttemptOutcome {
    /// Whether the attempt got a 2xx response.
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            AttemptOutcome::Response {
                status: 200..=299,
                ..
            }
        )
    }
}

/// Whether `outcome` belongs to `class`. An [`ErrorKind::Blocked`] outcome
/// matches no class: SSRF-blocked attempts are final.
pub fn class_matches(class: RetryClass, outcome: &AttemptOutcome) -> bool {
    match *outcome {
        AttemptOutcome::Error(ErrorKind::Blocked) => false,
        AttemptOutcome::Error(ErrorKind::Timeout) => class == RetryClass::Timeout,
        AttemptOutcome::Error(_) => class == RetryClass::Network,
        AttemptOutcome::Response { status, .. } => match class {
            RetryClass::Status(s) => s == status,
            RetryClass::Redirect => (300..=399).contains(&status),
            RetryClass::ClientError => (400..=499).contains(&status),
            RetryClass::ServerError => (500..=599).contains(&status),
            RetryClass::Network | RetryClass::Timeout => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_class_strings() {
        let cases = [
            ("network", RetryClass::Network),
            ("timeout", RetryClass::Timeout),
            ("3xx", RetryClass::Redirect),
            ("4xx", RetryClass::ClientError),
            ("5xx", RetryClass::ServerError),
            ("408", RetryClass::Status(408)),
            ("503", RetryClass::Status(503)),
        ];
        for (s, class) in cases {
            assert_eq!(s.parse::<RetryClass>(), Ok(class));
            let json = serde_json::to_string(&class).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<RetryClass>(&json).unwrap(), class);
        }
        for bad in ["", "6xx", "50", "5033", "099", "600", "Network", "+50"] {
            assert!(bad.parse::<RetryClass>().is_err(), "{bad}");
        }
        let err = serde_json::from_str::<RetryClass>("\"bogus\"").unwrap_err();
        assert!(
            err.to_string().contains("network, timeout, 3xx, 4xx, 5xx"),
            "{err}"
        );
        assert_eq!(
            serde_json::from_str::<RetryClass>("429").unwrap(),
            RetryClass::Status(429)
        );
    }

    #[test]
    fn error_kind_strings() {
        for kind in ErrorKind::ALL {
            assert_eq!(kind.as_str().parse::<ErrorKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert!("refused".parse::<ErrorKind>().is_err());
    }

    #[test]
    fn matching() {
        let resp = |status| AttemptOutcome::Response {
            status,
            retry_after_ms: None,
        };
        let err = AttemptOutcome::Error;
        use RetryClass::*;
        let cases = [
            (Timeout, err(ErrorKind::Timeout), true),
            (Network, err(ErrorKind::Timeout), false),
            (Network, err(ErrorKind::Connect), true),
            (Network, err(ErrorKind::Dns), true),
            (Network, err(ErrorKind::Tls), true),
            (Network, err(ErrorKind::InvalidResponse), true),
            (Network, err(ErrorKind::Blocked), false),
            (Timeout, err(ErrorKind::Blocked), false),
            (Status(503), resp(503), true),
            (Status(503), resp(502), false),
            (Redirect, resp(302), true),
            (ClientError, resp(404), true),
            (ClientError, resp(500), false),
            (ServerError, resp(599), true),
            (ServerError, resp(600), false),
            (Network, resp(503), false),
        ];
        for (class, outcome, want) in cases {
            assert_eq!(class_matches(class, &outcome), want, "{class} {outcome:?}");
        }
        assert!(resp(204).is_success());
        assert!(!resp(301).is_success());
        assert!(!err(ErrorKind::Connect).is_success());
    }
}

//! The OAuth2 client-credentials token request (RFC 6749 §4.4) and how long its answer may be cached.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use hyper::{Request, Uri};

use super::{basic_header, bearer_header, AuthError};

/// Whole token request (connect, send, read the answer) must finish within this.
pub(super) const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest token answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Longest time a token is kept before refreshing ahead of its expiry.
const MAX_MARGIN: Duration = Duration::from_secs(30);
/// Shortest margin: `expires_in` has one-second resolution and the request itself takes time.
const MIN_MARGIN: Duration = Duration::from_secs(1);
/// How long a token without `expires_in` is kept.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// The client token requests go through: the guarded outbound client, so a `token_url` is held to the
/// same URL policy as every delivery.
pub(super) type TokenClient = crate::outbound::GuardedClient;

/// A pooled client from the node's outbound layer.
pub(super) fn build_client(outbound: &crate::outbound::Outbound) -> TokenClient {
    outbound.client(crate::outbound::ClientOptions {
        connect_timeout: TOKEN_TIMEOUT,
        ..Default::default()
    })
}

/// `token_url` as a URI, if it is http(s) with a host.
pub(super) fn parse_token_url(token_url: &str) -> Result<Uri, ()> {
    let uri: Uri = token_url.parse().map_err(|_| ())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http") | Some("https"));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    if scheme_ok && host_ok {
        Ok(uri)
    } else {
        Err(())
    }
}

/// A token as fetched.
pub(super) struct Fetched {
    /// `Bearer <access_token>`, marked sensitive.
    pub header: hyper::header::HeaderValue,
    /// When to fetch a new one.
    pub refresh_at: Instant,
}

/// What one client-credentials request needs.
pub(super) struct TokenRequest<'a> {
    pub token_url: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub scope: Option<&'a str>,
}

/// Request a token, under [`TOKEN_TIMEOUT`].
pub(super) async fn fetch(
    client: &TokenClient,
    req: TokenRequest<'_>,
) -> Result<Fetched, AuthError> {
    let uri = parse_token_url(req.token_url)
        .map_err(|()| AuthError::Invalid("auth.token_url must be an http or https URL".into()))?;
    // Scheme, host, port and path only: no user-info or query that could carry a credential.
    let shown = format!(
        "{}://{}{}{}",
        uri.scheme_str().unwrap_or("http"),
        uri.host().unwrap_or_default(),
        uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default(),
        uri.path()
    );
    let sent_at = Instant::now();
    match tokio::time::timeout(TOKEN_TIMEOUT, exchange(client, uri, &shown, &req)).await {
        Ok(Ok((header, expires_in))) => {
            let refresh_at = sent_at + cache_window(expires_in);
            tracing::debug!(token_url = %shown, expires_in = ?expires_in.map(|d| d.as_secs()), "fetched a service token");
            Ok(Fetched { header, refresh_at })
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(AuthError::Timeout {
            url: shown,
            secs: TOKEN_TIMEOUT.as_secs(),
        }),
    }
}

async fn exchange(
    client: &TokenClient,
    uri: Uri,
    shown: &str,
    req: &TokenRequest<'_>,
) -> Result<(hyper::header::HeaderValue, Option<Duration>), AuthError> {
    // The client authenticates with HTTP basic only: RFC 6749 §2.3 allows one method per request, and
    // basic is the one every authorization server must support.
    let mut form = String::from("grant_type=client_credentials");
    for (name, value) in [("scope", req.scope)] {
        if let Some(value) = value {
            form.push('&');
            form.push_str(name);
            form.push('=');
            form_encode_into(&mut form, value);
        }
    }
    // RFC 6749 §2.3.1: the basic credentials are form-encoded before base64.
    let basic = basic_header(&form_encode(req.client_id), &form_encode(req.client_secret))?;
    let user_agent = concat!("Herald/", env!("CARGO_PKG_VERSION"));
    let request = Request::post(uri)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .header(USER_AGENT, user_agent)
        .header(AUTHORIZATION, basic)
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| AuthError::Invalid(format!("cannot build the token request: {e}")))?;

    let unreachable = |reason: String| AuthError::Unreachable {
        url: shown.to_string(),
        reason,
    };
    let response = client
        .send(request)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    let body = crate::outbound::read_capped(response.into_body(), MAX_ANSWER_BYTES)
        .await
        .map(|(bytes, _)| bytes);
    if !status.is_success() {
        let error = body.ok().and_then(|b| oauth_error_code(&b));
        return Err(AuthError::Status {
            url: shown.to_string(),
            status: status.as_u16(),
            error,
        });
    }
    let body = body.map_err(|e| unreachable(format!("reading the answer: {e}")))?;
    let malformed = |reason: &str| AuthError::Malformed {
        url: shown.to_string(),
        reason: reason.to_string(),
    };
    parse_answer(&body).map_err(malformed)
}

/// The `Authorization` value and lifetime from a 2xx token answer.
fn parse_answer(
    body: &[u8],
) -> Result<(hyper::header::HeaderValue, Option<Duration>), &'static str> {
    #[derive(serde::Deserialize)]
    struct Answer {
        access_token: Option<String>,
        token_type: Option<String>,
        expires_in: Option<serde_json::Value>,
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|_| "not a JSON object")?;
    let token = answer
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or("no access_token")?;
    if let Some(kind) = answer.token_type {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err("token_type is not Bearer");
        }
    }
    let expires_in = match answer.expires_in {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => Some(
            n.as_f64()
                .filter(|s| *s >= 0.0)
                .ok_or("expires_in is negative")?,
        ),
        // Some servers send the number as a string.
        Some(serde_json::Value::String(s)) => Some(
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|s| *s >= 0.0)
                .ok_or("expires_in is not a number")?,
        ),
        Some(_) => return Err("expires_in is not a number"),
    };
    let lifetime = expires_in.map(|s| Duration::from_secs_f64(s.min(u32::MAX as f64)));
    let header = bearer_header(&token).map_err(|_| "access_token is not a valid header value")?;
    Ok((header, lifetime))
}

/// How long after sending the request a token with this lifetime is used: its lifetime less
/// min(30 s, 10 % of it) but at least 1 s; without a lifetime, 5 minutes.
pub(super) fn cache_window(lifetime: Option<Duration>) -> Duration {
    match lifetime {
        None => DEFAULT_LIFETIME,
        Some(lifetime) => {
            let margin = (lifetime / 10).clamp(MIN_MARGIN, MAX_MARGIN);
            lifetime.saturating_sub(margin)
        }
    }
}

/// The OAuth2 `error` code of an error answer (RFC 6749 §5.2), if it has a plausible one.
fn oauth_error_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = value.get("error")?.as_str()?;
    let plausible = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    plausible.then(|| code.to_string())
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    form_encode_into(&mut out, value);
    out
}

fn form_encode_into(out: &mut String, value: &str) {
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[(byte >> 4) as usize] as char);
                out.push(HEX[(byte & 0xF) as usize] as char);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("abc-XYZ_0.9*"), "abc-XYZ_0.9*");
        assert_eq!(form_encode("a b+c&d=e/f"), "a+b%2Bc%26d%3De%2Ff");
        assert_eq!(form_encode("é~"), "%C3%A9%7E");
    }

    #[test]
    fn cache_windows() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(cache_window(secs(3600)), Duration::from_secs(3570));
        assert_eq!(cache_window(secs(100)), Duration::from_secs(90));
        assert_eq!(cache_window(secs(5)), Duration::from_secs(4));
        assert_eq!(cache_window(secs(1)), Duration::ZERO);
        assert_eq!(cache_window(secs(0)), Duration::ZERO);
        assert_eq!(cache_window(None), Duration::from_secs(300));
    }

    #[test]
    fn answers() {
        let (header, life) =
            parse_answer(br#"{"access_token":"abc","token_type":"bearer","expires_in":60}"#)
                .unwrap();
        assert_eq!(header, "Bearer abc");
        assert!(header.is_sensitive());
        assert_eq!(life, Some(Duration::from_secs(60)));
        let (_, life) = parse_answer(br#"{"access_token":"abc","expires_in":"60"}"#).unwrap();
        assert_eq!(life, Some(Duration::from_secs(60)));
        let (_, life) = parse_answer(br#"{"access_token":"abc","token_type":"Bearer"}"#).unwrap();
        assert_eq!(life, None);
        assert!(parse_answer(br#"{"token_type":"Bearer"}"#).is_err());
        assert!(parse_answer(br#"{"access_token":"","token_type":"Bearer"}"#).is_err());
        assert!(parse_answer(br#"{"access_token":"a","token_type":"mac"}"#).is_err());
        assert!(parse_answer(br#"{"access_token":"a","expires_in":-5}"#).is_err());
        assert!(parse_answer(br#"{"access_token":"a\nb"}"#).is_err());
        assert!(parse_answer(b"<html>").is_err());
    }

    #[test]
    fn error_codes() {
        assert_eq!(
            oauth_error_code(br#"{"error":"invalid_client"}"#).as_deref(),
            Some("invalid_client")
        );
        assert_eq!(
            oauth_error_code(br#"{"error":"has spaces and a secret"}"#),
            None
        );
        assert_eq!(oauth_error_code(b"nope"), None);
    }
}

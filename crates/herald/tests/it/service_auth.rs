//! Service-user authentication against a local OAuth2 token endpoint: caching, single-flight fetches,
//! invalidation, refused credentials and short-lived tokens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use herald_server::auth_client::{AuthError, ServiceAuth, ServiceAuthenticator};
use herald_server::outbound::Outbound;
use serde_json::{json, Value};

const CLIENT_ID: &str = "herald-client";
/// Has characters that form encoding must escape.
const CLIENT_SECRET: &str = "s3cr3t+/= &x";

/// A token endpoint that hands out `tok-1`, `tok-2`, … to the right client.
struct TokenServer {
    requests: AtomicU64,
    issued: AtomicU64,
    expires_in: u64,
    /// Basic credentials the client must send (as Herald encodes them, per RFC 6749 §2.3.1).
    expected_basic: String,
    /// The form fields of the last request.
    last_form: Mutex<HashMap<String, String>>,
    /// Whether the last request's basic credentials were right.
    last_basic_ok: Mutex<bool>,
}

async fn start_token_server(expires_in: u64) -> (String, Arc<TokenServer>) {
    // Herald's own Basic encoding of the form-encoded credentials.
    let expected_basic = ServiceAuthenticator::new(&Outbound::permissive())
        .authorization(&ServiceAuth::Basic {
            username: "herald-client".into(),
            password: "s3cr3t%2B%2F%3D+%26x".into(),
        })
        .await
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let server = Arc::new(TokenServer {
        requests: AtomicU64::new(0),
        issued: AtomicU64::new(0),
        expires_in,
        expected_basic,
        last_form: Mutex::new(HashMap::new()),
        last_basic_ok: Mutex::new(false),
    });
    let app = axum::Router::new()
        .route("/oauth/token", axum::routing::post(token))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}/oauth/token"), server)
}

async fn token(
    State(server): State<Arc<TokenServer>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    server.requests.fetch_add(1, Ordering::SeqCst);
    let form = parse_form(&body);
    *server.last_form.lock().unwrap() = form.clone();
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    if content_type != Some("application/x-www-form-urlencoded")
        || form.get("grant_type").map(String::as_str) != Some("client_credentials")
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        );
    }
    let basic = headers.get("authorization").and_then(|v| v.to_str().ok());
    let form_ok = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    let basic_ok = basic == Some(server.expected_basic.as_str());
    *server.last_basic_ok.lock().unwrap() = basic_ok;
    if !(form_ok || basic_ok) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        );
    }
    let n = server.issued.fetch_add(1, Ordering::SeqCst) + 1;
    (
        StatusCode::OK,
        Json(json!({
            "access_token": format!("tok-{n}"),
            "token_type": "Bearer",
            "expires_in": server.expires_in,
        })),
    )
}

/// `application/x-www-form-urlencoded` decoding.
fn parse_form(body: &str) -> HashMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn oauth(token_url: &str, secret: &str) -> ServiceAuth {
    ServiceAuth::Oauth2ClientCredentials {
        token_url: token_url.to_string(),
        client_id: CLIENT_ID.to_string(),
        client_secret: secret.to_string(),
        scope: Some("deliveries:write read".to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_caches_and_refetches_after_invalidate() {
    let (url, server) = start_token_server(3600).await;
    let auth = oauth(&url, CLIENT_SECRET);
    auth.validate().unwrap();
    let authn = ServiceAuthenticator::new(&Outbound::permissive());

    let first = authn.authorization(&auth).await.unwrap();
    assert_eq!(first, "Bearer tok-1");
    assert!(first.is_sensitive());
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    assert_eq!(authn.token_fetches(), 1);
    {
        let form = server.last_form.lock().unwrap();
        assert!(
            !form.contains_key("client_secret"),
            "one client authentication method per request (RFC 6749 §2.3)"
        );
        assert_eq!(form["scope"], "deliveries:write read");
    }
    assert!(
        *server.last_basic_ok.lock().unwrap(),
        "client credentials are sent as HTTP basic"
    );

    // Reused, also through a clone (the cache is shared).
    assert_eq!(authn.authorization(&auth).await.unwrap(), "Bearer tok-1");
    assert_eq!(
        authn.clone().authorization(&auth).await.unwrap(),
        "Bearer tok-1"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    assert_eq!(authn.token_fetches(), 1);

    authn.invalidate(&auth);
    assert_eq!(authn.authorization(&auth).await.unwrap(), "Bearer tok-2");
    assert_eq!(authn.authorization(&auth).await.unwrap(), "Bearer tok-2");
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    assert_eq!(authn.token_fetches(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_share_one_fetch() {
    let (url, server) = start_token_server(3600).await;
    let auth = oauth(&url, CLIENT_SECRET);
    let authn = ServiceAuthenticator::new(&Outbound::permissive());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let authn = authn.clone();
            let auth = auth.clone();
            tokio::spawn(async move { authn.authorization(&auth).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), "Bearer tok-1");
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    assert_eq!(authn.token_fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_an_error_with_the_status() {
    let (url, server) = start_token_server(3600).await;
    let authn = ServiceAuthenticator::new(&Outbound::permissive());
    let err = authn
        .authorization(&oauth(&url, "wrong"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AuthError::Status { status: 401, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("401"), "{text}");
    assert!(!text.contains("wrong"), "{text}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    // Failures are not cached: the next call asks again.
    assert!(authn.authorization(&oauth(&url, "wrong")).await.is_err());
    assert_eq!(authn.token_fetches(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_token_is_refetched() {
    let (url, server) = start_token_server(1).await;
    let auth = oauth(&url, CLIENT_SECRET);
    let authn = ServiceAuthenticator::new(&Outbound::permissive());
    assert_eq!(authn.authorization(&auth).await.unwrap(), "Bearer tok-1");
    assert_eq!(authn.authorization(&auth).await.unwrap(), "Bearer tok-2");
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_token_endpoint() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let authn = ServiceAuthenticator::new(&Outbound::permissive());
    let err = authn
        .authorization(&oauth(&format!("http://{addr}/token"), CLIENT_SECRET))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Unreachable { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_credentials_need_no_fetch() {
    let authn = ServiceAuthenticator::new(&Outbound::permissive());
    let basic = ServiceAuth::Basic {
        username: "u".into(),
        password: "p".into(),
    };
    assert_eq!(authn.authorization(&basic).await.unwrap(), "Basic dTpw");
    let bearer = ServiceAuth::Bearer { token: "t".into() };
    assert_eq!(authn.authorization(&bearer).await.unwrap(), "Bearer t");
    authn.invalidate(&bearer);
    assert_eq!(authn.token_fetches(), 0);
}

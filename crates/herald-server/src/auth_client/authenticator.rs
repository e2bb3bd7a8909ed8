//! [`ServiceAuthenticator`]: the node-wide token cache.
//!
//! One cache entry per [`ServiceAuth`] value. An entry holds the current token and a fetch lock: a caller
//! that finds no fresh token takes the lock, and callers queued behind it reuse whatever that fetch
//! produced (token or error) instead of fetching again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hyper::header::HeaderValue;

use super::token::{self, TokenClient, TokenRequest};
use super::{basic_header, bearer_header, AuthError, ServiceAuth};

/// Entries kept before expired, idle ones are pruned.
const PRUNE_ABOVE: usize = 1024;

/// Token cache shared by the whole node (cheap to clone: `Arc` inside).
///
/// Token URLs are called directly, without the delivery client's URL policy: they are expected to be
/// validated where the [`ServiceAuth`] is accepted.
#[derive(Clone)]
pub struct ServiceAuthenticator {
    inner: Arc<Inner>,
}

struct Inner {
    client: TokenClient,
    entries: Mutex<HashMap<ServiceAuth, Arc<Entry>>>,
    fetches: AtomicU64,
}

#[derive(Default)]
struct Entry {
    state: Mutex<State>,
    fetch: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    token: Option<Cached>,
    /// The last failed fetch and when it ended, for callers that waited on it.
    failure: Option<(Instant, AuthError)>,
}

struct Cached {
    header: HeaderValue,
    /// When the fetch that produced it finished.
    fetched_at: Instant,
    refresh_at: Instant,
}

impl std::fmt::Debug for ServiceAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAuthenticator")
            .field("token_fetches", &self.token_fetches())
            .finish_non_exhaustive()
    }
}

impl ServiceAuthenticator {
    /// An empty cache whose token requests go through `outbound` (the node's URL policy).
    pub fn new(outbound: &crate::outbound::Outbound) -> Self {
        ServiceAuthenticator {
            inner: Arc::new(Inner {
                client: token::build_client(outbound),
                entries: Mutex::new(HashMap::new()),
                fetches: AtomicU64::new(0),
            }),
        }
    }

    /// The `Authorization` header value for `auth`: `Basic base64(user:password)`, `Bearer <token>`, or
    /// `Bearer <access_token>` obtained with the OAuth2 client-credentials grant.
    ///
    /// Access tokens are cached per `auth` value until shortly before they expire (30 s, or 10 % of
    /// their lifetime if smaller, but at least 1 s; 5 minutes when the server gives no `expires_in`).
    /// Concurrent callers share one fetch. The token request times out after 10 s.
    pub async fn authorization(&self, auth: &ServiceAuth) -> Result<HeaderValue, AuthError> {
        let (token_url, client_id, client_secret, scope) = match auth {
            ServiceAuth::Basic { username, password } => return basic_header(username, password),
            ServiceAuth::Bearer { token } => return bearer_header(token),
            ServiceAuth::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => (token_url, client_id, client_secret, scope),
        };
        let entry = self.entry(auth);
        if let Some(header) = entry.fresh(None) {
            return Ok(header);
        }
        let waiting_since = Instant::now();
        let _fetching = entry.fetch.lock().await;
        {
            let state = entry.state.lock().expect("auth cache lock");
            if let Some(header) = state.usable(Some(waiting_since)) {
                return Ok(header);
            }
            if let Some((at, error)) = &state.failure {
                if *at >= waiting_since {
                    return Err(error.clone());
                }
            }
        }
        self.inner.fetches.fetch_add(1, Ordering::Relaxed);
        let request = TokenRequest {
            token_url,
            client_id,
            client_secret,
            scope: scope.as_deref(),
        };
        let result = token::fetch(&self.inner.client, request).await;
        let mut state = entry.state.lock().expect("auth cache lock");
        match result {
            Ok(fetched) => {
                state.failure = None;
                state.token = Some(Cached {
                    header: fetched.header.clone(),
                    fetched_at: Instant::now(),
                    refresh_at: fetched.refresh_at,
                });
                Ok(fetched.header)
            }
            Err(error) => {
                tracing::warn!(client_id = %client_id, %error, "service token request failed");
                state.token = None;
                state.failure = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    /// Forget the cached token for `auth` (called after the target answered 401), so the next call
    /// fetches a new one. Does nothing for basic and bearer credentials.
    pub fn invalidate(&self, auth: &ServiceAuth) {
        let entry = self
            .inner
            .entries
            .lock()
            .expect("auth cache lock")
            .get(auth)
            .cloned();
        if let Some(entry) = entry {
            let mut state = entry.state.lock().expect("auth cache lock");
            state.token = None;
            state.failure = None;
        }
    }

    /// How many token requests have been made (for tests and metrics).
    pub fn token_fetches(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// The cache entry for `auth`, created if needed.
    fn entry(&self, auth: &ServiceAuth) -> Arc<Entry> {
        let mut entries = self.inner.entries.lock().expect("auth cache lock");
        if let Some(entry) = entries.get(auth) {
            return entry.clone();
        }
        if entries.len() >= PRUNE_ABOVE {
            // Keep entries in use by a caller or holding a fresh token.
            entries.retain(|_, e| Arc::strong_count(e) > 1 || e.fresh(None).is_some());
        }
        let entry = Arc::new(Entry::default());
        entries.insert(auth.clone(), entry.clone());
        entry
    }
}

impl Entry {
    fn fresh(&self, fetched_since: Option<Instant>) -> Option<HeaderValue> {
        self.state
            .lock()
            .expect("auth cache lock")
            .usable(fetched_since)
    }
}

impl State {
    /// The cached token if it is before its refresh time, or was fetched at or after `fetched_since`
    /// (a fetch this caller waited for: its token is new even if its cache window is empty).
    fn usable(&self, fetched_since: Option<Instant>) -> Option<HeaderValue> {
        let token = self.token.as_ref()?;
        let fresh = Instant::now() < token.refresh_at;
        let new = fetched_since.is_some_and(|since| token.fetched_at >= since);
        (fresh || new).then(|| token.header.clone())
    }
}

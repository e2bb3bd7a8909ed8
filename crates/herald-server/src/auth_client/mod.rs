//! Service-user authentication for Herald's outbound calls.
//!
//! When Herald calls a callback URL or an upstream service on behalf of a job, it can present credentials
//! of a service user. [`ServiceAuth`] describes them (HTTP basic, a static bearer token, or OAuth2 client
//! credentials) and [`ServiceAuthenticator`] turns them into an `Authorization` header value, fetching
//! and caching OAuth2 access tokens as needed.
//!
//! Secrets never reach the logs: [`ServiceAuth`]'s `Debug` redacts them and errors carry no credentials.

mod authenticator;
mod token;

use std::fmt;

pub use authenticator::ServiceAuthenticator;

/// How Herald authenticates its outbound calls for a route or job.
///
/// JSON, tagged by `"kind"`:
/// `{"kind":"basic","username":"u","password":"p"}`,
/// `{"kind":"bearer","token":"t"}` or
/// `{"kind":"oauth2_client_credentials","token_url":"https://…","client_id":"id","client_secret":"s","scope":"a b"}`
/// (`scope` is optional).
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServiceAuth {
    /// HTTP basic authentication (RFC 7617).
    Basic {
        /// User name; must not contain `:`.
        username: String,
        /// Password.
        password: String,
    },
    /// A static bearer token (RFC 6750).
    Bearer {
        /// The token, sent as `Bearer <token>`.
        token: String,
    },
    /// OAuth2 client credentials grant (RFC 6749 §4.4); the access token is sent as a bearer token.
    Oauth2ClientCredentials {
        /// The authorization server's token endpoint (http or https).
        token_url: String,
        /// Client identifier.
        client_id: String,
        /// Client secret.
        client_secret: String,
        /// Space-separated scopes to request, if any.
        #[serde(default)]
        scope: Option<String>,
    },
}

/// Stand-in printed instead of a secret.
const REDACTED: &str = "<redacted>";

impl fmt::Debug for ServiceAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceAuth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &REDACTED)
                .finish(),
            ServiceAuth::Bearer { .. } => {
                f.debug_struct("Bearer").field("token", &REDACTED).finish()
            }
            ServiceAuth::Oauth2ClientCredentials {
                token_url,
                client_id,
                scope,
                ..
            } => f
                .debug_struct("Oauth2ClientCredentials")
                .field("token_url", token_url)
                .field("client_id", client_id)
                .field("client_secret", &REDACTED)
                .field("scope", scope)
                .finish(),
        }
    }
}

impl ServiceAuth {
    /// Check the fields: none empty, the basic user name free of `:`, the bearer token usable in a
    /// header, `token_url` an http(s) URL with a host. The message names the field, e.g.
    /// `auth.token_url must be an http or https URL`.
    pub fn validate(&self) -> Result<(), String> {
        fn non_empty(field: &str, value: &str) -> Result<(), String> {
            if value.is_empty() {
                Err(format!("auth.{field} must not be empty"))
            } else {
                Ok(())
            }
        }
        match self {
            ServiceAuth::Basic { username, password } => {
                non_empty("username", username)?;
                non_empty("password", password)?;
                if username.contains(':') {
                    return Err("auth.username must not contain ':'".to_string());
                }
                if username
                    .chars()
                    .chain(password.chars())
                    .any(char::is_control)
                {
                    return Err(
                        "auth.username and auth.password must not contain control characters"
                            .to_string(),
                    );
                }
            }
            ServiceAuth::Bearer { token } => {
                non_empty("token", token)?;
                if token.trim() != token || bearer_header(token).is_err() {
                    return Err(
                        "auth.token must be printable ASCII without surrounding whitespace"
                            .to_string(),
                    );
                }
            }
            ServiceAuth::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                non_empty("token_url", token_url)?;
                if token::parse_token_url(token_url).is_err() {
                    return Err("auth.token_url must be an http or https URL".to_string());
                }
                non_empty("client_id", client_id)?;
                non_empty("client_secret", client_secret)?;
                if let Some(scope) = scope {
                    if scope.trim().is_empty() {
                        return Err("auth.scope must not be empty when given".to_string());
                    }
                }
            }
        }
        Ok(())
    }
}

/// Why no `Authorization` header could be produced.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The credentials cannot be used (e.g. a token that is not a valid header value).
    #[error("invalid service credentials: {0}")]
    Invalid(String),
    /// The token endpoint could not be reached (DNS, connect, TLS, broken connection).
    #[error("token endpoint {url} unreachable: {reason}")]
    Unreachable {
        /// Token endpoint, without its query.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The token request did not finish within its timeout.
    #[error("token endpoint {url} did not answer within {secs} s")]
    Timeout {
        /// Token endpoint, without its query.
        url: String,
        /// The timeout in seconds.
        secs: u64,
    },
    /// The token endpoint answered with a status other than 2xx.
    #[error("token endpoint {url} answered HTTP {status}{}", .error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Status {
        /// Token endpoint, without its query.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The OAuth2 `error` code from the answer, if there was one.
        error: Option<String>,
    },
    /// The token endpoint answered 2xx but not with a usable token.
    #[error("token endpoint {url} sent a malformed answer: {reason}")]
    Malformed {
        /// Token endpoint, without its query.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// `Basic base64(username:password)`, marked sensitive.
fn basic_header(username: &str, password: &str) -> Result<hyper::header::HeaderValue, AuthError> {
    use base64::Engine as _;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    sensitive(format!("Basic {encoded}"))
}

/// `Bearer <token>`, marked sensitive.
fn bearer_header(token: &str) -> Result<hyper::header::HeaderValue, AuthError> {
    sensitive(format!("Bearer {token}"))
}

fn sensitive(value: String) -> Result<hyper::header::HeaderValue, AuthError> {
    let mut value = hyper::header::HeaderValue::from_str(&value).map_err(|_| {
        AuthError::Invalid("the credential is not a valid header value".to_string())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth(token_url: &str) -> ServiceAuth {
        ServiceAuth::Oauth2ClientCredentials {
            token_url: token_url.to_string(),
            client_id: "id".to_string(),
            client_secret: "s".to_string(),
            scope: None,
        }
    }

    #[test]
    fn json_round_trip() {
        let cases = [
            (
                r#"{"kind":"basic","username":"u","password":"p"}"#,
                ServiceAuth::Basic {
                    username: "u".into(),
                    password: "p".into(),
                },
            ),
            (
                r#"{"kind":"bearer","token":"t"}"#,
                ServiceAuth::Bearer { token: "t".into() },
            ),
            (
                r#"{"kind":"oauth2_client_credentials","token_url":"https://idp.example/token","client_id":"id","client_secret":"s","scope":"a b"}"#,
                ServiceAuth::Oauth2ClientCredentials {
                    token_url: "https://idp.example/token".into(),
                    client_id: "id".into(),
                    client_secret: "s".into(),
                    scope: Some("a b".into()),
                },
            ),
        ];
        for (json, value) in cases {
            let parsed: ServiceAuth = serde_json::from_str(json).unwrap();
            assert_eq!(parsed, value);
            assert_eq!(serde_json::to_string(&value).unwrap(), json);
            let back: ServiceAuth =
                serde_json::from_str(&serde_json::to_string(&value).unwrap()).unwrap();
            assert_eq!(back, value);
        }
        let no_scope: ServiceAuth = serde_json::from_str(
            r#"{"kind":"oauth2_client_credentials","token_url":"http://h/t","client_id":"id","client_secret":"s"}"#,
        )
        .unwrap();
        assert_eq!(no_scope, oauth("http://h/t"));
    }

    #[test]
    fn json_rejects_unknown() {
        assert!(
            serde_json::from_str::<ServiceAuth>(r#"{"kind":"bearer","token":"t","x":1}"#).is_err()
        );
        assert!(serde_json::from_str::<ServiceAuth>(r#"{"kind":"digest","token":"t"}"#).is_err());
        assert!(serde_json::from_str::<ServiceAuth>(r#"{"kind":"basic","username":"u"}"#).is_err());
    }

    #[test]
    fn validate_errors() {
        let err = |a: ServiceAuth| a.validate().unwrap_err();
        assert!(oauth("https://idp.example:8443/oauth/token?x=1")
            .validate()
            .is_ok());
        assert!(oauth("http://127.0.0.1:9/token").validate().is_ok());
        for bad in [
            "ftp://idp/token",
            "idp.example/token",
            "https://",
            "https:///token",
            "not a url",
        ] {
            assert_eq!(
                err(oauth(bad)),
                "auth.token_url must be an http or https URL",
                "{bad}"
            );
        }
        assert_eq!(err(oauth("")), "auth.token_url must not be empty");
        let with =
            |id: &str, secret: &str, scope: Option<&str>| ServiceAuth::Oauth2ClientCredentials {
                token_url: "https://h/t".into(),
                client_id: id.into(),
                client_secret: secret.into(),
                scope: scope.map(Into::into),
            };
        assert!(with("id", "s", Some("a b")).validate().is_ok());
        assert_eq!(
            err(with("id", "", None)),
            "auth.client_secret must not be empty"
        );
        assert_eq!(err(with("", "s", None)), "auth.client_id must not be empty");
        assert_eq!(
            err(with("id", "s", Some(" "))),
            "auth.scope must not be empty when given"
        );
        let basic = |u: &str, p: &str| ServiceAuth::Basic {
            username: u.into(),
            password: p.into(),
        };
        assert!(basic("u", "p").validate().is_ok());
        assert_eq!(err(basic("", "p")), "auth.username must not be empty");
        assert_eq!(err(basic("u", "")), "auth.password must not be empty");
        assert_eq!(err(basic("a:b", "p")), "auth.username must not contain ':'");
        assert!(err(basic("u", "p\n")).contains("control"));
        let bearer = |t: &str| ServiceAuth::Bearer { token: t.into() };
        assert!(bearer("abc.DEF-123_~+/=").validate().is_ok());
        assert_eq!(err(bearer("")), "auth.token must not be empty");
        assert!(err(bearer("a\nb")).starts_with("auth.token "));
        assert!(err(bearer(" t")).starts_with("auth.token "));
    }

    #[test]
    fn header_values() {
        let basic = basic_header("u", "p").unwrap();
        assert_eq!(basic, "Basic dTpw");
        assert!(basic.is_sensitive());
        assert_eq!(
            basic_header("Aladdin", "open sesame").unwrap(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(bearer_header("t").unwrap(), "Bearer t");
        assert!(matches!(bearer_header("a\nb"), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn debug_redacts_secrets() {
        let all = [
            ServiceAuth::Basic {
                username: "alice".into(),
                password: "hunter2-secret".into(),
            },
            ServiceAuth::Bearer {
                token: "tok-secret".into(),
            },
            ServiceAuth::Oauth2ClientCredentials {
                token_url: "https://idp/token".into(),
                client_id: "herald".into(),
                client_secret: "cs-secret".into(),
                scope: Some("read".into()),
            },
        ];
        for auth in all {
            let text = format!("{auth:?} {auth:#?}");
            for secret in ["hunter2", "tok-secret", "cs-secret"] {
                assert!(!text.contains(secret), "{text}");
            }
            assert!(text.contains(REDACTED), "{text}");
        }
        let text = format!(
            "{:?}",
            ServiceAuth::Basic {
                username: "alice".into(),
                password: "pw".into(),
            }
        );
        assert!(text.contains("alice"));
    }
}

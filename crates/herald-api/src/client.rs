//! A typed client of the Herald API over one keep-alive `reqwest` connection pool.
//!
//! Every method sends the documented request and parses the documented answer; an error answer becomes
//! [`ClientError::Api`] with its status and error object.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::common::{ErrorBody, Page};
use crate::deliveries::{Delivery, DeliveryDetail, DeliveryQuery};
use crate::endpoints::{Endpoint, EndpointInput, EndpointListQuery};
use crate::events::{Event, PublishInput, PublishReceipt};
use crate::health::Health;
use crate::jobs::{Job, JobInput};
use crate::tenants::{NewTenant, TenantInput};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error object.
    #[error("{status}: {} ({})", .body.error.message, .body.error.code)]
    Api {
        /// The answer's status.
        status: StatusCode,
        /// The error object.
        body: ErrorBody,
    },
    /// No answer, or one that is not the documented JSON.
    #[error("{0}")]
    Transport(#[from] reqwest::Error),
    /// A setting of the client itself is unusable (a token that is not a header value, say).
    #[error("{0}")]
    Setup(String),
}

impl ClientError {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Transport(e) => e.status(),
            ClientError::Setup(_) => None,
        }
    }
}

/// The header with which the admin token acts for a tenant.
const TENANT_HEADER: &str = "x-herald-tenant";

/// Options of a call that publishes or creates work.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// Sent as `x-correlation-id`.
    pub correlation_id: Option<String>,
    /// Sent as `Idempotency-Key`.
    pub idempotency_key: Option<String>,
}

/// A publish's receipt and whether it replays an earlier publish (`idempotent-replayed: true`).
#[derive(Debug, Clone)]
pub struct Publication {
    /// What the server answered.
    pub receipt: PublishReceipt,
    /// True when the idempotency key had been used before.
    pub replayed: bool,
}

/// A Herald API client: a base URL and a token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    tenant: Option<HeaderValue>,
}

impl Client {
    /// A client of the server at `base` (`http://127.0.0.1:8080`) with API `token`, keeping up to
    /// `pool` idle connections.
    pub fn new(base: &str, token: &str, pool: usize) -> Result<Client, ClientError> {
        let mut headers = HeaderMap::new();
        let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ClientError::Setup("the token is not a valid header value".into()))?;
        headers.insert(AUTHORIZATION, bearer);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(pool)
            .timeout(Duration::from_secs(130))
            .build()?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            tenant: None,
        })
    }

    /// The same client acting for `tenant` (`x-herald-tenant`; the admin token only).
    pub fn for_tenant(mut self, tenant: &str) -> Result<Client, ClientError> {
        let value = HeaderValue::from_str(tenant)
            .map_err(|_| ClientError::Setup("the tenant is not a valid header value".into()))?;
        self.tenant = Some(value);
        Ok(self)
    }

    /// The underlying HTTP client (for calls this type does not cover).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (from `/`), with the tenant header when one is set.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.tenant {
            Some(tenant) => request.header(TENANT_HEADER, tenant.clone()),
            None => request,
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(Method::GET, path)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(T, HeaderMap), ClientError> {
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        if status.is_success() {
            Ok((response.json().await?, headers))
        } else {
            let body = response.json::<ErrorBody>().await?;
            Err(ClientError::Api { status, body })
        }
    }

    fn with_options(
        request: reqwest::RequestBuilder,
        options: &RequestOptions,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let mut request = request;
        for (name, value) in [
            ("x-correlation-id", &options.correlation_id),
            ("idempotency-key", &options.idempotency_key),
        ] {
            if let Some(value) = value {
                let value = HeaderValue::from_str(value).map_err(|_| {
                    ClientError::Setup(format!("{name} is not a valid header value"))
                })?;
                request = request.header(HeaderName::from_static(name), value);
            }
        }
        Ok(request)
    }

    fn json<B: Serialize>(&self, method: Method, path: &str, body: &B) -> reqwest::RequestBuilder {
        self.request(method, path).json(body)
    }

    /// `POST /v1/events`.
    pub async fn publish(
        &self,
        input: &PublishInput,
        options: &RequestOptions,
    ) -> Result<Publication, ClientError> {
        let request = Self::with_options(self.json(Method::POST, "/v1/events", input), options)?;
        let (receipt, headers) = self.call(request).await?;
        let replayed = headers
            .get("idempotent-replayed")
            .is_some_and(|v| v.as_bytes() == b"true");
        Ok(Publication { receipt, replayed })
    }

    /// `GET /v1/events/{id}`.
    pub async fn event(&self, id: &str) -> Result<Event, ClientError> {
        let path = format!("/v1/events/{id}");
        Ok(self.call(self.get(&path)).await?.0)
    }

    /// `POST /v1/endpoints`.
    pub async fn create_endpoint(&self, input: &EndpointInput) -> Result<Endpoint, ClientError> {
        Ok(self
            .call(self.json(Method::POST, "/v1/endpoints", input))
            .await?
            .0)
    }

    /// `GET /v1/endpoints`.
    pub async fn endpoints(
        &self,
        query: &EndpointListQuery,
    ) -> Result<Page<Endpoint>, ClientError> {
        let request = self.get("/v1/endpoints").query(query);
        Ok(self.call(request).await?.0)
    }

    /// `GET /v1/deliveries/{id}`: the delivery and its attempts.
    pub async fn delivery(&self, id: &str) -> Result<DeliveryDetail, ClientError> {
        let path = format!("/v1/deliveries/{id}");
        Ok(self.call(self.get(&path)).await?.0)
    }

    /// `GET /v1/deliveries`.
    pub async fn deliveries(&self, query: &DeliveryQuery) -> Result<Page<Delivery>, ClientError> {
        let request = self.get("/v1/deliveries").query(query);
        Ok(self.call(request).await?.0)
    }

    /// `POST /v1/tenants` (admin token): the tenant and its first token.
    pub async fn create_tenant(&self, id: &str) -> Result<NewTenant, ClientError> {
        let input = TenantInput { id: id.to_string() };
        Ok(self
            .call(self.json(Method::POST, "/v1/tenants", &input))
            .await?
            .0)
    }

    /// `POST /v1/jobs`.
    pub async fn create_job(
        &self,
        input: &JobInput,
        options: &RequestOptions,
    ) -> Result<Job, ClientError> {
        let request = Self::with_options(self.json(Method::POST, "/v1/jobs", input), options)?;
        Ok(self.call(request).await?.0)
    }

    /// `GET /v1/jobs/{id}`, long-polling up to `wait_s` seconds when given.
    pub async fn job(&self, id: &str, wait_s: Option<u64>) -> Result<Job, ClientError> {
        let mut request = self.get(&format!("/v1/jobs/{id}"));
        if let Some(wait) = wait_s {
            request = request.query(&[("wait", wait)]);
        }
        Ok(self.call(request).await?.0)
    }

    /// `POST /v1/jobs/{id}/cancel`.
    pub async fn cancel_job(&self, id: &str) -> Result<Job, ClientError> {
        let path = format!("/v1/jobs/{id}/cancel");
        Ok(self.call(self.request(Method::POST, &path)).await?.0)
    }

    /// `GET /health` (answered 503 when degraded: still a [`Health`]).
    pub async fn health(&self) -> Result<Health, ClientError> {
        let response = self.get("/health").send().await?;
        Ok(response.json().await?)
    }
}

/// Every operation this client calls, as (method, path template): checked against the OpenAPI document.
pub const OPERATIONS: &[(&str, &str)] = &[
    ("post", "/v1/events"),
    ("get", "/v1/events/{id}"),
    ("post", "/v1/endpoints"),
    ("get", "/v1/endpoints"),
    ("get", "/v1/deliveries/{id}"),
    ("get", "/v1/deliveries"),
    ("post", "/v1/tenants"),
    ("post", "/v1/jobs"),
    ("get", "/v1/jobs/{id}"),
    ("post", "/v1/jobs/{id}/cancel"),
    ("get", "/health"),
];

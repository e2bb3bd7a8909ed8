//! Span export over OTLP/HTTP (JSON), when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `HERALD_OTLP_ENDPOINT`) is set.
//!
//! Herald makes spans for a publish, a claim, an attempt and a record batch with the OpenTelemetry SDK and
//! exports them in batches to `<endpoint>/v1/traces`. A publish span continues the request's `traceparent`;
//! an attempt span continues the event's, and its id is the one the attempt sends. Claims and record
//! batches serve many traces at once, so each is a trace of its own. With no endpoint, nothing is made and
//! each call here is a branch on `None`.
//!
//! The SDK exports from a thread of its own; requests go out through Herald's outbound layer on the
//! node's runtime (the collector is the operator's, like the S3 endpoint, so no tenant URL policy applies).

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use herald_core::trace::TraceParent;
use http_body_util::Full;
use hyper::{Request, Response};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, Span,
};
use opentelemetry_sdk::Resource;

use crate::outbound::{read_capped, ClientOptions, GuardedClient, Outbound};

/// Largest collector answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// The node's span exporter, or nothing.
pub struct Telemetry {
    exporter: Option<(SdkTracerProvider, SdkTracer)>,
}

impl Telemetry {
    /// No spans.
    pub fn off() -> Telemetry {
        Telemetry { exporter: None }
    }

    /// Export spans to the collector at `endpoint` (its base URL), as service `herald`, node `node`. Must
    /// be called on the node's runtime.
    pub fn start(endpoint: &str, node: &str) -> anyhow::Result<Telemetry> {
        let client = CollectorClient {
            client: Outbound::permissive().client(ClientOptions::default()),
            runtime: tokio::runtime::Handle::current(),
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
            .with_timeout(Duration::from_secs(10))
            .build()?;
        let batches = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(Duration::from_millis(500))
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batches)
            .with_resource(
                Resource::builder()
                    .with_service_name("herald")
                    .with_attribute(KeyValue::new("service.instance.id", node.to_string()))
                    .build(),
            )
            .build();
        let tracer = provider.tracer("herald");
        Ok(Telemetry {
            exporter: Some((provider, tracer)),
        })
    }

    /// Whether spans are exported.
    pub fn enabled(&self) -> bool {
        self.exporter.is_some()
    }

    /// A span named `name`, continuing `parent` when given (a new trace otherwise). Ends when dropped.
    pub fn span(&self, name: &'static str, parent: Option<&TraceParent>) -> SpanGuard {
        let Some((_, tracer)) = &self.exporter else {
            return SpanGuard { span: None };
        };
        let cx = match parent {
            Some(p) => Context::new().with_remote_span_context(span_context(p)),
            None => Context::new(),
        };
        SpanGuard {
            span: Some(tracer.start_with_context(Cow::Borrowed(name), &cx)),
        }
    }

    /// A root span named `name` that began at `started` and ends now, with one count: for work that is
    /// worth a span only once its outcome is known (a claim that leased something).
    pub fn record_span(
        &self,
        name: &'static str,
        started: SystemTime,
        key: &'static str,
        value: usize,
    ) {
        let Some((_, tracer)) = &self.exporter else {
            return;
        };
        let mut span = tracer
            .span_builder(Cow::Borrowed(name))
            .with_start_time(started)
            .start(tracer);
        span.set_attribute(KeyValue::new(key, value as i64));
        span.end();
    }

    /// Export what is buffered and stop (at shutdown).
    pub fn shutdown(&self) {
        if let Some((provider, _)) = &self.exporter {
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "could not export the last spans");
            }
        }
    }
}

/// A span being recorded; ended (and queued for export) when dropped.
pub struct SpanGuard {
    span: Option<Span>,
}

impl SpanGuard {
    /// Attach a number to the span.
    pub fn count(&mut self, key: &'static str, value: usize) {
        if let Some(span) = &mut self.span {
            span.set_attribute(KeyValue::new(key, value as i64));
        }
    }

    /// Attach text to the span.
    pub fn text(&mut self, key: &'static str, value: &str) {
        if let Some(span) = &mut self.span {
            span.set_attribute(KeyValue::new(key, value.to_string()));
        }
    }

    /// This span as a `traceparent` to pass on, if it is recorded.
    pub fn traceparent(&self) -> Option<TraceParent> {
        let cx = self.span.as_ref()?.span_context();
        Some(TraceParent {
            trace_id: u128::from_be_bytes(cx.trace_id().to_bytes()),
            parent_id: u64::from_be_bytes(cx.span_id().to_bytes()),
            flags: cx.trace_flags().to_u8(),
        })
    }
}

impl Drop for SpanGuard {
    fn drop(&mut self) {
        if let Some(span) = &mut self.span {
            span.end();
        }
    }
}

fn span_context(p: &TraceParent) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(p.trace_id.to_be_bytes()),
        SpanId::from_bytes(p.parent_id.to_be_bytes()),
        TraceFlags::new(p.flags),
        true,
        TraceState::default(),
    )
}

/// The exporter's HTTP client: each request runs on the node's runtime through the outbound layer, and the
/// exporter's thread waits for its answer.
struct CollectorClient {
    client: GuardedClient,
    runtime: tokio::runtime::Handle,
}

impl fmt::Debug for CollectorClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CollectorClient")
    }
}

#[async_trait::async_trait]
impl HttpClient for CollectorClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.runtime.spawn(async move {
            let exchange = async {
                let (parts, body) = request.into_parts();
                let response = client
                    .send(Request::from_parts(parts, Full::new(body)))
                    .await?;
                let (parts, body) = response.into_parts();
                let (bytes, _) = read_capped(body, MAX_ANSWER).await?;
                Ok::<_, crate::outbound::OutboundError>(Response::from_parts(parts, bytes))
            };
            let _ = answer.send(exchange.await);
        });
        match answered.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(Box::new(e)),
            Err(_) => Err("the node's runtime stopped".into()),
        }
    }
}

//! The OpenAPI 3.1 document, built from the same `#[utoipa::path]` handlers and wire types that serve the
//! API (see [`super::document`]), and `GET /openapi.json`, which serves it without a token.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use herald_api::common::ErrorBody;
use herald_api::jobs::JobWebhook;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::app::AppState;

/// What every document starts from: the title, the security scheme, the shared schemas and the routes that
/// are not on the API router (the gateway root, local blob downloads).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald",
        description = "Webhook delivery: endpoints, events fanned out to them, deliveries with retries and their attempts, asynchronous jobs reported by long poll and webhook, and the seed compatibility routes. Every error is `{\"error\": {\"code\", \"message\", \"details\"?}}`."
    ),
    paths(super::jobs::gateway, super::jobs::gateway_root, crate::blobs::serve::download),
    components(schemas(ErrorBody, JobWebhook)),
    modifiers(&BearerToken),
    security(("bearer" = [])),
    tags(
        (name = "endpoints", description = "Subscriptions: where events go and how"),
        (name = "events", description = "Publish an event to every matching endpoint"),
        (name = "deliveries", description = "One message to one URL, its attempts (the delivery log) and the operator's actions"),
        (name = "jobs", description = "Asynchronous operations (seeds 000 and 001)"),
        (name = "routes", description = "Where jobs' work goes"),
        (name = "tenants", description = "Tenants and their API tokens (admin, or the tenant itself)"),
        (name = "stats", description = "Delivery statistics over time"),
        (name = "health", description = "Liveness, health and metrics"),
        (name = "dashboard", description = "The web dashboard, served by every node that serves the API"),
        (name = "seed 002: broker", description = "Register (event name, URL) and trigger events"),
        (name = "seed 003: webhook status", description = "The webhook status API"),
    )
)]
struct Base;

/// The `bearer` scheme: `Authorization: Bearer <API token>`.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token: the admin token or a tenant's `htk_…` token",
                    ))
                    .build(),
            ),
        );
    }
}

/// The error answers any token-checked route may give, beside its own: bad input (400, 413, 422), no or
/// a wrong token (401, 403), a missing record (404), a conflict (409), the tenant's publish rate (429) and
/// a store that does not answer (503).
const ERRORS: &[(&str, &str)] = &[
    (
        "400",
        "Malformed JSON, an unknown query value or a bad cursor",
    ),
    ("401", "No token, or one that is not valid"),
    ("403", "The token may not do this"),
    ("404", "No such record (or route)"),
    ("409", "The record's state forbids it"),
    ("413", "The body is larger than the node accepts"),
    ("422", "A field is not valid (`details.field` names it)"),
    (
        "429",
        "Over the tenant's publish rate (`Retry-After` says when to retry)",
    ),
    (
        "503",
        "The store does not answer, or the node is shutting down",
    ),
];

/// The whole document: [`Base`] merged with the routers' paths, each operation given [`ERRORS`].
pub fn document(routers: Document) -> Document {
    let mut doc = Base::openapi();
    doc.merge(routers);
    let error = RefOr::T(
        ResponseBuilder::new()
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        ErrorBody::name(),
                    ))))
                    .build(),
            )
            .build(),
    );
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            let open = op
                .security
                .as_ref()
                .is_some_and(|s| s.iter().all(|r| r == &Default::default()));
            if open {
                continue;
            }
            for (code, description) in ERRORS {
                op.responses
                    .responses
                    .entry(code.to_string())
                    .or_insert_with(|| with_description(&error, description));
            }
        }
    }
    doc
}

fn with_description(
    response: &RefOr<utoipa::openapi::Response>,
    description: &str,
) -> RefOr<utoipa::openapi::Response> {
    match response {
        RefOr::T(r) => {
            let mut r = r.clone();
            r.description = description.to_string();
            RefOr::T(r)
        }
        other => other.clone(),
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> Vec<&mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(|op| op.as_mut())
    .collect()
}

/// `GET /openapi.json`: the document, no token.
#[utoipa::path(get, path = "/openapi.json", tag = "health", security(()),
    responses((status = 200, description = "This document", content_type = "application/json")))]
pub async fn serve(State(state): State<AppState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], state.openapi.clone())
}

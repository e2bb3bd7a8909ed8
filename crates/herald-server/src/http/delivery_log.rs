//! `GET /v1/endpoints/{id}/attempts`: an endpoint's delivery log, the page people read when a receiver
//! misbehaves: its deliveries newest first, each with every attempt (time, status code, response time,
//! error, first bytes of the answer).

use axum::extract::State;
use axum::Json;
use herald_api::common::Page;
use herald_api::deliveries::{DeliveryDetail, DeliveryLogQuery};
use herald_store::DeliveryFilter;

use super::auth::Caller;
use super::deliveries::parse_status;
use super::error::ApiResult;
use super::extract::{PathParams, QueryParams};
use super::views;
use crate::app::AppState;

/// `GET /v1/endpoints/{id}/attempts?status=&limit=&cursor=`
#[utoipa::path(get, path = "/v1/endpoints/{id}/attempts", tag = "endpoints",
    params(("id" = String, Path, description = "`ep_…`"), DeliveryLogQuery),
    responses((status = 200, description = "The endpoint's deliveries, newest first, each with every attempt", body = Page<DeliveryDetail>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<DeliveryLogQuery>,
) -> ApiResult<Json<Page<DeliveryDetail>>> {
    let page = views::page_of(q.limit, q.cursor.as_deref(), "dlv")?;
    let filter = DeliveryFilter {
        status: parse_status(q.status.as_deref())?,
        endpoint_id: Some(id.clone()),
        ..DeliveryFilter::default()
    };
    state.store.get_endpoint(&caller.tenant_id, &id).await?;
    let listing = state
        .store
        .list_deliveries(&caller.tenant_id, &filter, &page)
        .await?;
    let mut data = Vec::with_capacity(listing.items.len());
    for delivery in &listing.items {
        let attempts = state
            .store
            .list_attempts(&caller.tenant_id, &delivery.id)
            .await?;
        data.push(views::delivery_with_attempts(delivery, &attempts));
    }
    Ok(Json(views::page(data, listing.next_after)))
}

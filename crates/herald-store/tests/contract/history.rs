//! Benchmark history ([`herald_store::history`]) written straight into a store reads back through the store
//! like deliveries the engine made: delivered, one attempt each, counted in their minutes, none due, and
//! older than anything published after.

use herald_core::status::DeliveryStatus;
use herald_store::history::History;
use herald_store::{DeliveryFilter, Page, DEFAULT_TENANT};

use super::*;

/// The history a backend's test writes: `count` deliveries to `endpoint_id` over the ten minutes before
/// [`BASE`].
pub fn sample(endpoint_id: &str, count: u64) -> History {
    History {
        tenant_id: DEFAULT_TENANT.into(),
        endpoint_id: endpoint_id.into(),
        url: "http://127.0.0.1:9/history".into(),
        count,
        from_ms: BASE - 600_000,
        until_ms: BASE,
    }
}

/// Check what `history` (written by the backend's test) looks like through `store`.
pub async fn history_reads_back(store: Shared, history: History) {
    let all = DeliveryFilter {
        endpoint_id: Some(history.endpoint_id.clone()),
        ..DeliveryFilter::default()
    };
    assert_eq!(
        store.count_deliveries(DEFAULT_TENANT, &all).await.unwrap(),
        history.count
    );
    let delivered = DeliveryFilter {
        status: Some(DeliveryStatus::Delivered),
        ..all.clone()
    };
    assert_eq!(
        store
            .count_deliveries(DEFAULT_TENANT, &delivered)
            .await
            .unwrap(),
        history.count
    );
    let newest = store
        .list_deliveries(
            DEFAULT_TENANT,
            &all,
            &Page {
                limit: 1,
                after: None,
                offset: 0,
            },
        )
        .await
        .unwrap()
        .items
        .remove(0);
    assert_eq!(newest.attempt_count, 1);
    assert_eq!(newest.last_status_code, Some(204));
    assert!(newest.created_ms < BASE && newest.created_ms >= history.from_ms);
    let attempts = store
        .list_attempts(DEFAULT_TENANT, &newest.id)
        .await
        .unwrap();
    assert_eq!(attempts.len(), 1);
    store
        .get_event(DEFAULT_TENANT, &newest.event_id)
        .await
        .expect("each delivery has its event");

    let minutes = store
        .attempt_minutes(
            DEFAULT_TENANT,
            Some(&history.endpoint_id),
            history.from_ms - 60_000,
            BASE + 60_000,
        )
        .await
        .unwrap();
    let counted: u64 = minutes.iter().map(|(_, t)| t.delivered).sum();
    assert_eq!(counted, history.count, "every attempt is in its minute");
    assert!(minutes.len() >= 10, "spread over ten minutes");

    assert!(
        claim(&store, "w1", BASE + 1_000).await.is_empty(),
        "finished history is never claimed"
    );
    // A delivery published now lists before all of the history (ids sort by time).
    let (fresh, _) = publish(&store, "t.history", BASE + 10).await;
    let first = store
        .list_deliveries(
            DEFAULT_TENANT,
            &all,
            &Page {
                limit: 1,
                after: None,
                offset: 0,
            },
        )
        .await
        .unwrap()
        .items;
    assert_eq!(first[0].event_id, fresh);
}

//! Operator actions on deliveries: cancel, retry, delete one, delete in bulk and cleanup.

use std::collections::BTreeSet;

use herald_core::status::DeliveryStatus;
use herald_store::{DeliveryFilter, NextState, DEFAULT_TENANT};

use super::*;

/// Cancel, retry and delete, one delivery at a time and in bulk.
pub async fn operator_actions(store: Shared) {
    store
        .create_tenant("other", &"4".repeat(64), BASE)
        .await
        .unwrap();
    let ep1 = add_endpoint(&store, DEFAULT_TENANT, 1, &["op.*"]).await;

    // ---- one at a time ----
    let a = publish_to(&store, "op.a", BASE, &ep1.id).await;
    let b = publish_to(&store, "op.b", BASE + 1, &ep1.id).await;
    let c = publish_to(&store, "op.c", BASE + 2, &ep1.id).await;
    let e = publish_to(&store, "op.e", BASE + 3, &ep1.id).await;

    let cancelled = store
        .cancel_delivery(DEFAULT_TENANT, &a, BASE + 5)
        .await
        .unwrap();
    assert_eq!(cancelled.status, DeliveryStatus::Cancelled);
    assert_eq!(cancelled.next_attempt_ms, None);
    assert_eq!(cancelled.updated_ms, BASE + 5);
    assert_eq!(
        store.get_delivery(DEFAULT_TENANT, &a).await.unwrap(),
        cancelled
    );
    assert_conflict(store.cancel_delivery(DEFAULT_TENANT, &a, BASE + 6).await);

    let claimed = claim(&store, "w", BASE + 10).await;
    assert_eq!(
        claimed_ids(&claimed),
        BTreeSet::from([b.clone(), c.clone(), e.clone()])
    );
    assert_conflict(store.retry_delivery(DEFAULT_TENANT, &c, BASE + 11).await);
    assert_eq!(
        store.get_delivery(DEFAULT_TENANT, &c).await.unwrap().status,
        DeliveryStatus::InProgress
    );

    record(
        &store,
        attempt_result(&b, "w", 1, Some(200), NextState::Delivered, BASE + 20),
    )
    .await;
    assert_conflict(store.cancel_delivery(DEFAULT_TENANT, &b, BASE + 21).await);
    assert_eq!(
        store.get_delivery(DEFAULT_TENANT, &b).await.unwrap().status,
        DeliveryStatus::Delivered
    );

    // c: a 404, a retry, another 404, dead.
    record(
        &store,
        attempt_result(
            &c,
            "w",
            1,
            Some(404),
            NextState::RetryAt(BASE + 30),
            BASE + 20,
        ),
    )
    .await;
    let again = claim(&store, "w", BASE + 30).await;
    assert_eq!(claimed_ids(&again), BTreeSet::from([c.clone()]));
    assert_eq!(
        (
            again[0].attempt_count,
            again[0].count_4xx,
            again[0].cycle_base
        ),
        (1, 1, 0)
    );
    record(
        &store,
        attempt_result(&c, "w", 2, Some(404), NextState::Failed, BASE + 40),
    )
    .await;
    assert_eq!(
        store.get_delivery(DEFAULT_TENANT, &c).await.unwrap().status,
        DeliveryStatus::Failed
    );

    // Operator retry: a fresh cycle, due now.
    assert_not_found(store.retry_delivery("other", &c, BASE + 50).await);
    let retried = store
        .retry_delivery(DEFAULT_TENANT, &c, BASE + 50)
        .await
        .unwrap();
    assert_eq!(retried.status, DeliveryStatus::Pending);
    assert_eq!(retried.next_attempt_ms, Some(BASE + 50));
    assert_eq!(retried.attempt_count, 2);
    assert_eq!(retried.updated_ms, BASE + 50);
    assert_eq!(
        store.get_delivery(DEFAULT_TENANT, &c).await.unwrap(),
        retried
    );
    let again = claim(&store, "w", BASE + 50).await;
    assert_eq!(claimed_ids(&again), BTreeSet::from([c.clone()]));
    let cycle = &again[0];
    assert_eq!(
        (cycle.attempt_count, cycle.cycle_base, cycle.count_4xx),
        (2, 2, 0)
    );
    assert_eq!(cycle.cycle_started_ms, BASE + 50);
    record(
        &store,
        attempt_result(&c, "w", 3, Some(200), NextState::Delivered, BASE + 60),
    )
    .await;
    assert_eq!(
        store.list_attempts(DEFAULT_TENANT, &c).await.unwrap().len(),
        3
    );

    // A cancelled delivery can be retried too.
    let revived = store
        .retry_delivery(DEFAULT_TENANT, &a, BASE + 70)
        .await
        .unwrap();
    assert_eq!(
        (revived.status, revived.next_attempt_ms),
        (DeliveryStatus::Pending, Some(BASE + 70))
    );
    store
        .cancel_delivery(DEFAULT_TENANT, &a, BASE + 71)
        .await
        .unwrap();

    // An attempt in flight can be cancelled; its late result changes nothing.
    let stopped = store
        .cancel_delivery(DEFAULT_TENANT, &e, BASE + 80)
        .await
        .unwrap();
    assert_eq!(stopped.status, DeliveryStatus::Cancelled);
    record(
        &store,
        attempt_result(&e, "w", 1, Some(200), NextState::Delivered, BASE + 81),
    )
    .await;
    assert_eq!(
        store.get_delivery(DEFAULT_TENANT, &e).await.unwrap().status,
        DeliveryStatus::Cancelled
    );

    // Delete one.
    assert_not_found(store.cancel_delivery("other", &b, BASE + 90).await);
    assert_not_found(store.delete_delivery("other", &b).await);
    store.delete_delivery(DEFAULT_TENANT, &b).await.unwrap();
    assert_not_found(store.get_delivery(DEFAULT_TENANT, &b).await);
    assert_not_found(store.list_attempts(DEFAULT_TENANT, &b).await);
    assert_not_found(store.delete_delivery(DEFAULT_TENANT, &b).await);
    assert_not_found(store.retry_delivery(DEFAULT_TENANT, &b, BASE + 91).await);
    assert_not_found(store.cancel_delivery(DEFAULT_TENANT, &b, BASE + 91).await);
    assert!(claim(&store, "w", BASE + 1_000).await.is_empty());

    // ---- bulk delete by status: never what is in flight ----
    let t2 = BASE + 1_000_000;
    let ep2 = add_endpoint(&store, DEFAULT_TENANT, 2, &["bulk.*"]).await;
    let f1 = publish_to(&store, "bulk.a", t2, &ep2.id).await;
    let f2 = publish_to(&store, "bulk.a", t2 + 1, &ep2.id).await;
    let dv = publish_to(&store, "bulk.a", t2 + 2, &ep2.id).await;
    let pe = publish_to(&store, "bulk.a", t2 + 3, &ep2.id).await;
    let ip = publish_to(&store, "bulk.a", t2 + 4, &ep2.id).await;
    assert_eq!(claim(&store, "w", t2 + 2).await.len(), 3);
    record(
        &store,
        attempt_result(&f1, "w", 1, Some(500), NextState::Failed, t2 + 10),
    )
    .await;
    record(
        &store,
        attempt_result(&f2, "w", 1, Some(500), NextState::Failed, t2 + 10),
    )
    .await;
    record(
        &store,
        attempt_result(&dv, "w", 1, Some(200), NextState::Delivered, t2 + 10),
    )
    .await;
    assert_eq!(claim(&store, "w", t2 + 4).await.len(), 2);
    store
        .release_leases("w", std::slice::from_ref(&pe), t2 + 20)
        .await
        .unwrap();

    let only = |status: DeliveryStatus| DeliveryFilter {
        status: Some(status),
        endpoint_id: Some(ep2.id.clone()),
        ..Default::default()
    };
    assert_eq!(
        store
            .delete_deliveries("other", &only(DeliveryStatus::Failed))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .delete_deliveries(DEFAULT_TENANT, &only(DeliveryStatus::Failed))
            .await
            .unwrap(),
        2
    );
    assert_not_found(store.get_delivery(DEFAULT_TENANT, &f1).await);
    assert_not_found(store.get_delivery(DEFAULT_TENANT, &f2).await);
    assert_eq!(
        store
            .delete_deliveries(DEFAULT_TENANT, &only(DeliveryStatus::InProgress))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .delete_deliveries(DEFAULT_TENANT, &by_endpoint(&ep2.id))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        ids_matching(&store, DEFAULT_TENANT, by_endpoint(&ep2.id)).await,
        vec![ip.clone()]
    );
    assert_eq!(
        store
            .get_delivery(DEFAULT_TENANT, &ip)
            .await
            .unwrap()
            .status,
        DeliveryStatus::InProgress
    );
    record(
        &store,
        attempt_result(&ip, "w", 1, Some(200), NextState::Delivered, t2 + 30),
    )
    .await;
    // The first endpoint's deliveries were not touched.
    assert_eq!(
        ids_matching(&store, DEFAULT_TENANT, by_endpoint(&ep1.id))
            .await
            .into_iter()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([a.clone(), c.clone(), e.clone()])
    );

    // ---- cleanup: finished and old only ----
    let t3 = BASE + 2_000_000;
    let ep3 = add_endpoint(&store, DEFAULT_TENANT, 3, &["clean.*"]).await;
    let o1 = publish_to(&store, "clean.a", t3, &ep3.id).await;
    let o2 = publish_to(&store, "clean.a", t3 + 1, &ep3.id).await;
    let o3 = publish_to(&store, "clean.a", t3 + 2, &ep3.id).await;
    let n1 = publish_to(&store, "clean.a", t3 + 3, &ep3.id).await;
    let waiting = publish_to(&store, "clean.a", t3 + 4, &ep3.id).await;
    store
        .create_direct_delivery(new_direct(
            "other",
            "https://x.example.com/",
            "{}",
            t3 + 10_000_000,
        ))
        .await
        .unwrap();
    assert_eq!(claim(&store, "w", t3 + 3).await.len(), 4);
    record(
        &store,
        attempt_result(&o1, "w", 1, Some(200), NextState::Delivered, t3 + 10),
    )
    .await;
    record(
        &store,
        attempt_result(&o2, "w", 1, Some(500), NextState::Failed, t3 + 10),
    )
    .await;
    store
        .cancel_delivery(DEFAULT_TENANT, &o3, t3 + 10)
        .await
        .unwrap();
    record(
        &store,
        attempt_result(&n1, "w", 1, Some(200), NextState::Delivered, t3 + 500),
    )
    .await;

    let cleanup = |endpoint: Option<&str>| DeliveryFilter {
        endpoint_id: endpoint.map(str::to_string),
        updated_before_ms: Some(t3 + 100),
        finished_only: true,
        ..Default::default()
    };
    assert_eq!(
        store
            .delete_deliveries(DEFAULT_TENANT, &cleanup(Some(&ep3.id)))
            .await
            .unwrap(),
        3
    );
    let left: BTreeSet<String> = ids_matching(&store, DEFAULT_TENANT, by_endpoint(&ep3.id))
        .await
        .into_iter()
        .collect();
    assert_eq!(left, BTreeSet::from([n1.clone(), waiting.clone()]));
    // Without an endpoint: the old finished ones of the earlier sections (a, c, e, ip).
    assert_eq!(
        store
            .delete_deliveries(DEFAULT_TENANT, &cleanup(None))
            .await
            .unwrap(),
        4
    );
    let all: BTreeSet<String> = ids_matching(&store, DEFAULT_TENANT, DeliveryFilter::default())
        .await
        .into_iter()
        .collect();
    assert_eq!(all, BTreeSet::from([n1, waiting]));
    // Pending deliveries of another tenant are not ours to delete.
    let pending = DeliveryFilter {
        status: Some(DeliveryStatus::Pending),
        ..Default::default()
    };
    assert_eq!(
        store
            .delete_deliveries(DEFAULT_TENANT, &pending)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .count_deliveries("other", &DeliveryFilter::default())
            .await
            .unwrap(),
        1
    );
}

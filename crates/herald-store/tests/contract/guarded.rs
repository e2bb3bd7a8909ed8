//! Mutations name the tenant and the state they expect in the statement itself, so a concurrent change is
//! never overwritten: a cancel does not undo a recorded result, an update does not undo a rotation, and a
//! failed claim's leases can be given back by its owner id.

use herald_core::status::DeliveryStatus;
use herald_store::{NextState, DEFAULT_TENANT};

use super::*;

pub async fn cancel_never_overwrites_a_recorded_result(store: Shared) {
    let ep = add_endpoint(&store, DEFAULT_TENANT, 1, &["*"]).await;
    let id = publish_to(&store, "c.a", BASE, &ep.id).await;
    assert_eq!(claim(&store, "w1", BASE + 1).await.len(), 1);
    record(
        &store,
        attempt_result(&id, "w1", 1, Some(200), NextState::Delivered, BASE + 2),
    )
    .await;
    match store.cancel_delivery(DEFAULT_TENANT, &id, BASE + 3).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    let d = store.get_delivery(DEFAULT_TENANT, &id).await.unwrap();
    assert_eq!(d.status, DeliveryStatus::Delivered);

    // Another tenant can neither cancel nor retry it.
    let other = publish_to(&store, "c.b", BASE + 4, &ep.id).await;
    assert_not_found(store.cancel_delivery("other", &other, BASE + 5).await);
    assert_not_found(store.retry_delivery("other", &other, BASE + 5).await);
    // A claimed (in flight) delivery can be cancelled but not retried.
    assert_eq!(claim(&store, "w1", BASE + 6).await.len(), 1);
    assert!(matches!(
        store.retry_delivery(DEFAULT_TENANT, &other, BASE + 7).await,
        Err(StoreError::Conflict(_))
    ));
    let cancelled = store
        .cancel_delivery(DEFAULT_TENANT, &other, BASE + 8)
        .await
        .unwrap();
    assert_eq!(cancelled.status, DeliveryStatus::Cancelled);
}

pub async fn secrets_change_only_through_set_endpoint_secret(store: Shared) {
    let ep = add_endpoint(&store, DEFAULT_TENANT, 1, &["*"]).await;
    let stale = ep.clone();
    let rotated = store
        .set_endpoint_secret(
            DEFAULT_TENANT,
            &ep.id,
            &secret(7),
            Some(BASE + 500),
            BASE + 1,
        )
        .await
        .unwrap();
    assert_eq!(rotated.secret, secret(7));
    assert_eq!(rotated.previous_secret.as_deref(), Some(ep.secret.as_str()));
    assert_eq!(rotated.previous_secret_expires_ms, Some(BASE + 500));

    // An update made from a read before the rotation keeps the rotation.
    let mut patch = stale;
    patch.description = Some("patched".into());
    patch.updated_ms = BASE + 2;
    store.update_endpoint(&patch).await.unwrap();
    let now = store.get_endpoint(DEFAULT_TENANT, &ep.id).await.unwrap();
    assert_eq!(now.description.as_deref(), Some("patched"));
    assert_eq!(now.secret, secret(7));
    assert_eq!(now.previous_secret.as_deref(), Some(ep.secret.as_str()));

    // Two rotations in a row keep the one before the last as the previous secret.
    store
        .set_endpoint_secret(
            DEFAULT_TENANT,
            &ep.id,
            &secret(8),
            Some(BASE + 600),
            BASE + 3,
        )
        .await
        .unwrap();
    let twice = store.get_endpoint(DEFAULT_TENANT, &ep.id).await.unwrap();
    assert_eq!(
        (twice.secret.as_str(), twice.previous_secret.as_deref()),
        (secret(8).as_str(), Some(secret(7).as_str()))
    );

    // Setting without rotation replaces only the current secret.
    let set = store
        .set_endpoint_secret(DEFAULT_TENANT, &ep.id, &secret(9), None, BASE + 4)
        .await
        .unwrap();
    assert_eq!(set.secret, secret(9));
    assert_eq!(set.previous_secret.as_deref(), Some(secret(7).as_str()));
    assert_not_found(
        store
            .set_endpoint_secret("other", &ep.id, &secret(1), None, BASE + 5)
            .await,
    );
}

pub async fn a_failed_claims_leases_are_given_back_by_owner(store: Shared) {
    let ep = add_endpoint(&store, DEFAULT_TENANT, 1, &["*"]).await;
    let first = publish_to(&store, "o.a", BASE, &ep.id).await;
    assert_eq!(claim(&store, "node.0", BASE + 1).await.len(), 1);
    let second = publish_to(&store, "o.b", BASE + 2, &ep.id).await;
    assert_eq!(claim(&store, "node.1", BASE + 3).await.len(), 1);

    assert_eq!(store.release_owner("node.1", BASE + 4).await.unwrap(), 1);
    assert_eq!(store.release_owner("node.1", BASE + 4).await.unwrap(), 0);
    assert_eq!(store.release_owner("node", BASE + 4).await.unwrap(), 0);
    let back = store.get_delivery(DEFAULT_TENANT, &second).await.unwrap();
    assert_eq!(
        (back.status, back.next_attempt_ms),
        (DeliveryStatus::Pending, Some(BASE + 4))
    );
    let held = store.get_delivery(DEFAULT_TENANT, &first).await.unwrap();
    assert_eq!(held.status, DeliveryStatus::InProgress);
    assert_eq!(
        claimed_ids(&claim(&store, "node.2", BASE + 5).await),
        [second].into_iter().collect()
    );
}

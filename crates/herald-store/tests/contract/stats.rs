//! Attempt statistics: recorded results land in their endpoint's minute once (lost leases and repeated
//! writes are not counted), are read back per tenant or per endpoint, and expire with retention; the
//! outstanding counts are capped and name the oldest delivery waiting.

use herald_core::stats::MINUTE_MS;
use herald_core::status::DeliveryStatus;
use herald_store::{NextState, DEFAULT_TENANT};

use super::*;

pub async fn results_are_tallied_per_endpoint_and_minute(store: Shared) {
    let ep1 = add_endpoint(&store, DEFAULT_TENANT, 1, &["t.*"]).await;
    let ep2 = add_endpoint(&store, DEFAULT_TENANT, 2, &["u.*"]).await;
    let ok = publish_to(&store, "t.a", BASE, &ep1.id).await;
    let retry = publish_to(&store, "t.b", BASE + 1, &ep1.id).await;
    let dead = publish_to(&store, "t.c", BASE + 2, &ep1.id).await;
    let stolen = publish_to(&store, "t.d", BASE + 3, &ep1.id).await;
    let later = publish_to(&store, "u.e", BASE + 4, &ep2.id).await;
    let now = BASE + 10;
    assert_eq!(claim(&store, "w1", now).await.len(), 5);
    let minute = herald_core::stats::minute_of(now);

    record(
        &store,
        attempt_result(&ok, "w1", 1, Some(204), NextState::Delivered, now),
    )
    .await;
    // Written twice (a retried commit): counted once.
    record(
        &store,
        attempt_result(&ok, "w1", 1, Some(204), NextState::Delivered, now),
    )
    .await;
    record(
        &store,
        attempt_result(
            &retry,
            "w1",
            1,
            Some(503),
            NextState::RetryAt(now + 60_000),
            now,
        ),
    )
    .await;
    record(
        &store,
        attempt_result(&dead, "w1", 1, Some(500), NextState::Failed, now),
    )
    .await;
    // A result from a lost lease: not counted.
    record(
        &store,
        attempt_result(&stolen, "w9", 1, Some(204), NextState::Delivered, now),
    )
    .await;
    let next_minute = minute + MINUTE_MS + 40;
    let mut slow = attempt_result(
        &later,
        "w1",
        1,
        Some(200),
        NextState::Delivered,
        next_minute,
    );
    slow.attempt.duration_ms = 700;
    record(&store, slow).await;

    let all = store
        .attempt_minutes(DEFAULT_TENANT, None, minute - 3_600_000, minute + 3_600_000)
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    let (first_minute, first) = &all[0];
    assert_eq!(*first_minute, minute);
    assert_eq!((first.delivered, first.retried, first.failed), (1, 1, 1));
    assert_eq!(first.duration_ms, 120);
    assert_eq!(first.percentile_ms(0.99), Some(50));
    assert_eq!(all[1].0, minute + MINUTE_MS);
    assert_eq!(all[1].1.delivered, 1);
    assert_eq!(all[1].1.percentile_ms(0.5), Some(1_000));

    let only_ep2 = store
        .attempt_minutes(DEFAULT_TENANT, Some(&ep2.id), minute, minute + 3_600_000)
        .await
        .unwrap();
    assert_eq!(only_ep2.len(), 1);
    assert_eq!(only_ep2[0].0, minute + MINUTE_MS);
    let before_ep2 = store
        .attempt_minutes(DEFAULT_TENANT, None, minute, minute + MINUTE_MS)
        .await
        .unwrap();
    assert_eq!(before_ep2.len(), 1, "the end of the range is excluded");
    let elsewhere = store
        .attempt_minutes("another", None, minute - 3_600_000, minute + 3_600_000)
        .await
        .unwrap();
    assert!(
        elsewhere.is_empty(),
        "another tenant sees nothing: {elsewhere:?}"
    );

    // Retention takes the minutes with the deliveries.
    store
        .purge_finished(minute + 3_600_000, minute + 3_600_000, 1_000)
        .await
        .unwrap();
    let left = store
        .attempt_minutes(DEFAULT_TENANT, None, minute - 3_600_000, minute + 3_600_000)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

pub async fn outstanding_counts_are_capped_and_name_the_oldest(store: Shared) {
    let none = store.outstanding(DEFAULT_TENANT, 100).await.unwrap();
    assert!(none.counts.iter().all(|(_, n)| *n == 0));
    assert_eq!(none.oldest, None);

    let ep = add_endpoint(&store, DEFAULT_TENANT, 1, &["*"]).await;
    let retrying = publish_to(&store, "t.a", BASE, &ep.id).await;
    let dead = publish_to(&store, "t.b", BASE + 1, &ep.id).await;
    let now = BASE + 10;
    assert_eq!(claim(&store, "w1", now).await.len(), 2);
    record(
        &store,
        attempt_result(
            &retrying,
            "w1",
            1,
            Some(503),
            NextState::RetryAt(now + 60_000),
            now,
        ),
    )
    .await;
    record(
        &store,
        attempt_result(&dead, "w1", 1, Some(500), NextState::Failed, now),
    )
    .await;
    for n in 0..3 {
        publish_to(&store, "t.c", now + n, &ep.id).await;
    }

    let shown = store.outstanding(DEFAULT_TENANT, 100).await.unwrap();
    let count = |o: &herald_store::Outstanding, s: DeliveryStatus| {
        o.counts.iter().find(|(status, _)| *status == s).unwrap().1
    };
    assert_eq!(count(&shown, DeliveryStatus::Pending), 3);
    assert_eq!(count(&shown, DeliveryStatus::InProgress), 0);
    assert_eq!(count(&shown, DeliveryStatus::Retrying), 1);
    assert_eq!(count(&shown, DeliveryStatus::Failed), 1);
    let oldest = shown.oldest.expect("an oldest outstanding delivery");
    assert_eq!(
        oldest.delivery_id, retrying,
        "the dead letter is not outstanding"
    );
    assert_eq!(oldest.status, DeliveryStatus::Retrying);
    assert_eq!(oldest.created_ms, BASE);

    let capped = store.outstanding(DEFAULT_TENANT, 2).await.unwrap();
    assert_eq!(count(&capped, DeliveryStatus::Pending), 2);
    let elsewhere = store.outstanding("another", 100).await.unwrap();
    assert!(elsewhere.counts.iter().all(|(_, n)| *n == 0));
}

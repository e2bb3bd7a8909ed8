//! Deliveries as the status API sees them: filters, newest-first order and paging.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use herald_core::status::DeliveryStatus;
use herald_store::{DeliveryFilter, DeliveryRecord, NextState, Page, DEFAULT_TENANT};

use super::*;

/// Filters, newest-first order, and offset paging of the delivery listing.
pub async fn list_deliveries_filters(store: Shared) {
    store
        .create_tenant("other", &"5".repeat(64), BASE)
        .await
        .unwrap();
    let ep1 = add_endpoint(&store, DEFAULT_TENANT, 1, &["*"]).await;
    let ep2 = add_endpoint(&store, DEFAULT_TENANT, 2, &["order.*"]).await;
    let publish_corr = |event_type: &'static str, corr: &'static str, now: i64| {
        let store = store.clone();
        async move {
            let mut event = new_event(DEFAULT_TENANT, event_type, "{}", now);
            event.correlation_id = corr.to_string();
            store.publish(event).await.unwrap()
        }
    };
    let e1 = publish_corr("order.created", "c1", BASE).await;
    let e2 = publish_corr("invoice.paid", "c2", BASE + 10).await;
    let e3 = publish_corr("order.paid", "c1", BASE + 20).await;
    let mut direct = new_direct(DEFAULT_TENANT, "https://d.example.com/", "{}", BASE + 30);
    direct.reference_id = Some("r1".into());
    direct.correlation_id = "c3".into();
    let direct = store.create_direct_delivery(direct).await.unwrap();
    let to = |p: &herald_store::Published, ep: &str| {
        p.deliveries
            .iter()
            .find(|d| d.endpoint_id.as_deref() == Some(ep))
            .unwrap()
            .id
            .clone()
    };
    let (d11, d12) = (to(&e1, &ep1.id), to(&e1, &ep2.id));
    let d21 = to(&e2, &ep1.id);
    let (d31, d32) = (to(&e3, &ep1.id), to(&e3, &ep2.id));
    assert_eq!(e2.deliveries.len(), 1);

    assert_eq!(claim(&store, "w", BASE + 100).await.len(), 6);
    record(
        &store,
        attempt_result(&d11, "w", 1, Some(200), NextState::Delivered, BASE + 110),
    )
    .await;
    record(
        &store,
        attempt_result(&d21, "w", 1, Some(500), NextState::Failed, BASE + 110),
    )
    .await;
    store
        .release_leases(
            "w",
            &[d12.clone(), d31.clone(), d32.clone(), direct.id.clone()],
            BASE + 120,
        )
        .await
        .unwrap();

    // Everything, newest first.
    let all = store
        .list_deliveries(
            DEFAULT_TENANT,
            &DeliveryFilter::default(),
            &Page::first(100),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 6);
    assert_eq!(all[0].id, direct.id);
    let created: Vec<i64> = all.iter().map(|d| d.created_ms).collect();
    assert_eq!(
        created,
        vec![BASE + 30, BASE + 20, BASE + 20, BASE + 10, BASE, BASE]
    );
    let all_ids: Vec<String> = all.iter().map(|d| d.id.clone()).collect();
    assert_eq!(all_ids.iter().collect::<BTreeSet<_>>().len(), 6);

    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let status = |s: DeliveryStatus| DeliveryFilter {
        status: Some(s),
        ..Default::default()
    };
    assert_eq!(
        ids_matching(&store, DEFAULT_TENANT, status(DeliveryStatus::Delivered)).await,
        vec![d11.clone()]
    );
    assert_eq!(
        ids_matching(&store, DEFAULT_TENANT, status(DeliveryStatus::Failed)).await,
        vec![d21.clone()]
    );
    let pending = ids_matching(&store, DEFAULT_TENANT, status(DeliveryStatus::Pending)).await;
    assert_eq!(pending[0], direct.id, "newest first");
    assert_eq!(
        sorted(pending),
        sorted(vec![
            d12.clone(),
            d31.clone(),
            d32.clone(),
            direct.id.clone()
        ])
    );
    assert!(
        ids_matching(&store, DEFAULT_TENANT, status(DeliveryStatus::InProgress))
            .await
            .is_empty()
    );

    assert_eq!(
        ids_matching(&store, DEFAULT_TENANT, by_endpoint(&ep2.id)).await,
        vec![d32.clone(), d12.clone()]
    );
    let by_event = DeliveryFilter {
        event_id: Some(e1.event.id.clone()),
        ..Default::default()
    };
    assert_eq!(
        sorted(ids_matching(&store, DEFAULT_TENANT, by_event).await),
        sorted(vec![d11.clone(), d12.clone()])
    );
    let by_corr = DeliveryFilter {
        correlation_id: Some("c1".into()),
        ..Default::default()
    };
    let c1 = ids_matching(&store, DEFAULT_TENANT, by_corr.clone()).await;
    assert_eq!(
        sorted(c1),
        sorted(vec![d11.clone(), d12.clone(), d31.clone(), d32.clone()])
    );
    let by_ref = DeliveryFilter {
        reference_id: Some("r1".into()),
        ..Default::default()
    };
    assert_eq!(
        ids_matching(&store, DEFAULT_TENANT, by_ref).await,
        vec![direct.id.clone()]
    );
    let combined = DeliveryFilter {
        endpoint_id: Some(ep1.id.clone()),
        ..by_corr.clone()
    };
    assert_eq!(
        ids_matching(&store, DEFAULT_TENANT, combined).await,
        vec![d31.clone(), d11.clone()]
    );
    let none = DeliveryFilter {
        reference_id: Some("nope".into()),
        ..Default::default()
    };
    assert!(ids_matching(&store, DEFAULT_TENANT, none).await.is_empty());

    // Offset paging walks the same order.
    let page = Page {
        limit: 2,
        after: None,
        offset: 2,
    };
    let listing = store
        .list_deliveries(DEFAULT_TENANT, &DeliveryFilter::default(), &page)
        .await
        .unwrap();
    assert_eq!(
        listing
            .items
            .iter()
            .map(|d| d.id.clone())
            .collect::<Vec<_>>(),
        all_ids[2..4].to_vec()
    );
    // Keyset paging walks the same order.
    let page = Page {
        limit: 2,
        after: Some(all_ids[1].clone()),
        offset: 0,
    };
    let listing = store
        .list_deliveries(DEFAULT_TENANT, &DeliveryFilter::default(), &page)
        .await
        .unwrap();
    assert_eq!(
        listing
            .items
            .iter()
            .map(|d| d.id.clone())
            .collect::<Vec<_>>(),
        all_ids[2..4].to_vec()
    );
    assert_eq!(listing.next_after, Some(all_ids[3].clone()));

    // Tenants see only their own.
    assert!(ids_matching(&store, "other", DeliveryFilter::default())
        .await
        .is_empty());
    assert!(ids_matching(&store, "other", by_corr).await.is_empty());
}

/// Keyset paging neither skips nor repeats deliveries while new ones keep arriving.
pub async fn cursor_pagination_under_inserts(store: Shared) {
    add_endpoint(&store, DEFAULT_TENANT, 1, &["*"]).await;
    let mut before = BTreeSet::new();
    for i in 0..120 {
        let (_, ids) = publish(&store, "page.me", BASE + i / 3).await;
        before.extend(ids);
    }
    assert_eq!(before.len(), 120);

    let stop = Arc::new(AtomicBool::new(false));
    let (published_tx, mut published_rx) = tokio::sync::watch::channel(0u64);
    let publisher = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                publish(&store, "page.new", BASE + 1_000 + n as i64).await;
                n += 1;
                published_tx.send_replace(n);
            }
            n
        })
    };

    let mut seen: Vec<DeliveryRecord> = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        // Make sure something new was committed since the previous page.
        published_rx.changed().await.unwrap();
        let page = Page {
            limit: 25,
            after: after.clone(),
            offset: 0,
        };
        let listing = store
            .list_deliveries(DEFAULT_TENANT, &DeliveryFilter::default(), &page)
            .await
            .unwrap();
        assert!(listing.items.len() <= 25);
        seen.extend(listing.items);
        pages += 1;
        assert!(pages < 100, "paging does not end");
        match listing.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    let extra = publisher.await.unwrap();
    assert!(extra >= pages, "the publisher ran between pages");

    let ids: Vec<String> = seen.iter().map(|d| d.id.clone()).collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "no delivery is listed twice");
    let missing: Vec<_> = before.difference(&unique).collect();
    assert!(
        missing.is_empty(),
        "deliveries skipped by paging: {missing:?}"
    );
    // Newest first across pages for what existed before.
    let old: Vec<i64> = seen
        .iter()
        .filter(|d| before.contains(&d.id))
        .map(|d| d.created_ms)
        .collect();
    assert!(
        old.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {old:?}"
    );
}

//! Tenants and endpoints: CRUD, tenant isolation and listing.

use std::collections::BTreeMap;

use herald_core::retry::RetryPolicy;
use herald_store::{EndpointFilter, Page, TokenRecord, DEFAULT_TENANT};

use super::*;

/// Tenants: create, duplicates, lookup by token hash, unknown ids, listing.
pub async fn tenants(store: Shared) {
    let token_a = "a".repeat(64);
    let token_b = "b".repeat(64);
    let acme = store.create_tenant("acme", &token_a, BASE).await.unwrap();
    assert_eq!(acme.id, "acme");
    assert_eq!(acme.created_ms, BASE);
    store
        .create_tenant("beta", &token_b, BASE + 1)
        .await
        .unwrap();

    assert_conflict(store.create_tenant("acme", &"c".repeat(64), BASE + 2).await);
    // A second tenant with an already used token would make token lookups ambiguous.
    assert_conflict(store.create_tenant("gamma", &token_a, BASE + 3).await);

    assert_eq!(
        store.tenant_by_token(&token_a).await.unwrap(),
        Some(acme.clone())
    );
    assert_eq!(
        store.tenant_by_token(&token_b).await.unwrap().map(|t| t.id),
        Some("beta".to_string())
    );
    assert_eq!(store.tenant_by_token(&"d".repeat(64)).await.unwrap(), None);

    assert_eq!(store.get_tenant("acme").await.unwrap(), acme);
    assert_eq!(
        store.get_tenant(DEFAULT_TENANT).await.unwrap().id,
        DEFAULT_TENANT
    );
    assert_not_found(store.get_tenant("nobody").await);
    assert_not_found(store.get_tenant("gamma").await);

    let listed: Vec<String> = store
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.contains(&DEFAULT_TENANT.to_string()), "{listed:?}");
    let acme_at = listed.iter().position(|t| t == "acme").unwrap();
    let beta_at = listed.iter().position(|t| t == "beta").unwrap();
    assert!(acme_at < beta_at, "oldest first: {listed:?}");
}

/// Endpoints round-trip every field, update and delete; other tenants see none of it.
pub async fn endpoint_crud_and_isolation(store: Shared) {
    store
        .create_tenant("other", &"e".repeat(64), BASE)
        .await
        .unwrap();
    let mut ep = endpoint(DEFAULT_TENANT, 1, &["order.created", "invoice.*"]);
    ep.previous_secret = Some(secret(200));
    ep.previous_secret_expires_ms = Some(BASE + 60_000);
    ep.rate_limit_per_s = Some(25);
    ep.metadata = serde_json::json!({ "team": "billing", "nested": { "list": [1, 2.5, "x"] } });
    store.create_endpoint(&ep).await.unwrap();
    assert_eq!(
        store.get_endpoint(DEFAULT_TENANT, &ep.id).await.unwrap(),
        ep
    );

    // Tenant isolation.
    assert_not_found(store.get_endpoint("other", &ep.id).await);
    let mut foreign = ep.clone();
    foreign.tenant_id = "other".into();
    foreign.url = "https://evil.example.com/".into();
    assert_not_found(store.update_endpoint(&foreign).await);
    assert_not_found(store.delete_endpoint("other", &ep.id, BASE + 1).await);
    let listed = store
        .list_endpoints("other", &EndpointFilter::default(), &Page::first(100))
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    assert_eq!(
        store.get_endpoint(DEFAULT_TENANT, &ep.id).await.unwrap(),
        ep
    );

    // Update replaces every mutable field but the secrets, which only set_endpoint_secret writes.
    let mut updated = ep.clone();
    updated.url = "https://new.example.com/hook".into();
    updated.event_types = vec!["*".into()];
    updated.headers = BTreeMap::from([("authorization".into(), "Bearer t".into())]);
    updated.retry_policy = RetryPolicy::Schedule {
        delays_ms: vec![1_000, 5_000],
        jitter: 0.0,
        retry_on: Vec::new(),
        retries_4xx: 0,
    };
    updated.timeout_ms = 9_000;
    updated.rate_limit_per_s = None;
    updated.max_in_flight = 7;
    updated.disabled = true;
    updated.description = None;
    updated.metadata = serde_json::json!({});
    updated.updated_ms = BASE + 5;
    store.update_endpoint(&updated).await.unwrap();
    assert_eq!(
        store.get_endpoint(DEFAULT_TENANT, &ep.id).await.unwrap(),
        updated
    );

    // Updating or deleting something that does not exist.
    let ghost = endpoint(DEFAULT_TENANT, 2, &[]);
    assert_not_found(store.update_endpoint(&ghost).await);
    assert_not_found(store.delete_endpoint(DEFAULT_TENANT, &ghost.id, BASE).await);

    // Two endpoints with one id cannot coexist.
    assert!(store.create_endpoint(&ep).await.is_err());

    store
        .delete_endpoint(DEFAULT_TENANT, &ep.id, BASE + 10)
        .await
        .unwrap();
    assert_not_found(store.get_endpoint(DEFAULT_TENANT, &ep.id).await);
    assert_not_found(
        store
            .delete_endpoint(DEFAULT_TENANT, &ep.id, BASE + 11)
            .await,
    );
}

async fn list_ids(
    store: &Shared,
    event_type: Option<&str>,
    page: Page,
) -> (Vec<String>, Option<String>) {
    let filter = EndpointFilter {
        event_type: event_type.map(str::to_string),
    };
    let listing = store
        .list_endpoints(DEFAULT_TENANT, &filter, &page)
        .await
        .unwrap();
    (
        listing.items.into_iter().map(|e| e.id).collect(),
        listing.next_after,
    )
}

/// Keyset and offset paging in id order, and event-type filters matched the way fan-out matches them.
pub async fn endpoint_listing(store: Shared) {
    store
        .create_tenant("other", &"f".repeat(64), BASE)
        .await
        .unwrap();
    add_endpoint(&store, "other", 50, &["*"]).await;
    // Created out of id order on purpose.
    let filters: [(u64, &[&str]); 7] = [
        (5, &["order.created"]),
        (2, &["*"]),
        (7, &[]),
        (1, &["order.*"]),
        (6, &["invoice.paid", "order.refunded"]),
        (3, &["invoice.*"]),
        (4, &["orders.created"]),
    ];
    for (n, types) in filters {
        add_endpoint(&store, DEFAULT_TENANT, n, types).await;
    }
    let all: Vec<String> = (1..=7).map(endpoint_id).collect();

    // Keyset paging: every endpoint exactly once, in id order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = Page {
            limit: 3,
            after: after.clone(),
            offset: 0,
        };
        let (ids, next) = list_ids(&store, None, page).await;
        assert!(ids.len() <= 3);
        seen.extend(ids.clone());
        match next {
            Some(n) => {
                assert_eq!(
                    Some(&n),
                    ids.last(),
                    "next_after is the last id of the page"
                );
                after = Some(n);
            }
            None => break,
        }
    }
    assert_eq!(seen, all);
    // An exactly full last page says there is nothing more.
    let (ids, next) = list_ids(&store, None, Page::first(7)).await;
    assert_eq!((ids, next), (all.clone(), None));

    // Offset paging.
    let (ids, _) = list_ids(
        &store,
        None,
        Page {
            limit: 3,
            after: None,
            offset: 3,
        },
    )
    .await;
    assert_eq!(ids, all[3..6].to_vec());
    let (ids, next) = list_ids(
        &store,
        None,
        Page {
            limit: 3,
            after: None,
            offset: 6,
        },
    )
    .await;
    assert_eq!((ids, next), (all[6..].to_vec(), None));
    let (ids, _) = list_ids(
        &store,
        None,
        Page {
            limit: 3,
            after: None,
            offset: 10,
        },
    )
    .await;
    assert!(ids.is_empty());

    // Type filters.
    let ids_of = |ns: &[u64]| ns.iter().map(|&n| endpoint_id(n)).collect::<Vec<_>>();
    let cases: [(&str, &[u64]); 6] = [
        ("order.created", &[1, 2, 5, 7]),
        ("order.refunded", &[1, 2, 6, 7]),
        ("invoice.paid", &[2, 3, 6, 7]),
        ("orders.created", &[2, 4, 7]),
        ("order", &[2, 7]),
        ("shipment.sent", &[2, 7]),
    ];
    for (event_type, want) in cases {
        let (ids, next) = list_ids(&store, Some(event_type), Page::first(100)).await;
        assert_eq!(ids, ids_of(want), "filter {event_type}");
        assert_eq!(next, None);
    }
    // Filter combined with keyset paging.
    let (ids, next) = list_ids(&store, Some("order.created"), Page::first(2)).await;
    assert_eq!(ids, ids_of(&[1, 2]));
    assert_eq!(next, Some(endpoint_id(2)));
    let page = Page {
        limit: 2,
        after: next,
        offset: 0,
    };
    let (ids, next) = list_ids(&store, Some("order.created"), page).await;
    assert_eq!((ids, next), (ids_of(&[5, 7]), None));
    // Filter combined with offset paging.
    let (ids, _) = list_ids(
        &store,
        Some("invoice.paid"),
        Page {
            limit: 2,
            after: None,
            offset: 1,
        },
    )
    .await;
    assert_eq!(ids, ids_of(&[3, 6]));
}

/// Tokens: a tenant's first token resolves it; more can be added; a revoked or rotated-away token resolves
/// nothing; tokens of one tenant cannot be touched through another.
pub async fn tenant_tokens(store: Shared) {
    store
        .create_tenant("acme", &"a".repeat(64), BASE)
        .await
        .unwrap();
    let first = TokenRecord::id_for(&"a".repeat(64));
    let resolve = |hash: String| {
        let store = store.clone();
        async move { store.tenant_by_token(&hash).await.unwrap().map(|t| t.id) }
    };
    assert_eq!(resolve("a".repeat(64)).await.as_deref(), Some("acme"));

    let second = TokenRecord {
        id: TokenRecord::id_for(&"b".repeat(64)),
        tenant_id: "acme".into(),
        token_sha256: "b".repeat(64),
        name: Some("ci".into()),
        created_ms: BASE + 1,
        revoked_ms: None,
    };
    store.create_token(&second).await.unwrap();
    let mut ghost = second.clone();
    ghost.tenant_id = "nobody".into();
    ghost.token_sha256 = "c".repeat(64);
    assert_not_found(store.create_token(&ghost).await);
    let listed = store.list_tokens("acme").await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].name.as_deref(), Some("initial"));
    assert_eq!(listed[1], second);

    let replacement = TokenRecord {
        id: TokenRecord::id_for(&"d".repeat(64)),
        token_sha256: "d".repeat(64),
        created_ms: BASE + 2,
        ..second.clone()
    };
    store
        .rotate_token("acme", &second.id, &replacement, BASE + 2)
        .await
        .unwrap();
    assert_eq!(resolve("b".repeat(64)).await, None, "rotated away");
    assert_eq!(resolve("d".repeat(64)).await.as_deref(), Some("acme"));
    assert!(matches!(
        store
            .rotate_token("acme", &second.id, &replacement, BASE + 3)
            .await,
        Err(StoreError::Conflict(_))
    ));

    assert_not_found(store.revoke_token("other", &first, BASE + 4).await);
    let revoked = store.revoke_token("acme", &first, BASE + 4).await.unwrap();
    assert_eq!(revoked.revoked_ms, Some(BASE + 4));
    let again = store.revoke_token("acme", &first, BASE + 9).await.unwrap();
    assert_eq!(
        again.revoked_ms,
        Some(BASE + 4),
        "revoking twice keeps the first time"
    );
    assert_eq!(resolve("a".repeat(64)).await, None);
    assert_not_found(store.list_tokens("nobody").await);
}

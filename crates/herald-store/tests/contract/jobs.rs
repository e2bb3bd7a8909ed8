//! Jobs and routes: the long-poll/webhook rule, progress compare-and-set, and atomic webhook queuing.

use herald_core::status::JobStatus;
use herald_store::{
    JobCompletion, JobFilter, JobRecord, Page, RouteKind, RouteRecord, DEFAULT_TENANT,
};

use super::*;

fn route(name: &str) -> RouteRecord {
    RouteRecord {
        tenant_id: DEFAULT_TENANT.into(),
        name: name.into(),
        kind: RouteKind::Notify,
        url: "https://worker.example.com/jobs".into(),
        timeout_ms: 5_000,
        secret: secret(5),
        auth: Some(r#"{"kind":"bearer","token":"t"}"#.into()),
        retry_policy: r#"{"kind":"bounded"}"#.into(),
        created_ms: BASE,
        updated_ms: BASE,
    }
}

fn job(id: &str) -> JobRecord {
    JobRecord {
        id: id.into(),
        tenant_id: DEFAULT_TENANT.into(),
        route: "r".into(),
        status: JobStatus::Accepted,
        progress: None,
        payload: Some(r#"{"amount":5}"#.into()),
        result: None,
        error: None,
        result_blob: None,
        webhook_url: Some("https://client.example.com/hook".into()),
        progress_reports: true,
        correlation_id: "jcorr".into(),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        waiter_until_ms: None,
        deadline_ms: None,
        created_ms: BASE,
        updated_ms: BASE,
    }
}

fn webhook(now_ms: i64) -> NewDirectDelivery {
    let mut d = new_direct(
        DEFAULT_TENANT,
        "https://client.example.com/hook",
        r#"{"type":"job"}"#,
        now_ms,
    );
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    d.message_id = Some(encode_id("evt", now_ms as u64, u128::from(n)));
    d
}

fn completion(id: &str, now_ms: i64) -> JobCompletion {
    JobCompletion {
        tenant_id: DEFAULT_TENANT.into(),
        id: id.into(),
        status: JobStatus::Succeeded,
        result: Some(r#"{"ok":true}"#.into()),
        error: None,
        result_blob: None,
        webhook: Some(webhook(now_ms)),
        now_ms,
    }
}

async fn deliveries_to_client(store: &Shared) -> usize {
    let filter = DeliveryFilter::default();
    store
        .list_deliveries(DEFAULT_TENANT, &filter, &Page::first(100))
        .await
        .unwrap()
        .items
        .len()
}

/// Routes are upserted by name, listed by name, and deleted.
pub async fn routes_crud(store: Shared) {
    store.put_route(&route("b")).await.unwrap();
    store.put_route(&route("a")).await.unwrap();
    let mut changed = route("a");
    changed.kind = RouteKind::Proxy;
    changed.updated_ms = BASE + 5;
    store.put_route(&changed).await.unwrap();
    assert_eq!(store.get_route(DEFAULT_TENANT, "a").await.unwrap(), changed);
    let names: Vec<String> = store
        .list_routes(DEFAULT_TENANT)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    store.delete_route(DEFAULT_TENANT, "a").await.unwrap();
    assert_not_found(store.get_route(DEFAULT_TENANT, "a").await);
    assert_not_found(store.delete_route(DEFAULT_TENANT, "a").await);
    assert_not_found(store.get_route("other", "b").await);
}

/// A job is stored with its first delivery (the worker notification), which carries the route's auth.
pub async fn job_creation_and_progress(store: Shared) {
    let mut first = new_direct(
        DEFAULT_TENANT,
        "https://worker.example.com/jobs",
        r#"{"job_id":"job_1"}"#,
        BASE,
    );
    first.auth = Some(r#"{"kind":"bearer","token":"t"}"#.into());
    store.create_job(&job("job_1"), Some(first)).await.unwrap();
    assert_eq!(
        store.get_job(DEFAULT_TENANT, "job_1").await.unwrap(),
        job("job_1")
    );
    assert_not_found(store.get_job("other", "job_1").await);
    let claimed = claim(&store, "w", BASE).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        claimed[0].auth.as_deref(),
        Some(r#"{"kind":"bearer","token":"t"}"#)
    );

    let (j, changed) = store
        .set_job_progress(
            DEFAULT_TENANT,
            "job_1",
            None,
            "10",
            Some(webhook(BASE + 1)),
            BASE + 1,
        )
        .await
        .unwrap();
    assert!(changed);
    assert_eq!(
        (j.status, j.progress.as_deref()),
        (JobStatus::Running, Some("10"))
    );
    // A stale expectation changes nothing and queues nothing.
    let (j, changed) = store
        .set_job_progress(
            DEFAULT_TENANT,
            "job_1",
            None,
            "50",
            Some(webhook(BASE + 2)),
            BASE + 2,
        )
        .await
        .unwrap();
    assert!(!changed);
    assert_eq!(j.progress.as_deref(), Some("10"));
    assert_eq!(
        deliveries_to_client(&store).await,
        2,
        "the notification and one progress webhook"
    );
}

/// The completion webhook is withheld while the initiating long poll waits, and sent once it expired.
pub async fn completion_and_the_long_poll_rule(store: Shared) {
    store.create_job(&job("job_a"), None).await.unwrap();
    store
        .set_job_waiter(DEFAULT_TENANT, "job_a", Some(BASE + 30_000))
        .await
        .unwrap();
    let done = store
        .complete_job(completion("job_a", BASE + 10))
        .await
        .unwrap();
    assert!(
        !done.webhook_queued,
        "the waiting long poll answers instead"
    );
    assert_eq!(done.job.status, JobStatus::Succeeded);
    assert_eq!(done.job.result.as_deref(), Some(r#"{"ok":true}"#));
    assert_eq!(deliveries_to_client(&store).await, 0);
    assert_conflict(store.complete_job(completion("job_a", BASE + 20)).await);
    assert_conflict(
        store
            .set_job_progress(DEFAULT_TENANT, "job_a", None, "1", None, BASE + 21)
            .await,
    );

    store.create_job(&job("job_b"), None).await.unwrap();
    store
        .set_job_waiter(DEFAULT_TENANT, "job_b", Some(BASE + 5))
        .await
        .unwrap();
    let done = store
        .complete_job(completion("job_b", BASE + 10))
        .await
        .unwrap();
    assert!(
        done.webhook_queued,
        "after the long poll expired, the webhook is sent"
    );

    store.create_job(&job("job_c"), None).await.unwrap();
    store
        .set_job_waiter(DEFAULT_TENANT, "job_c", Some(BASE + 30_000))
        .await
        .unwrap();
    store
        .set_job_waiter(DEFAULT_TENANT, "job_c", None)
        .await
        .unwrap();
    assert!(
        store
            .complete_job(completion("job_c", BASE + 10))
            .await
            .unwrap()
            .webhook_queued
    );
    assert_eq!(deliveries_to_client(&store).await, 2);
    assert_not_found(store.set_job_waiter(DEFAULT_TENANT, "job_zz", None).await);
}

/// Started jobs past their deadline are reported as overdue; finished ones never are.
pub async fn overdue_jobs(store: Shared) {
    store.create_job(&job("job_1"), None).await.unwrap();
    store.create_job(&job("job_2"), None).await.unwrap();
    let started = store
        .start_job(DEFAULT_TENANT, "job_1", BASE + 100, BASE)
        .await
        .unwrap();
    assert_eq!(
        (started.status, started.deadline_ms),
        (JobStatus::Running, Some(BASE + 100))
    );
    store
        .start_job(DEFAULT_TENANT, "job_2", BASE + 200, BASE)
        .await
        .unwrap();
    assert!(store.overdue_jobs(BASE + 100, 10).await.unwrap().is_empty());
    let overdue: Vec<String> = store
        .overdue_jobs(BASE + 201, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(overdue, ["job_1", "job_2"]);
    store
        .complete_job(completion("job_1", BASE + 300))
        .await
        .unwrap();
    let overdue: Vec<String> = store
        .overdue_jobs(BASE + 400, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(overdue, ["job_2"]);

    // A job created with its deadline (a proxy call) that never started is overdue too: a crash between
    // accepting it and starting the call still ends in "interrupted".
    let mut never_started = job("job_3");
    never_started.deadline_ms = Some(BASE + 500);
    store.create_job(&never_started, None).await.unwrap();
    let overdue: Vec<String> = store
        .overdue_jobs(BASE + 501, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(overdue, ["job_2", "job_3"]);
}

/// Finished jobs past retention are purged (and returned); unfinished ones stay whatever their age.
pub async fn purge_finished_jobs(store: Shared) {
    store.create_job(&job("job_old"), None).await.unwrap();
    store.create_job(&job("job_open"), None).await.unwrap();
    store
        .complete_job(completion("job_old", BASE + 10))
        .await
        .unwrap();
    assert!(
        store.purge_jobs(BASE + 10, 10).await.unwrap().is_empty(),
        "not older than the cut-off"
    );
    let purged: Vec<String> = store
        .purge_jobs(BASE + 11, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(purged, ["job_old"]);
    assert_not_found(store.get_job(DEFAULT_TENANT, "job_old").await);
    assert!(store
        .purge_jobs(BASE + 1_000_000, 10)
        .await
        .unwrap()
        .is_empty());
    store.get_job(DEFAULT_TENANT, "job_open").await.unwrap();
}

/// A tenant's jobs list newest first, filtered by status and route, a page at a time; other tenants' jobs
/// never show.
pub async fn list_jobs_filters_and_pages(store: Shared) {
    for (id, route, status) in [
        ("job_1", "pay", JobStatus::Succeeded),
        ("job_2", "ship", JobStatus::Accepted),
        ("job_3", "pay", JobStatus::Accepted),
        ("job_4", "pay", JobStatus::Failed),
    ] {
        let mut j = job(id);
        j.route = route.into();
        j.status = status;
        store.create_job(&j, None).await.unwrap();
    }
    let mut foreign = job("job_5");
    foreign.tenant_id = "other".into();
    store.create_job(&foreign, None).await.unwrap();
    let ids = |listing: &herald_store::Listing<JobRecord>| -> Vec<String> {
        listing.items.iter().map(|j| j.id.clone()).collect()
    };
    let all = store
        .list_jobs(DEFAULT_TENANT, &JobFilter::default(), &Page::first(10))
        .await
        .unwrap();
    assert_eq!(ids(&all), ["job_4", "job_3", "job_2", "job_1"]);
    assert_eq!(all.next_after, None);
    let pay = JobFilter {
        route: Some("pay".into()),
        ..JobFilter::default()
    };
    let first = store
        .list_jobs(DEFAULT_TENANT, &pay, &Page::first(2))
        .await
        .unwrap();
    assert_eq!(ids(&first), ["job_4", "job_3"]);
    assert_eq!(first.next_after.as_deref(), Some("job_3"));
    let next = Page {
        after: first.next_after.clone(),
        ..Page::first(2)
    };
    let second = store.list_jobs(DEFAULT_TENANT, &pay, &next).await.unwrap();
    assert_eq!(ids(&second), ["job_1"]);
    assert_eq!(second.next_after, None);
    let accepted = JobFilter {
        status: Some(JobStatus::Accepted),
        ..JobFilter::default()
    };
    let listed = store
        .list_jobs(DEFAULT_TENANT, &accepted, &Page::first(10))
        .await
        .unwrap();
    assert_eq!(ids(&listed), ["job_3", "job_2"]);
    let listed = store
        .list_jobs("other", &JobFilter::default(), &Page::first(10))
        .await
        .unwrap();
    assert_eq!(ids(&listed), ["job_5"]);
}

//! The store contract run against PostgreSQL, each test in a freshly created database that is dropped after.
//!
//! PostgreSQL is found at `HERALD_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`). In CI
//! (`CI` set) or with `HERALD_REQUIRE_POSTGRES` set, an unreachable server fails every test; elsewhere the
//! tests say they are skipped and pass.

mod contract;

use std::sync::Arc;

use herald_store::postgres::{test_db, PgOptions, PostgresStore};
use herald_store::Store;

/// Whether PostgreSQL must be there (CI never skips).
fn required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("HERALD_REQUIRE_POSTGRES").is_some()
}

async fn postgres_store() -> Option<(Arc<dyn Store>, test_db::TestDatabase)> {
    let db = match test_db::create().await {
        Ok(db) => db,
        Err(e) if required() => panic!("PostgreSQL is required here but unreachable: {e}"),
        Err(e) => {
            eprintln!("skipping a PostgreSQL contract test: {e}");
            return None;
        }
    };
    let store = PostgresStore::connect(&db.url, PgOptions::default(), contract::BASE - 60_000)
        .await
        .expect("connect to the fresh test database");
    Some((Arc::new(store), db))
}

contract::contract_tests!(postgres_store);

/// History written straight into the tables reads back like the engine's own deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmark_history_reads_back() {
    let Some((store, db)) = postgres_store().await else {
        return;
    };
    let endpoint = contract::add_endpoint(&store, herald_store::DEFAULT_TENANT, 1, &["t.*"]).await;
    let history = contract::history::sample(&endpoint.id, 1_234);
    let mut seen = Vec::new();
    herald_store::postgres::write_history(&db.url, &history, |n| seen.push(n))
        .await
        .expect("write the history");
    assert_eq!(seen, vec![1_234]);
    contract::history::history_reads_back(store, history).await;
}

/// With `sslmode=require` the store talks TLS and verifies the server: it connects when the server's
/// certificate is trusted through `database_ca_file`, and refuses a certificate it cannot verify. The local
/// server's own certificate (for `localhost`) is the trust anchor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_uses_verified_tls() {
    let Some((_, db)) = postgres_store().await else {
        return;
    };
    let (admin, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let ssl: String = admin.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "this test needs a PostgreSQL server with ssl = on"
    );
    let cert: String = admin
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0);
    let name: String = admin
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    let url =
        format!("postgres://postgres@localhost:5432/{name}?sslmode=require&hostaddr=127.0.0.1");

    let untrusted = PostgresStore::connect(&url, PgOptions::default(), contract::BASE).await;
    assert!(
        untrusted.is_err(),
        "a certificate that the webpki roots do not vouch for is refused"
    );

    let options = PgOptions {
        ca_file: Some(cert.into()),
        ..PgOptions::default()
    };
    let store = PostgresStore::connect(&url, options, contract::BASE)
        .await
        .expect("TLS with the server's certificate trusted");
    store.ping().await.unwrap();
    let encrypted: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE s.ssl AND a.datname = $1 AND a.application_name = 'herald'",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted > 0, "the store's connections use TLS");
}

/// Rows read by sequential scans of `deliveries` and `endpoints`, and leases read through the partial
/// index of leases, once the store's connection has reported `updates` updates of `deliveries` rows. A backend reports its statistics when it goes idle
/// at least a second after its last report, so the store is made to run a statement after each
/// second's wait.
async fn rows_scanned(
    admin: &tokio_postgres::Client,
    store: &contract::Shared,
    updates: i64,
) -> [i64; 3] {
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        store.ping().await.unwrap();
        admin
            .execute("SELECT pg_stat_clear_snapshot()", &[])
            .await
            .unwrap();
        let row = admin
            .query_one(
                "SELECT SUM(seq_tup_read) FILTER (WHERE relname = 'deliveries')::bigint, \
                        SUM(seq_tup_read) FILTER (WHERE relname = 'endpoints')::bigint, \
                        (SELECT idx_tup_read FROM pg_stat_user_indexes \
                         WHERE indexrelname = 'deliveries_in_flight'), \
                        SUM(n_tup_upd) FILTER (WHERE relname = 'deliveries')::bigint \
                 FROM pg_stat_user_tables",
                &[],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(3) >= updates {
            return [row.get(0), row.get(1), row.get(2)];
        }
    }
    panic!("the store's connection never reported its {updates} updates");
}

/// A node that starts on an empty store keeps claiming and recording by index lookups once its tables
/// have grown. PostgreSQL keeps one generic plan per prepared statement once it has planned it for its
/// parameters a few times, costed for the table sizes of that moment: scans that were cheapest while
/// the tables were nearly empty must not stay in use and read every delivery, every endpoint or every
/// lease in the cluster on each claim and each record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_records_stay_index_lookups_as_the_tables_grow() {
    deliveries_stay_index_lookups(Growth {
        leases: 20_000,
        analyzed_before_leases: false,
    })
    .await;
}

/// Statistics taken in a quiet moment, with many finished deliveries and no lease held, do not make
/// each record read every lease through the partial index of leases once the node is busy again: the
/// result of a delivery finds its row by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_find_their_leases_by_id_after_a_quiet_analyze() {
    deliveries_stay_index_lookups(Growth {
        // More leases than the claims' walks count by key (up to 64 keys, one lease each, per claim),
        // far fewer than a record reading every lease for each of its results reads in five.
        leases: 2_000,
        analyzed_before_leases: true,
    })
    .await;
}

/// How the tables grow behind a node's back before it delivers five more events.
struct Growth {
    /// Another node's leases, written after the 20,000 finished deliveries.
    leases: i64,
    /// Whether `VACUUM ANALYZE` runs between the finished deliveries and the leases, as after a quiet
    /// moment.
    analyzed_before_leases: bool,
}

/// Deliver eight events on a near-empty store, grow the tables as `growth` says (20,000 finished
/// deliveries, another node's leases, 20,000 endpoints of another tenant), deliver five more, and
/// assert that those five read fewer deliveries, endpoints and leases than the tables hold.
async fn deliveries_stay_index_lookups(growth: Growth) {
    let Some((_, db)) = postgres_store().await else {
        return;
    };
    // One connection, so that every claim runs on the connection whose plans were made early.
    let options = PgOptions {
        pool_size: 1,
        ..PgOptions::default()
    };
    let store: contract::Shared = Arc::new(
        PostgresStore::connect(&db.url, options, contract::BASE - 60_000)
            .await
            .unwrap(),
    );
    let mut endpoint = contract::endpoint(herald_store::DEFAULT_TENANT, 1, &["t.*"]);
    endpoint.max_in_flight = 1_000;
    store.create_endpoint(&endpoint).await.unwrap();
    let mut now = contract::BASE;
    let deliver_one = async |now: i64| {
        contract::publish(&store, "t.grow", now).await;
        let claimed = contract::claim(&store, "node-a", now).await;
        assert_eq!(claimed.len(), 1);
        let delivered = herald_store::NextState::Delivered;
        let result =
            contract::attempt_result(&claimed[0].id, "node-a", 1, Some(204), delivered, now);
        contract::record(&store, result).await;
    };
    // More claims and records on the near-empty tables than PostgreSQL plans for their parameters
    // before it considers one generic plan.
    for _ in 0..8 {
        now += 1;
        deliver_one(now).await;
    }
    let (admin, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // Finished deliveries, another node's leases and another tenant's endpoints, written behind the
    // store's back and, but for the quiet moment's, without the `ANALYZE` after which PostgreSQL would
    // plan again (autovacuum runs one only after a while, if at all).
    admin
        .batch_execute(&format!(
            "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, dispatch_key, url, status, \
               cycle_started_ms, correlation_id, created_ms, updated_ms) \
             SELECT 'dl_old_' || g, 'default', 'ev_old_' || g, '{id}', '{id}', 'http://127.0.0.1:9/', \
               'delivered', g, 'c' || g, g, g FROM generate_series(1, 20000) g",
            id = endpoint.id,
        ))
        .await
        .unwrap();
    if growth.analyzed_before_leases {
        admin
            .batch_execute("VACUUM ANALYZE deliveries")
            .await
            .unwrap();
    }
    admin
        .batch_execute(&format!(
            "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, dispatch_key, url, status, \
               cycle_started_ms, due_ms, lease_owner, correlation_id, created_ms, updated_ms) \
             SELECT 'dl_leased_' || g, 'other', 'ev_leased_' || g, 'ep_other_' || g, 'ep_other_' || g, \
               'http://127.0.0.1:9/', 'in_progress', g, {far}, 'node-b', 'c' || g, g, g \
               FROM generate_series(1, {leases}) g; \
             INSERT INTO endpoints (id, tenant_id, url, event_types, secret, headers, retry_policy, \
               timeout_ms, max_in_flight, disabled, metadata, created_ms, updated_ms) \
             SELECT 'ep_other_' || g, 'other', 'http://127.0.0.1:9/', '[]', 's', '{{}}', '{{}}', 1000, \
               16, false, '{{}}', 0, 0 FROM generate_series(1, 20000) g",
            far = i64::MAX / 2,
            leases = growth.leases,
        ))
        .await
        .unwrap();
    // Each delivery is two updates: its lease and its result.
    let before = rows_scanned(&admin, &store, 2 * 8).await;
    for _ in 0..5 {
        now += 1;
        deliver_one(now).await;
    }
    let after = rows_scanned(&admin, &store, 2 * (8 + 5)).await;
    let read = [
        ("deliveries", 20_000),
        ("endpoints", 20_000),
        ("leases", growth.leases),
    ]
    .into_iter()
    .zip(after.iter().zip(before))
    .map(|(what, (after, before))| (what, after - before));
    for ((what, held), read) in read {
        assert!(
            read < held,
            "five deliveries read {read} of {held} {what} by scanning through them"
        );
    }
}

/// Another node's publish wakes a listening node and names the endpoints it gave work, so that its
/// claims visit them first however many endpoints have work that is not due; a fan-out wider than a
/// notification names wakes it all the same, naming none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_names_its_endpoints_to_listening_nodes() {
    let Some((publisher, db)) = postgres_store().await else {
        return;
    };
    let listener = PostgresStore::connect(&db.url, PgOptions::default(), contract::BASE - 60_000)
        .await
        .unwrap();
    let (heard, tx) = {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Vec<String>>();
        (rx, tx)
    };
    let mut heard = heard;
    listener.watch_for_work(Arc::new(move |keys| {
        let _ = tx.send(keys.iter().map(|k| k.to_string()).collect());
    }));
    let next = async |heard: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<String>>| {
        tokio::time::timeout(std::time::Duration::from_secs(10), heard.recv())
            .await
            .expect("a wake-up within 10 s")
            .expect("the listener is alive")
    };
    // The first call says the listener is connected (and names nothing).
    assert!(next(&mut heard).await.is_empty());

    let tenant = herald_store::DEFAULT_TENANT;
    let one = contract::add_endpoint(&publisher, tenant, 1, &["one"]).await;
    contract::publish(&publisher, "one", contract::BASE).await;
    assert_eq!(next(&mut heard).await, vec![one.id]);

    let wide = herald_store::postgres::MOST_NOTIFIED_KEYS as u64 + 1;
    for n in 0..wide {
        contract::add_endpoint(&publisher, tenant, 100 + n, &["wide"]).await;
    }
    contract::publish(&publisher, "wide", contract::BASE + 1).await;
    assert!(next(&mut heard).await.is_empty());
}

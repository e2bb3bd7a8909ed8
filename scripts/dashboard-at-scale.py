#!/usr/bin/env python3
"""How fast the dashboard's queries answer with a million deliveries in the store.

Creates endpoints through the API, stops the node, writes DELIVERIES deliveries (one attempt each, spread
over the last day across the endpoints: 97 % delivered, 1 % each failed, retrying and pending, the last
three due far in the future so the engine leaves them alone) and their per-minute statistics straight
into the store's tables, starts the node again and times every query the dashboard's views make.

Usage: scripts/dashboard-at-scale.py HERALD_BINARY [sqlite|postgres] [DELIVERIES]
PostgreSQL: the database `herald_dashboard_scale` on 127.0.0.1 (dropped and created).
"""

import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

TOKEN = "dashboard-scale-admin-token"
ENDPOINTS = 10
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/test"
PG_DB = "herald_dashboard_scale"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, path, method="GET", body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("authorization", f"Bearer {TOKEN}")
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as res:
        return json.loads(res.read() or b"null")


def start(herald, data_dir, port, database_url):
    env = dict(os.environ, HERALD_ADMIN_TOKEN=TOKEN, HERALD_ALLOW_PRIVATE_TARGETS="true", RUST_LOG="warn")
    args = [herald, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir]
    if database_url:
        args += ["--database-url", database_url]
    node = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return node
        except OSError:
            time.sleep(0.1)
    sys.exit("herald did not start")


def seed_sql(n, now_ms, endpoint_ids):
    """Statements that write the deliveries, attempts and statistics (SQLite and PostgreSQL alike)."""
    day = 86_400_000
    eps = "(" + " UNION ALL ".join(
        f"SELECT {i} AS k, '{e}' AS id" for i, e in enumerate(endpoint_ids)) + ")"
    status = ("CASE WHEN g % 100 = 0 THEN 'failed' WHEN g % 100 = 1 THEN 'retrying' "
              "WHEN g % 100 = 2 THEN 'pending' ELSE 'delivered' END")
    created = f"({now_ms - day} + g * {day} / {n})"
    due = "CASE WHEN g % 100 IN (1, 2) THEN 4102444800000 END"
    code = "CASE WHEN g % 100 IN (0, 1) THEN 503 ELSE 204 END"
    return [
        f"INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, dispatch_key, url, status, attempt_count, "
        f"cycle_started_ms, due_ms, last_status_code, correlation_id, created_ms, updated_ms) "
        f"SELECT 'dlv_' || lpad_g, 'default', 'evt_' || lpad_g, e.id, e.id, 'http://127.0.0.1:9/x', {status}, "
        f"CASE WHEN g % 100 = 2 THEN 0 ELSE 1 END, {created}, {due}, {code}, 'corr-' || (g / 10), "
        f"{created}, {created} FROM series JOIN {eps} e ON e.k = g % {len(endpoint_ids)}",
        f"INSERT INTO attempts (delivery_id, number, started_ms, duration_ms, status_code, response_body) "
        f"SELECT 'dlv_' || lpad_g, 1, {created}, 3 + g % 40, {code}, 'ok' FROM series WHERE g % 100 <> 2",
    ]


def sqlite_seed(path, n, now_ms, endpoint_ids):
    db = sqlite3.connect(path)
    db.execute(f"CREATE TEMP TABLE series AS WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s "
               f"WHERE g + 1 < {n}) SELECT g, substr('00000000000000000000000000' || g, -26) AS lpad_g FROM s")
    for statement in seed_sql(n, now_ms, endpoint_ids):
        db.execute(statement)
    db.execute(stats_sql())
    db.commit()
    db.execute("ANALYZE")
    db.close()


def stats_sql():
    """Per-minute statistics of the seeded attempts, as the recorder would have written them."""
    return ("INSERT INTO attempt_stats SELECT d.tenant_id, (a.started_ms / 60000) * 60000, d.endpoint_id, "
            "SUM(CASE WHEN d.status = 'delivered' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN d.status = 'retrying' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN d.status = 'failed' THEN 1 ELSE 0 END), SUM(a.duration_ms), "
            "SUM(CASE WHEN a.duration_ms <= 5 THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN a.duration_ms > 5 AND a.duration_ms <= 10 THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN a.duration_ms > 10 AND a.duration_ms <= 25 THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN a.duration_ms > 25 THEN 1 ELSE 0 END), 0, 0, 0, 0, 0, 0, 0, 0 "
            "FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
            "GROUP BY d.tenant_id, (a.started_ms / 60000) * 60000, d.endpoint_id")


def postgres_seed(url, n, now_ms, endpoint_ids):
    series = (f"CREATE TEMP TABLE series AS SELECT g, lpad(g::text, 26, '0') AS lpad_g "
              f"FROM generate_series(0::bigint, {n - 1}) AS g;")
    script = series + ";".join(seed_sql(n, now_ms, endpoint_ids) + [stats_sql()])
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", script], check=True)
    # What autovacuum does to a table that has settled: statistics and the visibility map.
    subprocess.run(["psql", "-q", url, "-c", "VACUUM ANALYZE"], check=True)


def timed(base, path, runs=15):
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call(base, path)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def main():
    herald = sys.argv[1]
    store = sys.argv[2] if len(sys.argv) > 2 else "sqlite"
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    data_dir = tempfile.mkdtemp()
    database_url = None
    if store == "postgres":
        subprocess.run(["psql", "-q", PG_ADMIN, "-c", f"DROP DATABASE IF EXISTS {PG_DB}"], check=True)
        subprocess.run(["psql", "-q", PG_ADMIN, "-c", f"CREATE DATABASE {PG_DB}"], check=True)
        database_url = f"postgres://postgres@127.0.0.1:5432/{PG_DB}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    node = start(herald, data_dir, port, database_url)
    endpoint_ids = [call(base, "/v1/endpoints", "POST", {"url": f"http://127.0.0.1:9/ep{i}", "event_types": ["x.*"]})["id"]
                    for i in range(ENDPOINTS)]
    node.terminate()
    node.wait()
    print(f"seeding {n:,} deliveries on {store} ...", flush=True)
    started = time.time()
    now_ms = int(time.time() * 1000)
    if store == "postgres":
        postgres_seed(database_url, n, now_ms, endpoint_ids)
    else:
        sqlite_seed(os.path.join(data_dir, "herald.db"), n, now_ms, endpoint_ids)
    print(f"seeded in {time.time() - started:.0f} s", flush=True)
    node = start(herald, data_dir, port, database_url)
    try:
        ep = endpoint_ids[0]
        day_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86_400))
        some = call(base, "/v1/deliveries?status=failed&limit=1")["data"][0]
        queries = [
            ("overview: stats, last hour", "/v1/stats"),
            ("overview: stats, last day by minute", f"/v1/stats?since={day_ago}&bucket=60"),
            ("endpoint health: stats, last day", f"/v1/stats?since={day_ago}&bucket=60&endpoint_id={ep}"),
            ("endpoints list", "/v1/endpoints?limit=250"),
            ("outstanding: retrying", "/v1/deliveries?status=retrying&limit=50"),
            ("outstanding: failed", "/v1/deliveries?status=failed&limit=50"),
            ("delivery log", f"/v1/endpoints/{ep}/attempts?limit=25"),
            ("delivery log: failed only", f"/v1/endpoints/{ep}/attempts?status=failed&limit=25"),
            ("delivery log: a status none has", f"/v1/endpoints/{ep}/attempts?status=cancelled&limit=25"),
            ("a delivery", f"/v1/deliveries/{some['id']}"),
            ("search: correlation id", f"/v1/deliveries?correlation_id={some['correlation_id']}&limit=50"),
        ]
        print(f"\n| {store}, {n:,} deliveries | median ms | max ms |\n|---|---|---|")
        for label, path in queries:
            median, worst = timed(base, path)
            print(f"| {label} | {median:.1f} | {worst:.1f} |")
    finally:
        node.terminate()
        node.wait()


if __name__ == "__main__":
    main()

//! Results of a bench run and the SPEC §8 JSON object (`--json`), with each throughput also as a share of
//! the receiver's own ceiling; the human table is in [`super::table`].

use serde::Serialize;
use serde_json::{json, Map, Value};

/// Publish-to-receive latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// What the backlog scenario measured.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Backlog {
    /// Due deliveries built up before delivery started.
    pub deliveries: u64,
    /// Deliveries per second while draining.
    pub drain_per_s: f64,
    /// Peak resident memory of the draining server, MiB.
    pub peak_rss_mb: f64,
}

/// Delivery under a fixed publish rate (`latency`).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Paced {
    /// Deliveries per second from the first publish to the last arrival.
    pub delivered_per_s: f64,
    /// How long after the last publish the last delivery arrived, ms.
    pub lag_ms: f64,
    /// Publish call (request sent to answer read) p50 and p99, ms: the API's and the durable write's
    /// share of the trip.
    pub publish_p50: f64,
    /// See [`Paced::publish_p50`].
    pub publish_p99: f64,
}

/// What the fair scenario measured.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Fair {
    /// Tenant B's publish-to-receive latency while tenant A drained its backlog.
    pub b_latency: Latency,
    /// Tenant B's events.
    pub b_events: u64,
    /// Tenant A's deliveries not yet received when B's last event arrived.
    pub a_left: u64,
}

/// What the outage scenario measured.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Outage {
    /// Tenant B's publish-to-receive latency while tenant A's endpoints waited to retry.
    pub b_latency: Latency,
    /// Tenant B's events.
    pub b_events: u64,
    /// Tenant A's endpoints with a retry waiting.
    pub waiting: u64,
    /// Retries of tenant A's endpoints that went out before they were due (0).
    pub early_retries: u64,
}

/// What the history scenario measured.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct HistoryRun {
    /// Finished deliveries in the store before the run.
    pub finished: u64,
    /// End-to-end deliveries/s to one endpoint, as in `deliver`.
    pub deliver_per_s: f64,
    /// Server CPU per delivery, ms.
    pub cpu_ms_per_delivery: Option<f64>,
}

/// Everything a run measured; `None` for scenarios not run (or failed).
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Plain POSTs/s straight to the receiver.
    pub ceiling_posts_per_s: Option<f64>,
    /// Durable publishes/s with no endpoints.
    pub ingest_events_per_s: Option<f64>,
    /// End-to-end deliveries/s to one endpoint.
    pub deliver_per_s: Option<f64>,
    /// Server CPU spent per delivery in the deliver scenario, ms (extra field).
    pub deliver_cpu_ms: Option<f64>,
    /// Latency at a fixed publish rate.
    pub latency_ms: Option<Latency>,
    /// Delivery rate and lag at that fixed publish rate (extra fields).
    pub paced: Option<Paced>,
    /// Deliveries/s when each event goes to 1,000 endpoints.
    pub fanout_deliveries_per_s: Option<f64>,
    /// Backlog drain.
    pub backlog: Option<Backlog>,
    /// One tenant's latency while another drains a backlog.
    pub fair: Option<Fair>,
    /// One tenant's latency while another's endpoints wait out an outage.
    pub outage: Option<Outage>,
    /// `deliver` on a store holding a long history.
    pub history: Option<HistoryRun>,
    /// Largest `VmHWM` of any server process, MiB.
    pub server_peak_rss_mb: Option<f64>,
    /// `sqlite` or `postgres`.
    pub store: String,
    /// Scenario name -> error, for scenarios that failed.
    pub errors: Vec<(String, String)>,
}

impl Results {
    /// Fold one server's peak memory into `server_peak_rss_mb`.
    pub fn note_rss(&mut self, mb: Option<f64>) {
        if let Some(mb) = mb {
            self.server_peak_rss_mb = Some(self.server_peak_rss_mb.map_or(mb, |m| m.max(mb)));
        }
    }

    /// Each throughput divided by the ceiling, when both ran.
    fn ratios(&self) -> Vec<(&'static str, f64)> {
        let Some(ceiling) = self.ceiling_posts_per_s.filter(|c| *c > 0.0) else {
            return Vec::new();
        };
        [
            ("ingest", self.ingest_events_per_s),
            ("deliver", self.deliver_per_s),
            ("fanout", self.fanout_deliveries_per_s),
            ("backlog", self.backlog.map(|b| b.drain_per_s)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v / ceiling)))
        .collect()
    }
}

/// Facts about the run that are not measurements.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Meta {
    /// `git rev-parse --short HEAD`, when available.
    pub commit: Option<String>,
    /// CPUs available to the bench.
    pub cpus: usize,
    /// Total memory, GiB.
    pub memory_gb: f64,
    /// Scale settings used (events, duration, backlog, concurrency, rate).
    pub settings: Value,
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

/// The one JSON object of `--json`: the SPEC §8 fields, then extras.
pub fn to_json(r: &Results, meta: &Meta) -> Value {
    let per_s = |v: Option<f64>| v.map(|v| round(v, 0));
    let ratios: Map<String, Value> = r
        .ratios()
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(round(v, 4))))
        .collect();
    json!({
        "ingest_events_per_s": per_s(r.ingest_events_per_s),
        "deliver_per_s": per_s(r.deliver_per_s),
        "latency_ms": r.latency_ms.map(|l| json!({
            "p50": round(l.p50, 2), "p95": round(l.p95, 2), "p99": round(l.p99, 2),
        })),
        "fanout_deliveries_per_s": per_s(r.fanout_deliveries_per_s),
        "backlog": r.backlog.map(|b| json!({
            "deliveries": b.deliveries,
            "drain_per_s": round(b.drain_per_s, 0),
            "peak_rss_mb": round(b.peak_rss_mb, 1),
        })),
        "ceiling_posts_per_s": per_s(r.ceiling_posts_per_s),
        "server_peak_rss_mb": r.server_peak_rss_mb.map(|m| round(m, 1)),
        "store": r.store,
        "ratios": if ratios.is_empty() { Value::Null } else { Value::Object(ratios) },
        "deliver_server_cpu_ms_per_delivery": r.deliver_cpu_ms.map(|m| round(m, 3)),
        "latency_delivered_per_s": r.paced.map(|p| round(p.delivered_per_s, 0)),
        "latency_lag_ms": r.paced.map(|p| round(p.lag_ms, 1)),
        "latency_publish_ms": r.paced.map(|p| json!({
            "p50": round(p.publish_p50, 2), "p99": round(p.publish_p99, 2),
        })),
        "fair": r.fair.map(|f| json!({
            "b_latency_ms": { "p50": round(f.b_latency.p50, 2), "p95": round(f.b_latency.p95, 2),
                              "p99": round(f.b_latency.p99, 2) },
            "b_events": f.b_events,
            "a_left": f.a_left,
        })),
        "outage": r.outage.map(|o| json!({
            "b_latency_ms": { "p50": round(o.b_latency.p50, 2), "p95": round(o.b_latency.p95, 2),
                              "p99": round(o.b_latency.p99, 2) },
            "b_events": o.b_events,
            "waiting": o.waiting,
            "early_retries": o.early_retries,
        })),
        "history": r.history.map(|h| json!({
            "finished": h.finished,
            "deliver_per_s": round(h.deliver_per_s, 0),
            "cpu_ms_per_delivery": h.cpu_ms_per_delivery.map(|m| round(m, 3)),
            "share_of_deliver": r.deliver_per_s.filter(|d| *d > 0.0).map(|d| round(h.deliver_per_s / d, 3)),
        })),
        "commit": meta.commit,
        "machine": { "cpus": meta.cpus, "memory_gb": round(meta.memory_gb, 1) },
        "settings": meta.settings,
        "errors": if r.errors.is_empty() { Value::Null } else {
            Value::Object(r.errors.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
        },
    })
}

/// Nearest-rank percentile (`p` in 0-100) of `sorted` (ascending); `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        let v = [1.0, 2.0, 3.0];
        assert_eq!(percentile(&v, 50.0), Some(2.0));
        assert_eq!(percentile(&v, 67.0), Some(3.0));
    }

    /// A run with the ceiling, deliver, latency and backlog measured.
    pub(in super::super) fn sample() -> Results {
        Results {
            ceiling_posts_per_s: Some(100_000.0),
            deliver_per_s: Some(25_800.0),
            latency_ms: Some(Latency {
                p50: 1.234,
                p95: 2.5,
                p99: 9.999,
            }),
            backlog: Some(Backlog {
                deliveries: 1_000_000,
                drain_per_s: 20_000.4,
                peak_rss_mb: 80.04,
            }),
            server_peak_rss_mb: Some(81.0),
            store: "sqlite".into(),
            ..Results::default()
        }
    }

    #[test]
    fn json_has_every_spec_field_and_nulls_for_scenarios_not_run() {
        let mut r = sample();
        r.note_rss(Some(90.0));
        r.note_rss(Some(10.0));
        let v = to_json(&r, &Meta::default());
        for key in [
            "ingest_events_per_s",
            "deliver_per_s",
            "latency_ms",
            "fanout_deliveries_per_s",
            "backlog",
            "ceiling_posts_per_s",
            "server_peak_rss_mb",
            "store",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["ingest_events_per_s"], Value::Null);
        assert_eq!(v["fanout_deliveries_per_s"], Value::Null);
        assert_eq!(v["deliver_per_s"], json!(25_800.0));
        assert_eq!(
            v["latency_ms"],
            json!({"p50": 1.23, "p95": 2.5, "p99": 10.0})
        );
        assert_eq!(v["backlog"]["deliveries"], json!(1_000_000));
        assert_eq!(v["backlog"]["drain_per_s"], json!(20_000.0));
        assert_eq!(v["server_peak_rss_mb"], json!(90.0));
        assert_eq!(v["ratios"]["deliver"], json!(0.258));
        assert_eq!(v["store"], "sqlite");
    }
}

//! Results of a bench run: the SPEC §8 JSON object (`--json`) and the human table, with each throughput also
//! shown as a share of the receiver's own ceiling.

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

/// `1234567.8` -> `1,234,568`.
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// ` (24% of ceiling)` when the ceiling ran.
fn share(r: &Results, v: f64) -> String {
    match r.ceiling_posts_per_s.filter(|c| *c > 0.0) {
        Some(c) => format!("  ({:.0}% of ceiling)", 100.0 * v / c),
        None => String::new(),
    }
}

/// The human-readable table.
pub fn table(r: &Results, meta: &Meta) -> String {
    let mut rows: Vec<(&str, String)> = Vec::new();
    if let Some(c) = r.ceiling_posts_per_s {
        rows.push((
            "ceiling",
            format!("{}/s  (receiver alone: 100%)", thousands(c)),
        ));
    }
    if let Some(v) = r.ingest_events_per_s {
        rows.push(("ingest", format!("{}/s{}", thousands(v), share(r, v))));
    }
    if let Some(v) = r.deliver_per_s {
        let cpu = r
            .deliver_cpu_ms
            .map(|m| format!("  [{m:.3} ms server CPU per delivery]"))
            .unwrap_or_default();
        rows.push(("deliver", format!("{}/s{}{cpu}", thousands(v), share(r, v))));
    }
    if let Some(l) = r.latency_ms {
        rows.push((
            "latency",
            format!(
                "p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms{}",
                l.p50,
                l.p95,
                l.p99,
                r.paced
                    .map(|p| format!(
                        "  [delivered {}/s, lag {:.0} ms; publish answered p50 {:.2} ms, p99 {:.2} ms]",
                        thousands(p.delivered_per_s),
                        p.lag_ms,
                        p.publish_p50,
                        p.publish_p99
                    ))
                    .unwrap_or_default()
            ),
        ));
    }
    if let Some(v) = r.fanout_deliveries_per_s {
        rows.push(("fanout", format!("{}/s{}", thousands(v), share(r, v))));
    }
    if let Some(b) = r.backlog {
        rows.push((
            "backlog",
            format!(
                "{}/s{}  draining {} deliveries, peak RSS {:.1} MB",
                thousands(b.drain_per_s),
                share(r, b.drain_per_s),
                thousands(b.deliveries as f64),
                b.peak_rss_mb
            ),
        ));
    }
    if let Some(f) = r.fair {
        rows.push((
            "fair",
            format!(
                "tenant B p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms ({} events) while tenant A had {} left",
                f.b_latency.p50,
                f.b_latency.p95,
                f.b_latency.p99,
                f.b_events,
                thousands(f.a_left as f64)
            ),
        ));
    }
    if let Some(h) = r.history {
        let cpu = h
            .cpu_ms_per_delivery
            .map(|m| format!("  [{m:.3} ms server CPU per delivery]"))
            .unwrap_or_default();
        let against = r
            .deliver_per_s
            .filter(|d| *d > 0.0)
            .map(|d| format!(", {:.0}% of deliver", 100.0 * h.deliver_per_s / d))
            .unwrap_or_default();
        rows.push((
            "history",
            format!(
                "{}/s  with {} finished deliveries in the store{against}{cpu}",
                thousands(h.deliver_per_s),
                thousands(h.finished as f64)
            ),
        ));
    }
    if let Some(m) = r.server_peak_rss_mb {
        rows.push(("peak RSS", format!("{m:.1} MB (largest server VmHWM)")));
    }
    for (name, err) in &r.errors {
        rows.push((name.as_str(), format!("FAILED: {err}")));
    }
    let mut out = format!(
        "Herald bench: store {}, {} CPUs, {:.0} GB RAM, commit {}\n",
        r.store,
        meta.cpus,
        meta.memory_gb,
        meta.commit.as_deref().unwrap_or("unknown")
    );
    for (name, value) in rows {
        out.push_str(&format!("  {name:<9} {value}\n"));
    }
    out
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
mod tests {
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

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(25_800.0), "25,800");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
    }

    fn sample() -> Results {
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
    fn table_shows_share_of_ceiling() {
        let t = table(&sample(), &Meta::default());
        assert!(t.contains("deliver   25,800/s  (26% of ceiling)"), "{t}");
        assert!(t.contains("backlog   20,000/s  (20% of ceiling)"), "{t}");
        assert!(t.contains("p99 10.00 ms"), "{t}");
        assert!(!t.contains("ingest"), "{t}");
        let mut no_ceiling = sample();
        no_ceiling.ceiling_posts_per_s = None;
        assert!(!table(&no_ceiling, &Meta::default()).contains("of ceiling"));
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

//! The human-readable table of a bench run, with each throughput also shown as a share of the
//! receiver's own ceiling.

use super::report::{Meta, Results};

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
    if let Some(o) = r.outage {
        rows.push((
            "outage",
            format!(
                "tenant B p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms ({} events) while {} endpoints of tenant A waited to retry",
                o.b_latency.p50,
                o.b_latency.p95,
                o.b_latency.p99,
                o.b_events,
                thousands(o.waiting as f64)
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

#[cfg(test)]
mod tests {
    use super::super::report::tests::sample;
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(25_800.0), "25,800");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
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
}

//! Prometheus text format from the OpenMetrics exposition `prometheus-client` writes.

/// The Prometheus text format (0.0.4) of an OpenMetrics exposition: a counter family is named after its
/// `_total` samples, and the OpenMetrics-only `# EOF` and `# UNIT` lines go. Every Prometheus version and
/// `promtool` read this format.
pub(super) fn prometheus_text(openmetrics: &str) -> String {
    let mut counters: Vec<&str> = Vec::new();
    for line in openmetrics.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_suffix(" counter"))
        {
            counters.push(name);
        }
    }
    let mut out = String::with_capacity(openmetrics.len() + counters.len() * 12);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_after_their_samples_and_openmetrics_lines_go() {
        let om = "# HELP a Things.\n# TYPE a counter\n# UNIT a seconds\na_total 1\n# TYPE g gauge\ng 2\n# EOF\n";
        assert_eq!(
            prometheus_text(om),
            "# HELP a_total Things.\n# TYPE a_total counter\na_total 1\n# TYPE g gauge\ng 2\n"
        );
    }
}

use super::*;

#[test]
fn seed_003_names_and_counts_appear() {
    let m = Metrics::new("node-a");
    m.attempt(AttemptEnd::Delivered, 0.01);
    m.attempt(AttemptEnd::Delivered, 0.02);
    m.attempt(AttemptEnd::Failed, 0.5);
    m.job_ended("proxy", "succeeded", 1.5);
    m.published(3);
    let text = m.encode(&Snapshot::default());
    assert!(
        text.contains(r#"webhook_delivery_total{status="success",worker_id="node-a"} 2"#),
        "{text}"
    );
    assert!(text.contains(r#"webhook_delivery_total{status="failure",worker_id="node-a"} 1"#));
    assert!(text.contains(r#"webhook_delivery_seconds_count{worker_id="node-a"} 3"#));
    assert!(text.contains(
        r#"task_processing_total{status="succeeded",mode="proxy",worker_id="node-a"} 1"#
    ));
    assert!(text.contains("herald_events_published_total 3"));
    assert!(text.contains(r#"herald_deliveries_total{outcome="delivered"} 2"#));
    assert!(text.contains("# TYPE webhook_delivery_total counter"));
    assert!(text.contains("# HELP herald_events_published_total Events published"));
    assert!(!text.contains("# EOF"));
}

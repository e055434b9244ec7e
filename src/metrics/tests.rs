//! Unit tests of the registry: what each recording shows in the exposition.

use super::*;

/// The value of the sample `series` (name with labels, as exposed) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn encodes_recorded_values_with_help_and_types() {
    let m = Metrics::new(2.0);
    m.alerts_received("alertmanager", 3);
    m.alerts_stored("alertmanager", 3);
    m.webhook_rejected("grafana", "invalid_credentials");
    m.slack_call("chat.postMessage", "ok");
    m.slack_call("chat.postMessage", "rate_limited");
    m.search(Duration::from_millis(30));
    m.envelope_acked("events_api", Duration::from_millis(2));
    m.llm_call("diagnosis", "ok", 100, 20);
    m.incident_llm_usage(1500);
    m.diagnosis_fallback("timeout");
    m.action_run("succeeded");
    m.set_database_gauges(Some((4, 9)));
    let t = m.encode();
    let v = |s: &str| sample(&t, s).unwrap_or_else(|| panic!("{s} missing from\n{t}"));
    assert_eq!(
        v(r#"sentinel_alerts_received_total{source="alertmanager"}"#),
        3.0
    );
    assert_eq!(
        v(
            r#"sentinel_webhook_requests_rejected_total{source="grafana",reason="invalid_credentials"}"#
        ),
        1.0
    );
    assert_eq!(
        v(r#"sentinel_slack_api_calls_total{method="chat.postMessage",outcome="ok"}"#),
        1.0
    );
    assert_eq!(
        v(r#"sentinel_slack_api_rate_limited_total{method="chat.postMessage"}"#),
        1.0
    );
    assert_eq!(
        v(r#"sentinel_knowledge_search_seconds_bucket{le="0.025"}"#),
        0.0
    );
    assert_eq!(
        v(r#"sentinel_knowledge_search_seconds_bucket{le="0.05"}"#),
        1.0
    );
    assert_eq!(v("sentinel_knowledge_search_seconds_count"), 1.0);
    assert_eq!(v(r#"sentinel_llm_tokens_total{kind="prompt"}"#), 100.0);
    assert_eq!(v(r#"sentinel_llm_tokens_total{kind="completion"}"#), 20.0);
    // 1,500 tokens at 2 dollars per 1k.
    assert_eq!(v("sentinel_llm_incident_cost_dollars_sum"), 3.0);
    assert_eq!(
        v(r#"sentinel_diagnosis_fallbacks_total{reason="timeout"}"#),
        1.0
    );
    assert_eq!(v(r#"sentinel_action_runs_total{outcome="succeeded"}"#), 1.0);
    assert_eq!(v("sentinel_incidents_open"), 4.0);
    assert_eq!(v("sentinel_audit_chain_length"), 9.0);
    assert_eq!(v("sentinel_database_up"), 1.0);
    assert!(
        t.contains("# TYPE sentinel_slack_envelope_ack_seconds histogram"),
        "{t}"
    );
    assert!(
        t.contains("# HELP sentinel_incidents_open Incidents firing"),
        "{t}"
    );
}

#[test]
fn reconnects_are_hellos_past_the_first_connections() {
    let m = Metrics::default();
    for _ in 0..5 {
        m.socket_hello(2);
    }
    let t = m.encode();
    assert_eq!(
        sample(&t, "sentinel_slack_socket_connections_total"),
        Some(5.0)
    );
    assert_eq!(
        sample(&t, "sentinel_slack_socket_reconnects_total"),
        Some(3.0)
    );
}

#[test]
fn a_failed_database_read_says_so() {
    let m = Metrics::default();
    m.set_database_gauges(Some((2, 2)));
    m.set_database_gauges(None);
    assert_eq!(sample(&m.encode(), "sentinel_database_up"), Some(0.0));
}

#[test]
fn separate_registries_do_not_share_values() {
    let (a, b) = (Metrics::default(), Metrics::default());
    a.alerts_stored("generic", 1);
    assert!(sample(
        &b.encode(),
        r#"sentinel_alerts_stored_total{source="generic"}"#
    )
    .is_none());
}

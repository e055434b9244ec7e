//! Prometheus metrics: one registry per process (one per `Stack` in tests, never a global),
//! typed families the parts record into, and the text exposition `GET /metrics` serves.
//! Every metric is described in `docs/metrics.md`; label values come from fixed sets
//! (sources, error codes, Slack methods, outcomes), never from alert or user text.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

mod scrape;

/// The `Content-Type` of the exposition (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Latency buckets in seconds, 1 ms to 10 s: acks, searches. Explicit buckets so
/// replicas' histograms can be summed.
const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Tokens one incident has cost so far, 100 to 1M.
const TOKEN_BUCKETS: [f64; 9] = [100.0, 500.0, 1e3, 2.5e3, 5e3, 1e4, 5e4, 1e5, 1e6];
/// Estimated cost of one incident in dollars, 0.1 cent to 10 dollars.
const COST_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 10.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    source: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SlackCallLabels {
    method: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LlmCallLabels {
    purpose: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// The families. Held behind an `Arc`: every clone records into the same registry.
struct Inner {
    registry: Registry,
    alerts_received: Family<SourceLabel, Counter>,
    alerts_stored: Family<SourceLabel, Counter>,
    webhooks_rejected: Family<RejectLabels, Counter>,
    incidents_open: Gauge,
    audit_chain_length: Gauge,
    database_up: Gauge,
    slack_calls: Family<SlackCallLabels, Counter>,
    slack_rate_limited: Family<MethodLabel, Counter>,
    socket_connections: Counter,
    socket_reconnects: Counter,
    /// Socket Mode `hello`s seen; the first `connections` of them are not reconnects.
    hellos: AtomicU64,
    envelope_ack: Family<KindLabel, Histogram>,
    search_duration: Histogram,
    llm_calls: Family<LlmCallLabels, Counter>,
    llm_tokens: Family<KindLabel, Counter>,
    incident_tokens: Histogram,
    incident_cost: Histogram,
    fallbacks: Family<ReasonLabel, Counter>,
    action_runs: Family<OutcomeLabel, Counter>,
    /// Dollars per 1,000 tokens (`SENTINEL_LLM_PRICE_PER_1K_TOKENS`); 0 = unknown.
    price_per_1k: f64,
}

/// The handle the parts record into; cheap to clone. Built once by the composition root
/// (`App`, or a test's set-up) and passed down.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// A registry nobody scrapes (benches, one-shot commands): recording into it is harmless.
impl Default for Metrics {
    fn default() -> Self {
        Self::new(0.0)
    }
}

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Metrics {
    /// A fresh registry; `price_per_1k` is the LLM's price in dollars per 1,000 tokens
    /// (0 when unknown: the cost histogram then records zeros).
    pub fn new(price_per_1k: f64) -> Self {
        let mut r = Registry::default();
        let alerts_received = Family::<SourceLabel, Counter>::default();
        r.register(
            "sentinel_alerts_received",
            "Alerts parsed from authenticated webhook requests, by source",
            alerts_received.clone(),
        );
        let alerts_stored = Family::<SourceLabel, Counter>::default();
        r.register(
            "sentinel_alerts_stored",
            "Alerts committed to Postgres before the sender got its 2xx, by source",
            alerts_stored.clone(),
        );
        let webhooks_rejected = Family::<RejectLabels, Counter>::default();
        r.register(
            "sentinel_webhook_requests_rejected",
            "Webhook requests refused, by source and reason (the JSON error code)",
            webhooks_rejected.clone(),
        );
        let incidents_open = Gauge::default();
        r.register(
            "sentinel_incidents_open",
            "Incidents firing, counted in Postgres at scrape time (the same on every replica)",
            incidents_open.clone(),
        );
        let audit_chain_length = Gauge::default();
        r.register(
            "sentinel_audit_chain_length",
            "Events in the audit chain (its head's sequence number), read at scrape time",
            audit_chain_length.clone(),
        );
        let database_up = Gauge::default();
        r.register(
            "sentinel_database_up",
            "1 if the scrape could read Postgres, else 0 (the two gauges above are then stale)",
            database_up.clone(),
        );
        let slack_calls = Family::<SlackCallLabels, Counter>::default();
        r.register(
            "sentinel_slack_api_calls",
            "Slack Web API requests sent (each retry counts), by method and outcome",
            slack_calls.clone(),
        );
        let slack_rate_limited = Family::<MethodLabel, Counter>::default();
        r.register(
            "sentinel_slack_api_rate_limited",
            "Slack Web API answers HTTP 429, by method",
            slack_rate_limited.clone(),
        );
        let socket_connections = Counter::default();
        r.register(
            "sentinel_slack_socket_connections",
            "Socket Mode connections opened (Slack said hello)",
            socket_connections.clone(),
        );
        let socket_reconnects = Counter::default();
        r.register(
            "sentinel_slack_socket_reconnects",
            "Socket Mode connections opened after the first ones (reconnects and Slack's refreshes)",
            socket_reconnects.clone(),
        );
        let envelope_ack =
            Family::<KindLabel, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        r.register_with_unit(
            "sentinel_slack_envelope_ack",
            "Time from a Socket Mode envelope's arrival to its ack being handed back, by envelope kind",
            Unit::Seconds,
            envelope_ack.clone(),
        );
        let search_duration = latency();
        r.register_with_unit(
            "sentinel_knowledge_search",
            "Runbook knowledge searches (hybrid: exact, vector, full text), duration",
            Unit::Seconds,
            search_duration.clone(),
        );
        let llm_calls = Family::<LlmCallLabels, Counter>::default();
        r.register(
            "sentinel_llm_calls",
            "LLM requests (each retry counts), by purpose and outcome",
            llm_calls.clone(),
        );
        let llm_tokens = Family::<KindLabel, Counter>::default();
        r.register(
            "sentinel_llm_tokens",
            "LLM tokens used, by kind (prompt, completion)",
            llm_tokens.clone(),
        );
        let incident_tokens = Histogram::new(TOKEN_BUCKETS);
        r.register(
            "sentinel_llm_incident_tokens",
            "Tokens an incident has cost, observed once per incident diagnosis",
            incident_tokens.clone(),
        );
        let incident_cost = Histogram::new(COST_BUCKETS);
        r.register(
            "sentinel_llm_incident_cost_dollars",
            "Estimated LLM cost of an incident (tokens x SENTINEL_LLM_PRICE_PER_1K_TOKENS / 1000), observed once per incident diagnosis",
            incident_cost.clone(),
        );
        let fallbacks = Family::<ReasonLabel, Counter>::default();
        r.register(
            "sentinel_diagnosis_fallbacks",
            "Diagnoses that fell back to the runbook instead of an LLM draft, by reason",
            fallbacks.clone(),
        );
        let action_runs = Family::<OutcomeLabel, Counter>::default();
        r.register(
            "sentinel_action_runs",
            "Remediation action runs finished, by outcome (the proposal's state)",
            action_runs.clone(),
        );
        Self(Arc::new(Inner {
            registry: r,
            alerts_received,
            alerts_stored,
            webhooks_rejected,
            incidents_open,
            audit_chain_length,
            database_up,
            slack_calls,
            slack_rate_limited,
            socket_connections,
            socket_reconnects,
            hellos: AtomicU64::new(0),
            envelope_ack,
            search_duration,
            llm_calls,
            llm_tokens,
            incident_tokens,
            incident_cost,
            fallbacks,
            action_runs,
            price_per_1k: price_per_1k.max(0.0),
        }))
    }

    /// The exposition, Prometheus text format 0.0.4.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.0.registry);
        out
    }

    pub fn alerts_received(&self, source: &'static str, n: usize) {
        self.0
            .alerts_received
            .get_or_create(&SourceLabel { source })
            .inc_by(n as u64);
    }

    pub fn alerts_stored(&self, source: &'static str, n: usize) {
        self.0
            .alerts_stored
            .get_or_create(&SourceLabel { source })
            .inc_by(n as u64);
    }

    /// `reason` is the refusal's JSON error code (a fixed set, `http::ApiError`).
    pub fn webhook_rejected(&self, source: &'static str, reason: &'static str) {
        self.0
            .webhooks_rejected
            .get_or_create(&RejectLabels { source, reason })
            .inc();
    }

    /// The values read from Postgres at scrape time; `None` when it could not be read.
    pub fn set_database_gauges(&self, read: Option<(i64, i64)>) {
        match read {
            Some((open, chain)) => {
                self.0.incidents_open.set(open);
                self.0.audit_chain_length.set(chain);
                self.0.database_up.set(1);
            }
            None => {
                self.0.database_up.set(0);
            }
        }
    }

    /// One Web API request; `outcome` is `ok`, `rate_limited`, or the error kind.
    pub fn slack_call(&self, method: &str, outcome: &'static str) {
        let method = method.to_string();
        if outcome == "rate_limited" {
            self.0
                .slack_rate_limited
                .get_or_create(&MethodLabel {
                    method: method.clone(),
                })
                .inc();
        }
        self.0
            .slack_calls
            .get_or_create(&SlackCallLabels { method, outcome })
            .inc();
    }

    /// Slack said `hello` on a connection; past the first `connections`, it is a reconnect.
    pub fn socket_hello(&self, connections: u32) {
        self.0.socket_connections.inc();
        if self.0.hellos.fetch_add(1, Ordering::Relaxed) >= u64::from(connections) {
            self.0.socket_reconnects.inc();
        }
    }

    pub fn envelope_acked(&self, kind: &'static str, took: Duration) {
        self.0
            .envelope_ack
            .get_or_create(&KindLabel { kind })
            .observe(took.as_secs_f64());
    }

    pub fn search(&self, took: Duration) {
        self.0.search_duration.observe(took.as_secs_f64());
    }

    pub fn llm_call(
        &self,
        purpose: &'static str,
        outcome: &'static str,
        prompt: u32,
        completion: u32,
    ) {
        self.0
            .llm_calls
            .get_or_create(&LlmCallLabels { purpose, outcome })
            .inc();
        for (kind, n) in [("prompt", prompt), ("completion", completion)] {
            self.0
                .llm_tokens
                .get_or_create(&KindLabel { kind })
                .inc_by(u64::from(n));
        }
    }

    /// An incident's diagnosis is done: the tokens it has cost so far, and their price.
    pub fn incident_llm_usage(&self, tokens: u64) {
        self.0.incident_tokens.observe(tokens as f64);
        self.0
            .incident_cost
            .observe(tokens as f64 / 1000.0 * self.0.price_per_1k);
    }

    pub fn diagnosis_fallback(&self, reason: &'static str) {
        self.0
            .fallbacks
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// `outcome` is the proposal's final state (`store::state`, a fixed set).
    pub fn action_run(&self, outcome: &str) {
        self.0
            .action_runs
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests;

//! `sentinel bench llm-outage`: a burst of incidents while the LLM hangs on every call,
//! through the webhook and the incident engine into a recording Slack port. How long until
//! each incident's root and runbook reply are posted, and until its runbook fallback is
//! edited in; then, once the LLM answers again, how long until a new incident gets a draft.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use sqlx::PgPool;

use super::alerts::{am_payload, post, scratch, start_routed};
use super::diagnosis::draft_answer;
use super::{percentile, print_report_pretty, round2};
use crate::app::App;
use crate::diagnosis::breaker::BreakerConfig;
use crate::diagnosis::{Diagnoser, DiagnoserOptions};
use crate::incidents::{Routes, StormConfig};
use crate::knowledge::{ingest, KnowledgeBase};
use crate::llm::testserver::{Reply, TestLlm};
use crate::llm::{LlmClient, TokenLedger};
use crate::slack::recorder::{Call, Recorder};
use crate::slack::Message;
use crate::stack::SlackSide;

#[derive(Debug, Args)]
pub struct OutageArgs {
    /// Incidents arriving at once, each in a channel of its own.
    #[arg(long, default_value_t = 50)]
    pub incidents: usize,
    /// Timeout of one LLM call (the default of SENTINEL_LLM_TIMEOUT_MS); the diagnosis
    /// deadline is twice this, as in `serve`.
    #[arg(long, default_value_t = 20_000)]
    pub llm_timeout_ms: u64,
    /// The breaker's probe interval (SENTINEL_LLM_BREAKER_PROBE_SECS).
    #[arg(long, default_value_t = 30)]
    pub probe_secs: u64,
    /// Runbooks in the knowledge base (database `sentinel_bench_outage`).
    #[arg(long, default_value = "runbooks")]
    pub runbooks: PathBuf,
    #[arg(long)]
    pub json: bool,
}

/// What [`measure`] runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub incidents: usize,
    pub llm_timeout: Duration,
    pub diagnosis_workers: usize,
    pub breaker: BreakerConfig,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            incidents: 50,
            llm_timeout: Duration::from_secs(20),
            diagnosis_workers: DiagnoserOptions::default().workers,
            breaker: BreakerConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OutageReport {
    pub incidents: usize,
    pub llm_timeout_ms: u64,
    pub diagnosis_workers: usize,
    pub breaker_failures: u32,
    pub probe_secs: f64,
    /// From the burst of webhooks to each incident's root post.
    pub root_p50_ms: f64,
    pub root_max_ms: f64,
    /// ... to its runbook reply.
    pub reply_p50_ms: f64,
    pub reply_max_ms: f64,
    /// ... to its diagnosis edited into that reply (the runbook fallback: the LLM hangs).
    pub fallback_p50_ms: f64,
    pub fallback_max_ms: f64,
    /// Incidents whose thread shows the runbook fallback, and how many of those say the
    /// circuit is open (the rest waited for their own LLM timeout).
    pub fallbacks: usize,
    pub circuit_open_fallbacks: usize,
    /// Requests that reached the hanging LLM.
    pub llm_requests: usize,
    /// From the LLM answering again to the first new incident's LLM draft edited in (new
    /// incidents are sent every 500 ms until one gets a draft).
    pub recovered_draft_ms: f64,
    pub recovery_incidents: usize,
    /// The incident after that one got a draft too (the circuit is closed).
    pub next_incident_drafted: bool,
}

/// The report, and the Slack side as people saw it.
pub struct Measured {
    pub report: OutageReport,
    pub slack: Arc<Recorder>,
    /// The channel of each incident of the burst.
    pub burst_channels: Vec<String>,
    /// The channels of the incidents sent after the LLM recovered, in order.
    pub recovery_channels: Vec<String>,
}

pub async fn run(app: &App, a: OutageArgs) -> anyhow::Result<i32> {
    let pool = scratch(app, "sentinel_bench_outage").await?;
    let embedder = app.embedder().await?;
    ingest::ingest(
        &pool,
        embedder.as_ref(),
        std::slice::from_ref(&a.runbooks),
        false,
    )
    .await?;
    let kb = KnowledgeBase::open(pool.clone(), embedder).await?;
    let o = Options {
        incidents: a.incidents,
        llm_timeout: Duration::from_millis(a.llm_timeout_ms),
        breaker: BreakerConfig {
            probe: Duration::from_secs(a.probe_secs),
            ..BreakerConfig::default()
        },
        ..Options::default()
    };
    let m = measure(&pool, kb, &o).await?;
    print_report_pretty(&m.report, a.json)?;
    let r = &m.report;
    Ok(if r.fallbacks == r.incidents && r.next_incident_drafted {
        0
    } else {
        1
    })
}

/// Channel of the `i`-th incident; `route` sends group `g{i}` there.
fn channel(i: usize) -> String {
    format!("C0OUT{i:04}")
}

/// Incidents sent after recovery, at most (the probe interval bounds how many are needed).
const MAX_RECOVERY: usize = 1000;
const RECOVERY_EVERY: Duration = Duration::from_millis(500);

/// Runs the burst, then the recovery, on `pool` with the knowledge base `kb`.
pub async fn measure(pool: &PgPool, kb: KnowledgeBase, o: &Options) -> anyhow::Result<Measured> {
    let server = TestLlm::start(Reply::delayed(
        Duration::from_secs(24 * 3600),
        Reply::status(500),
    ))
    .await?;
    let llm = LlmClient::new(
        server.config(o.llm_timeout),
        TokenLedger::postgres(pool.clone()),
    );
    let deadline = o.llm_timeout * 2;
    let diagnoser = Diagnoser::new(
        kb,
        Some(Arc::new(llm)),
        DiagnoserOptions {
            llm_deadline: deadline,
            workers: o.diagnosis_workers,
            breaker: o.breaker,
            ..DiagnoserOptions::default()
        },
    );
    let routes: String = (0..o.incidents + MAX_RECOVERY)
        .map(|i| format!("group=g{i} -> {}", channel(i)))
        .collect::<Vec<_>>()
        .join("; ");
    let watch = Arc::new(Watch::default());
    let slack = watch.recorder();
    let stack = start_routed(
        pool,
        SlackSide::Port(slack.clone()),
        Some(Arc::new(diagnoser)),
        Routes::parse(&routes, "C0OUTREST")?,
        StormConfig {
            threshold: u32::MAX,
            ..StormConfig::default()
        },
    )
    .await?;
    let hook = format!("http://{}/hooks/alertmanager", stack.webhook_addr);
    let client = crate::net::client();
    let send = |i: usize| {
        let (client, hook) = (&client, &hook);
        async move {
            let (ok, _) = post(client, hook, am_payload(i, 0..1, "KubePodCrashLooping")).await;
            anyhow::ensure!(ok, "the webhook refused incident {i}");
            anyhow::Ok(())
        }
    };

    // The burst: every webhook at once, the LLM hanging.
    let burst: Vec<String> = (0..o.incidents).map(channel).collect();
    let t0 = Instant::now();
    futures::future::try_join_all((0..o.incidents).map(send)).await?;
    let wait = o.llm_timeout * 2 + deadline + Duration::from_secs(120);
    let all_diagnosed = |s: &HashMap<String, Seen>| {
        burst
            .iter()
            .all(|c| s.get(c).is_some_and(|x| x.diagnosed.is_some()))
    };
    anyhow::ensure!(
        watch.wait(wait, all_diagnosed).await,
        "not every incident was diagnosed within {wait:?}"
    );
    let seen = watch.snapshot();
    let ms = |f: &dyn Fn(&Seen) -> Option<Instant>| -> Vec<f64> {
        let mut v: Vec<f64> = burst
            .iter()
            .filter_map(|c| seen.get(c).and_then(f))
            .map(|t| t.duration_since(t0).as_secs_f64() * 1000.0)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let roots = ms(&|s| s.root.as_ref().map(|r| r.1));
    let replies = ms(&|s| s.reply.as_ref().map(|r| r.1));
    let fallbacks = ms(&|s| s.diagnosed.filter(|d| d.1 != Shown::Draft).map(|d| d.0));
    let circuit_open = burst
        .iter()
        .filter(|c| seen.get(*c).and_then(|s| s.diagnosed).map(|d| d.1) == Some(Shown::CircuitOpen))
        .count();
    let llm_requests = server.requests().len();

    // The LLM answers again: new incidents until one gets a draft, then one more.
    server.set_default(draft_answer());
    let recovered = Instant::now();
    let mut recovery = Vec::new();
    let mut drafted = None;
    for i in o.incidents..o.incidents + MAX_RECOVERY {
        let ch = channel(i);
        recovery.push(ch.clone());
        send(i).await?;
        let got = watch
            .wait(deadline + Duration::from_secs(60), |s| {
                s.get(&ch).is_some_and(|x| x.diagnosed.is_some())
            })
            .await;
        anyhow::ensure!(
            got,
            "incident {i} was not diagnosed after the LLM recovered"
        );
        let d = watch.snapshot()[&ch].diagnosed;
        if let Some((at, Shown::Draft)) = d {
            drafted = Some(at.duration_since(recovered));
            break;
        }
        if recovered.elapsed() > o.breaker.probe + deadline * 2 + Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(RECOVERY_EVERY).await;
    }
    let next = o.incidents + recovery.len();
    let ch = channel(next);
    send(next).await?;
    watch
        .wait(deadline + Duration::from_secs(60), |s| {
            s.get(&ch).is_some_and(|x| x.diagnosed.is_some())
        })
        .await;
    let next_drafted = watch
        .snapshot()
        .get(&ch)
        .and_then(|s| s.diagnosed)
        .map(|d| d.1)
        == Some(Shown::Draft);
    recovery.push(ch);
    stack.shutdown().await;

    let report = OutageReport {
        incidents: o.incidents,
        llm_timeout_ms: o.llm_timeout.as_millis() as u64,
        diagnosis_workers: o.diagnosis_workers,
        breaker_failures: o.breaker.failures,
        probe_secs: o.breaker.probe.as_secs_f64(),
        root_p50_ms: round2(percentile(&roots, 50.0)),
        root_max_ms: round2(roots.last().copied().unwrap_or(0.0)),
        reply_p50_ms: round2(percentile(&replies, 50.0)),
        reply_max_ms: round2(replies.last().copied().unwrap_or(0.0)),
        fallback_p50_ms: round2(percentile(&fallbacks, 50.0)),
        fallback_max_ms: round2(fallbacks.last().copied().unwrap_or(0.0)),
        fallbacks: fallbacks.len(),
        circuit_open_fallbacks: circuit_open,
        llm_requests,
        recovered_draft_ms: round2(drafted.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)),
        recovery_incidents: recovery.len() - 1,
        next_incident_drafted: next_drafted,
    };
    Ok(Measured {
        report,
        slack,
        burst_channels: burst,
        recovery_channels: recovery,
    })
}

/// What the diagnosis edit shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    Draft,
    CircuitOpen,
    OtherFallback,
}

/// When each channel's thread got its root, its runbook reply and its diagnosis.
#[derive(Debug, Clone, Default)]
struct Seen {
    root: Option<(String, Instant)>,
    reply: Option<(String, Instant)>,
    diagnosed: Option<(Instant, Shown)>,
}

/// Notes when each thread's messages arrive, from the calls a recorder sees.
#[derive(Default)]
struct Watch {
    seen: Mutex<HashMap<String, Seen>>,
    changed: tokio::sync::Notify,
}

impl Watch {
    /// A recorder that reports roots, replies and their edits to this watch.
    fn recorder(self: &Arc<Self>) -> Arc<Recorder> {
        let w = self.clone();
        Recorder::observed(move |c| match c {
            Call::Post { channel, ts, .. } => w.note(channel, |s| {
                s.root.get_or_insert((ts.clone(), Instant::now()));
            }),
            Call::Reply { channel, ts, .. } => w.note(channel, |s| {
                s.reply.get_or_insert((ts.clone(), Instant::now()));
            }),
            Call::Update { channel, ts, msg } => {
                let shown = shown(msg);
                w.note(channel, |s| {
                    let is_reply = s.reply.as_ref().is_some_and(|r| &r.0 == ts);
                    if let (true, Some(shown), None) = (is_reply, shown, s.diagnosed) {
                        s.diagnosed = Some((Instant::now(), shown));
                    }
                });
            }
            Call::React { .. } => {}
        })
    }

    fn note(&self, channel: &str, f: impl FnOnce(&mut Seen)) {
        if let Ok(mut s) = self.seen.lock() {
            f(s.entry(channel.to_string()).or_default());
        }
        self.changed.notify_waiters();
    }

    fn snapshot(&self) -> HashMap<String, Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until `done` holds, at most `limit`.
    async fn wait(&self, limit: Duration, done: impl Fn(&HashMap<String, Seen>) -> bool) -> bool {
        let end = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.changed.notified();
            if done(&self.snapshot()) {
                return true;
            }
            if tokio::time::timeout_at(end, changed).await.is_err() {
                return done(&self.snapshot());
            }
        }
    }
}

/// What the diagnosis edit shows.
fn shown(msg: &Message) -> Option<Shown> {
    let text = msg.text();
    if text.contains("Diagnosis draft") {
        Some(Shown::Draft)
    } else if text.contains("circuit open") {
        Some(Shown::CircuitOpen)
    } else if text.contains("Runbook-based diagnosis") {
        Some(Shown::OtherFallback)
    } else {
        None
    }
}

//! An LLM outage as on-call engineers would live it: a burst of incidents while the LLM
//! hangs on every call still gets every root and runbook reply at once, and the runbook
//! fallback soon after (the circuit breaker stops waiting for the LLM); once the LLM answers
//! again, new incidents get LLM drafts. A failing (5xx) LLM opens the breaker too, and a
//! diagnosis left by a crashed replica is finished by another once its lease expires.

use std::sync::Arc;
use std::time::Duration;

use sentinel::alerts::parse;
use sentinel::bench::outage::{measure, Options};
use sentinel::diagnosis::breaker::BreakerConfig;
use sentinel::diagnosis::{Diagnoser, DiagnoserOptions, Draft, FallbackReason, Subject};
use sentinel::incidents::store::insert_alerts;
use sentinel::incidents::{Engine, EngineConfig, Routes};
use sentinel::llm::testserver::{Reply, TestLlm};
use sentinel::llm::{LlmClient, TokenLedger};
use sentinel::retry::Backoff;
use sentinel::slack::recorder::{Call, Recorder};
use sqlx::PgPool;

use crate::helpers::kb::hashed_runbooks;

const LLM_TIMEOUT: Duration = Duration::from_secs(2);

/// What a person sees in `channel`: the thread roots, and the current text of each reply.
fn threads(slack: &Recorder, channel: &str) -> Vec<(String, Vec<String>)> {
    let calls = slack.calls();
    slack
        .roots()
        .into_iter()
        .filter(|r| r.0 == channel)
        .map(|(_, root, _)| {
            let replies = calls
                .iter()
                .filter_map(|c| match c {
                    Call::Reply { thread_ts, ts, .. } if *thread_ts == root => slack.current(ts),
                    _ => None,
                })
                .map(|m| m.visible_text())
                .collect();
            (root, replies)
        })
        .collect()
}

/// The one thread in `channel` and its one reply (edited in place).
fn only_reply(slack: &Recorder, channel: &str) -> String {
    let t = threads(slack, channel);
    assert_eq!(t.len(), 1, "one root in {channel}: {t:?}");
    assert_eq!(t[0].1.len(), 1, "one reply in {channel}: {t:?}");
    t[0].1[0].clone()
}

#[sqlx::test]
async fn a_hanging_llm_delays_no_root_and_drafts_resume_once_it_answers(pool: PgPool) {
    let kb = hashed_runbooks(&pool).await;
    let o = Options {
        incidents: 50,
        llm_timeout: LLM_TIMEOUT,
        breaker: BreakerConfig {
            failures: 3,
            probe: Duration::from_secs(1),
        },
        ..Options::default()
    };
    let m = measure(&pool, kb, &o).await.unwrap();
    let r = &m.report;
    eprintln!("{r:?}");

    // Every incident of the burst: one root, one reply, which now shows the labelled
    // runbook fallback.
    let mut circuit_open = 0;
    for ch in &m.burst_channels {
        let reply = only_reply(&m.slack, ch);
        assert!(reply.contains("Runbook-based diagnosis"), "{ch}: {reply}");
        assert!(reply.contains("Not an LLM draft ("), "{ch}: {reply}");
        assert!(!reply.contains("Drafting a diagnosis"), "{ch}: {reply}");
        circuit_open += usize::from(reply.contains("the LLM is failing; circuit open"));
    }
    // Only the diagnoses already waiting when the breaker opened waited for the LLM.
    assert!(
        circuit_open >= o.incidents / 2,
        "{circuit_open} of {} fallbacks say the circuit is open",
        o.incidents
    );
    // Generous bounds for a loaded 2-core machine; one incident after another would take
    // the LLM timeout each (100 s), and roots used to wait for it.
    let slack_bound = 15_000.0;
    assert!(r.root_max_ms < slack_bound, "{r:?}");
    assert!(r.reply_max_ms < slack_bound, "{r:?}");
    // The first diagnoses wait for their LLM timeout; once that opens the circuit, no one
    // waits any more.
    let fallback_bound = LLM_TIMEOUT.as_secs_f64() * 1000.0 + slack_bound;
    assert!(r.fallback_max_ms < fallback_bound, "{r:?}");

    // The LLM answers again: a new incident gets a draft, and so does the next one.
    let last = m.recovery_channels.last().unwrap();
    let before_last = &m.recovery_channels[m.recovery_channels.len() - 2];
    for ch in [before_last, last] {
        let reply = only_reply(&m.slack, ch);
        assert!(reply.contains("Diagnosis draft"), "{ch}: {reply}");
        assert!(reply.contains("Drafted by an LLM"), "{ch}: {reply}");
    }
    // It took at most a probe interval, plus a probe that was still out.
    assert!(
        r.recovery_incidents <= 10,
        "{} incidents before a draft",
        r.recovery_incidents
    );
}

fn subject(i: usize) -> Subject {
    Subject {
        incident_key: Some(format!("outage-{i}")),
        alert_name: "KubePodCrashLooping".into(),
        status: "firing".into(),
        labels: [("namespace".to_string(), "checkout".to_string())].into(),
        annotations: [("summary".to_string(), "Pod is crash looping.".to_string())].into(),
        ..Subject::default()
    }
}

fn reason(d: &Draft) -> Option<FallbackReason> {
    match d {
        Draft::Fallback(f) => Some(f.reason.clone()),
        Draft::Llm(_) => None,
    }
}

#[sqlx::test]
async fn server_errors_open_the_breaker_and_a_probe_closes_it(pool: PgPool) {
    let kb = hashed_runbooks(&pool).await;
    let llm = TestLlm::start(Reply::status(503)).await.unwrap();
    let client = LlmClient::new(llm.config(LLM_TIMEOUT), TokenLedger::postgres(pool.clone()))
        .with_backoff(Backoff {
            attempts: 2,
            base: Duration::from_millis(5),
            max: Duration::from_millis(10),
        });
    let probe = Duration::from_millis(300);
    let d = Diagnoser::new(
        kb,
        Some(Arc::new(client)),
        DiagnoserOptions {
            breaker: BreakerConfig { failures: 2, probe },
            ..DiagnoserOptions::default()
        },
    );
    // Two failed diagnoses (each retried once) open it.
    for i in 0..2 {
        let out = d.diagnose(&subject(i)).await;
        assert_eq!(reason(&out.draft), Some(FallbackReason::Unavailable));
    }
    let asked = llm.requests().len();
    assert_eq!(asked, 4);
    // Open: straight to the fallback, labelled, without asking the LLM.
    let out = d.diagnose(&subject(2)).await;
    assert_eq!(reason(&out.draft), Some(FallbackReason::CircuitOpen));
    assert!(out
        .message
        .visible_text()
        .contains("Not an LLM draft (the LLM is failing; circuit open)"));
    assert_eq!(llm.requests().len(), asked);

    // After the probe interval one call goes out; the LLM is back, so it closes.
    llm.set_default(sentinel::bench::diagnosis::draft_answer());
    tokio::time::sleep(probe).await;
    let out = d.diagnose(&subject(3)).await;
    assert_eq!(reason(&out.draft), None, "{:?}", out.draft);
    let out = d.diagnose(&subject(4)).await;
    assert_eq!(reason(&out.draft), None, "{:?}", out.draft);
}

#[sqlx::test]
async fn a_diagnosis_left_by_a_crashed_replica_is_finished_by_another(pool: PgPool) {
    let kb = hashed_runbooks(&pool).await;
    let slack = Recorder::new();
    let replica = |llm: Option<Arc<LlmClient>>| {
        let cfg = EngineConfig::new(Routes::single("C0ALERTS"));
        let d = Diagnoser::new(kb.clone(), llm, DiagnoserOptions::default());
        Engine::new(pool.clone(), slack.clone(), cfg).with_diagnoser(Arc::new(d))
    };
    // Replica A's LLM hangs; B has none.
    let hanging = TestLlm::start(Reply::delayed(
        Duration::from_secs(3600),
        Reply::status(500),
    ))
    .await
    .unwrap();
    let a = replica(Some(Arc::new(LlmClient::new(
        hanging.config(Duration::from_secs(60)),
        TokenLedger::postgres(pool.clone()),
    ))));
    let b = replica(None);
    let alerts =
        parse::alertmanager(include_str!("../data/alerts/alertmanager-v4-firing.json").as_bytes())
            .unwrap();
    insert_alerts(&pool, &alerts.iter().collect::<Vec<_>>())
        .await
        .unwrap();

    // A posts the root and the runbook reply, starts the diagnosis and dies waiting.
    a.apply_all().await.unwrap();
    a.sync_all().await.unwrap();
    let died = tokio::time::timeout(Duration::from_millis(500), a.diagnose_all()).await;
    assert!(died.is_err(), "A was still diagnosing");
    drop(a);
    let reply = only_reply(&slack, "C0ALERTS");
    assert!(reply.contains("Drafting a diagnosis"), "{reply}");

    // B leaves it alone while A's lease holds...
    b.run_once().await.unwrap();
    let reply = only_reply(&slack, "C0ALERTS");
    assert!(reply.contains("Drafting a diagnosis"), "{reply}");
    // ... and finishes it once the lease has expired.
    sqlx::query("UPDATE incidents SET diagnose_until = clock_timestamp()")
        .execute(&pool)
        .await
        .unwrap();
    b.run_once().await.unwrap();
    let reply = only_reply(&slack, "C0ALERTS");
    assert!(reply.contains("Runbook-based diagnosis"), "{reply}");
    assert!(reply.contains("no LLM is configured"), "{reply}");
    assert!(!reply.contains("Drafting a diagnosis"), "{reply}");
}

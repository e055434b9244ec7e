//! Remediation actions as on-call engineers meet them in Slack: proposals in the thread,
//! Approve / Reject / Dry run, who may approve, runs that fail, hang or never verify,
//! forged and replayed clicks, the kill switch and caps, expiry, a replica that died
//! mid-run, and auto-approval that switches itself off.

use std::collections::HashSet;
use std::time::Duration;

use sentinel::actions::value::Keys;
use sentinel::actions::{ActionsConfig, Mode};
use sentinel::alerts::Source;
use sentinel::audit::AuditKey;
use sentinel::slack::emulator::{Message, BOT_USER_ID};
use sentinel::stack::ActionsSetup;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::app::{Setup, TestApp, ALERTS};
use crate::helpers::fixtures::repo_path;
use crate::helpers::slack::{Shown, WAIT};

const KEY: &str = "k1:test-signing-key-0123456789abcdefghij";
const AUDIT_KEY: &str = "test-audit-key-0123456789abcdef0123456789";

fn config() -> ActionsConfig {
    ActionsConfig {
        mode: Mode::On,
        keys: Some(Keys::parse(KEY).unwrap()),
        admins: vec!["U0CAROL".into()],
        ..ActionsConfig::default()
    }
}

async fn app_with(pool: PgPool, cfg: ActionsConfig) -> TestApp {
    TestApp::spawn_with(
        pool,
        Setup {
            actions: ActionsSetup {
                config: cfg,
                audit_key: Some(AuditKey::from_config(AUDIT_KEY)),
                audit_channel: None,
            },
            runbooks: Some(vec![repo_path("tests/data/actions")]),
            ..Setup::default()
        },
    )
    .await
}

async fn app(pool: PgPool) -> TestApp {
    app_with(pool, config()).await
}

/// Sentinel's messages in the alert channel whose text contains `needle`, as shown now.
fn bot_messages(app: &TestApp, needle: &str) -> Vec<Message> {
    app.emu
        .messages(ALERTS)
        .into_iter()
        .filter(|m| m.user.as_deref() == Some(BOT_USER_ID) && m.shown().contains(needle))
        .collect()
}

/// `user` runs `/sentinel run ...`; returns the proposal message it posted.
async fn propose(app: &TestApp, user: &str, args: &str, title: &str) -> Message {
    let before: HashSet<String> = bot_messages(app, title).into_iter().map(|m| m.ts).collect();
    app.run_slash(user, &format!("run {args}"), "Proposed")
        .await;
    app.emu
        .wait_for(WAIT, |st| {
            st.messages
                .iter()
                .find(|m| {
                    m.channel == ALERTS
                        && !before.contains(&m.ts)
                        && m.text.starts_with("Proposed action")
                        && m.shown().contains(title)
                })
                .cloned()
        })
        .await
        .expect("proposal posted")
}

/// The proposal message `ts` once what it shows contains `needle`.
async fn shows(app: &TestApp, ts: &str, needle: &str) -> String {
    let found = app
        .emu
        .wait_for(Duration::from_secs(20), |st| {
            st.messages
                .iter()
                .find(|m| m.ts == ts)
                .map(Shown::shown)
                .filter(|s| s.contains(needle))
        })
        .await;
    found.unwrap_or_else(|| {
        let now = app
            .emu
            .messages(ALERTS)
            .into_iter()
            .find(|m| m.ts == ts)
            .map(|m| m.shown());
        panic!("proposal never showed {needle:?}; it shows {now:?}")
    })
}

/// The private sentence `user` was shown that contains `needle`.
async fn told(app: &TestApp, user: &str, needle: &str) -> String {
    app.emu
        .wait_for(WAIT, |st| {
            st.ephemerals
                .iter()
                .find(|e| e.user == user && e.shown().contains(needle))
                .map(Shown::shown)
        })
        .await
        .unwrap_or_else(|| {
            let all: Vec<String> = app
                .emu
                .state()
                .ephemerals
                .iter()
                .filter(|e| e.user == user)
                .map(Shown::shown)
                .collect();
            panic!("{user} was never told {needle:?}; they saw {all:?}")
        })
}

/// The action ids of the buttons message `ts` shows now.
fn buttons(app: &TestApp, ts: &str) -> Vec<String> {
    let m = app
        .emu
        .messages(ALERTS)
        .into_iter()
        .find(|m| m.ts == ts)
        .expect("message");
    m.blocks
        .as_ref()
        .and_then(|b| b.as_array())
        .into_iter()
        .flatten()
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["action_id"].as_str().map(str::to_string))
        .collect()
}

fn button_value(m: &Message, action_id: &str) -> String {
    m.blocks
        .as_ref()
        .and_then(|b| b.as_array())
        .into_iter()
        .flatten()
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .find(|e| e["action_id"] == action_id)
        .and_then(|e| e["value"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no {action_id} button"))
}

async fn state_of(pool: &PgPool, ts: &str) -> String {
    sqlx::query_scalar("SELECT state FROM action_proposals WHERE message_ts = $1")
        .bind(ts)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Replies in the proposal's thread (a proposal made in a channel threads its outcome
/// under itself) that contain `needle`.
fn outcomes(app: &TestApp, ts: &str, needle: &str) -> usize {
    app.emu
        .thread(ALERTS, ts)
        .iter()
        .filter(|m| m.ts != ts && m.shown().contains(needle))
        .count()
}

#[sqlx::test]
async fn an_approved_action_runs_once_is_verified_and_the_message_shows_it(pool: PgPool) {
    let app = app(pool.clone()).await;
    let p = propose(
        &app,
        "U0MALLORY",
        "restart-demo service=web",
        "Restart the demo service",
    )
    .await;
    let shown = p.shown();
    // The exact argv, each item as declared: `$HOME` and `two words` stay literal.
    assert!(
        shown.contains("echo restarted web '$HOME' 'two words'"),
        "{shown}"
    );
    assert!(shown.contains("medium"), "{shown}");
    assert!(
        shown.contains("@oncall") && shown.contains("U0CAROL"),
        "{shown}"
    );
    assert!(shown.contains("Expires"), "{shown}");
    let approve = p
        .blocks
        .as_ref()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .find(|e| e["action_id"] == "act_approve")
        .unwrap();
    assert_eq!(approve["style"], "primary");
    assert!(
        approve["confirm"]["title"]["text"].is_string(),
        "medium risk asks to confirm"
    );
    assert!(
        approve["value"].as_str().unwrap().len() < 100,
        "an opaque, short value"
    );

    // Someone who is not an approver: refused, told why, nothing runs.
    app.click(ALERTS, &p.ts, "U0MALLORY", "act_approve").await;
    told(&app, "U0MALLORY", "not an approver").await;
    assert_eq!(state_of(&pool, &p.ts).await, "proposed");

    // Bob is in @oncall (a user group, looked up in Slack).
    let approval = app.click(ALERTS, &p.ts, "U0BOB", "act_approve").await;
    shows(&app, &p.ts, "Verified").await;
    assert!(buttons(&app, &p.ts).is_empty(), "no buttons left");
    let thread = app.emu.thread(ALERTS, &p.ts);
    let ran: Vec<String> = thread
        .iter()
        .filter(|m| m.ts != p.ts)
        .map(Shown::shown)
        .collect();
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert!(ran[0].contains("restarted web $HOME two words"), "{ran:?}");

    // Every step is in the audit log, whose chain verifies.
    let kinds: Vec<String> = sentinel::audit::recent(&pool, None, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for k in [
        "proposed",
        "approval_refused",
        "approval_recorded",
        "run_started",
        "run_exited",
        "verify_passed",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
    let report = sentinel::audit::verify(&pool, &AuditKey::from_config(AUDIT_KEY))
        .await
        .unwrap();
    assert!(report.result.is_ok(), "{report:?}");

    // Slack redelivers the approval (a lost ack): nothing runs twice.
    app.emu.resend(&approval);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(outcomes(&app, &p.ts, "ran"), 1);

    // Prometheus sees one run, verified, and the whole audit chain.
    let runs = "sentinel_action_runs_total";
    let m = crate::metrics::wait_metric(&app, runs, &[("outcome", "verified")], 1.0).await;
    assert_eq!(
        crate::metrics::sum(&m, runs, &[("outcome", "verified")]),
        1.0
    );
    assert_eq!(crate::metrics::sum(&m, runs, &[]), 1.0);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        crate::metrics::sum(&m, "sentinel_audit_chain_length", &[]),
        events as f64
    );
    app.shutdown().await;
}

#[sqlx::test]
async fn forged_altered_and_foreign_button_values_run_nothing(pool: PgPool) {
    let app = app(pool.clone()).await;
    let a = propose(
        &app,
        "U0MALLORY",
        "restart-demo service=web",
        "Restart the demo service",
    )
    .await;
    let b = propose(
        &app,
        "U0MALLORY",
        "restart-demo service=api",
        "Restart the demo service",
    )
    .await;
    let b_value = button_value(&b, "act_approve");
    let a_value = button_value(&a, "act_approve");
    // B's genuine value clicked on A's message (a value from another proposal).
    let id = app
        .emu
        .click_button_with(ALERTS, &a.ts, "U0BOB", "act_approve", Some(&b_value))
        .unwrap();
    crate::helpers::slack::acked(&app.emu, &id).await;
    told(&app, "U0BOB", "does not belong").await;
    // A's value with its proposal id changed: the signature no longer matches.
    let (head, mac) = a_value.rsplit_once('.').unwrap();
    let parts: Vec<&str> = head.split('.').collect();
    let altered = format!(
        "v1.{}.{}.{}.{}.{mac}",
        parts[1],
        parts[2].parse::<i64>().unwrap() + 1,
        parts[3],
        parts[4]
    );
    app.emu
        .click_button_with(ALERTS, &a.ts, "U0ALICE", "act_approve", Some(&altered))
        .unwrap();
    told(&app, "U0ALICE", "signature does not match").await;
    // Garbage, and a value signed with a key Sentinel does not have.
    app.emu
        .click_button_with(
            ALERTS,
            &a.ts,
            "U0CAROL",
            "act_approve",
            Some("'; DROP TABLE x; --"),
        )
        .unwrap();
    told(&app, "U0CAROL", "malformed").await;
    let other = Keys::parse("k9:another-key-nobody-configured-0123456789").unwrap();
    let forged = other.sign(sentinel::actions::value::Click {
        proposal: parts[2].parse().unwrap(),
        kind: sentinel::actions::value::ClickKind::Approve,
        expires: 4_000_000_000,
    });
    app.emu
        .click_button_with(ALERTS, &a.ts, "U0ALICE", "act_approve", Some(&forged))
        .unwrap();
    told(&app, "U0ALICE", "no longer accepted").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(state_of(&pool, &a.ts).await, "proposed");
    assert_eq!(state_of(&pool, &b.ts).await, "proposed");
    app.shutdown().await;
}

#[sqlx::test]
async fn high_risk_needs_two_people_and_never_the_requester(pool: PgPool) {
    let app = app(pool.clone()).await;
    let p = propose(
        &app,
        "U0ALICE",
        "failover-demo",
        "Fail the demo service over",
    )
    .await;
    assert!(p.shown().contains("2 distinct approvers"), "{}", p.shown());
    app.click(ALERTS, &p.ts, "U0ALICE", "act_approve").await;
    told(&app, "U0ALICE", "someone else must approve").await;
    app.click(ALERTS, &p.ts, "U0BOB", "act_approve").await;
    shows(&app, &p.ts, "waiting for a second").await;
    app.click(ALERTS, &p.ts, "U0BOB", "act_approve").await;
    told(&app, "U0BOB", "second, different approver").await;
    assert_eq!(state_of(&pool, &p.ts).await, "awaiting_second");
    app.click(ALERTS, &p.ts, "U0CAROL", "act_approve").await;
    shows(&app, &p.ts, "Done").await;
    assert_eq!(outcomes(&app, &p.ts, "failed over"), 1);
    app.shutdown().await;
}

#[sqlx::test]
async fn doubled_and_redelivered_clicks_run_the_action_once(pool: PgPool) {
    let app = app(pool.clone()).await;
    let replica = app.replica().await;
    let p = propose(
        &app,
        "U0MALLORY",
        "restart-demo service=web",
        "Restart the demo service",
    )
    .await;
    // Two approvers click at once, twice each, and Slack redelivers one envelope: the
    // envelopes reach both replicas.
    let mut ids = Vec::new();
    for user in ["U0BOB", "U0CAROL", "U0BOB", "U0CAROL"] {
        ids.push(
            app.emu
                .click_button(ALERTS, &p.ts, user, "act_approve")
                .unwrap(),
        );
    }
    app.emu.resend(&ids[0]);
    shows(&app, &p.ts, "Verified").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(outcomes(&app, &p.ts, "restarted web"), 1, "exactly one run");
    let approvals: i64 = sqlx::query_scalar("SELECT count(*) FROM action_approvals")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(approvals, 1, "the first click decided; the rest were told");
    replica.shutdown().await;
    app.shutdown().await;
}

#[sqlx::test]
async fn failed_hung_and_unverified_runs_say_so_and_a_rollback_can_follow(pool: PgPool) {
    let app = app(pool.clone()).await;
    let broken = propose(&app, "U0MALLORY", "broken-demo", "A fix that fails").await;
    let hanging = propose(&app, "U0MALLORY", "hanging-demo", "A fix that hangs").await;
    let unverified = propose(
        &app,
        "U0MALLORY",
        "unverified-demo",
        "A fix whose check never passes",
    )
    .await;
    for p in [&broken, &hanging, &unverified] {
        app.click(ALERTS, &p.ts, "U0ALICE", "act_approve").await;
    }
    shows(&app, &broken.ts, "Failed: exit status 1").await;
    assert_eq!(buttons(&app, &broken.ts), ["act_rollback"]);
    shows(&app, &hanging.ts, "Failed").await;
    assert_eq!(outcomes(&app, &hanging.ts, "timed out after 1 s"), 1);
    shows(&app, &unverified.ts, "its check never passed").await;

    app.click(ALERTS, &broken.ts, "U0MALLORY", "act_rollback")
        .await;
    told(&app, "U0MALLORY", "can roll it back").await;
    app.click(ALERTS, &broken.ts, "U0ALICE", "act_rollback")
        .await;
    shows(&app, &broken.ts, "Rolled back").await;
    assert_eq!(outcomes(&app, &broken.ts, "rolled back"), 1);
    app.shutdown().await;
}

#[sqlx::test]
async fn the_kill_switch_and_the_hourly_cap_refuse_clicks(pool: PgPool) {
    let mut cfg = config();
    cfg.max_runs_per_action_per_hour = 1;
    let app = app_with(pool.clone(), cfg).await;
    let p = propose(
        &app,
        "U0MALLORY",
        "restart-demo service=web",
        "Restart the demo service",
    )
    .await;
    app.run_slash("U0MALLORY", "actions pause", "Only the people")
        .await;
    app.run_slash("U0CAROL", "actions pause", "paused").await;
    app.click(ALERTS, &p.ts, "U0BOB", "act_approve").await;
    told(&app, "U0BOB", "Actions are paused").await;
    assert_eq!(state_of(&pool, &p.ts).await, "proposed");
    app.run_slash("U0CAROL", "actions resume", "resumed").await;
    app.click(ALERTS, &p.ts, "U0BOB", "act_approve").await;
    shows(&app, &p.ts, "Verified").await;

    let second = propose(
        &app,
        "U0MALLORY",
        "restart-demo service=api",
        "Restart the demo service",
    )
    .await;
    app.click(ALERTS, &second.ts, "U0BOB", "act_approve").await;
    told(&app, "U0BOB", "runs per hour").await;
    assert_eq!(state_of(&pool, &second.ts).await, "proposed");
    let catalog = app.run_slash("U0BOB", "actions", "restart-demo").await;
    assert!(
        catalog.contains("failover-demo") && catalog.contains("not paused"),
        "{catalog}"
    );
    app.shutdown().await;
}

#[sqlx::test]
async fn a_proposal_expires_and_its_buttons_then_run_nothing(pool: PgPool) {
    let mut cfg = config();
    cfg.ttl = Duration::from_secs(1);
    let app = app_with(pool.clone(), cfg).await;
    let p = propose(
        &app,
        "U0MALLORY",
        "restart-demo service=web",
        "Restart the demo service",
    )
    .await;
    shows(&app, &p.ts, "Expired").await;
    assert!(
        buttons(&app, &p.ts).is_empty(),
        "an expired proposal has no buttons"
    );
    // Its old value, replayed through another message's button.
    let value = button_value(&p, "act_approve");
    let fresh = propose(
        &app,
        "U0MALLORY",
        "failover-demo",
        "Fail the demo service over",
    )
    .await;
    app.emu
        .click_button_with(ALERTS, &fresh.ts, "U0BOB", "act_approve", Some(&value))
        .unwrap();
    told(&app, "U0BOB", "expired").await;
    assert_eq!(state_of(&pool, &p.ts).await, "expired");
    app.shutdown().await;
}

#[sqlx::test]
async fn a_run_whose_replica_died_is_marked_unknown_and_not_run_again(pool: PgPool) {
    let app = app(pool.clone()).await;
    let p = propose(&app, "U0MALLORY", "slow-demo", "A slow fix").await;
    // As a replica that claimed the run and died leaves it: running, its lease expired.
    sqlx::query(
        "UPDATE action_proposals SET state = 'running', run_owner = gen_random_uuid(),
           run_until = now() - interval '1 second', started_at = now() WHERE message_ts = $1",
    )
    .bind(&p.ts)
    .execute(&pool)
    .await
    .unwrap();
    shows(&app, &p.ts, "Outcome unknown").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(state_of(&pool, &p.ts).await, "outcome_unknown");
    assert_eq!(outcomes(&app, &p.ts, "outcome unknown"), 1);
    assert_eq!(outcomes(&app, &p.ts, "ran"), 0, "never re-run");
    app.shutdown().await;
}

#[sqlx::test]
async fn the_runbook_diagnosis_offers_its_actions_in_the_incident_thread(pool: PgPool) {
    let app = app(pool.clone()).await;
    let alert = |name: &str, labels: serde_json::Value| {
        json!({
            "version": "4", "status": "firing", "receiver": "sentinel", "groupKey": format!("{{}}:{{alertname=\"{name}\"}}"),
            "groupLabels": {"alertname": name}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://alertmanager.example", "truncatedAlerts": 0,
            "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": "The demo service is down"},
                        "startsAt": "2026-11-29T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://prometheus.example/graph", "fingerprint": format!("fp-{name}")}]
        })
        .to_string()
    };
    let body = alert(
        "DemoServiceDown",
        json!({"alertname": "DemoServiceDown", "service": "web", "severity": "critical"}),
    );
    assert_eq!(app.post_webhook(Source::Alertmanager, &body).await, 200);
    let root = app.first_root().await;
    let thread = app.wait_thread(&root, "echo restarted web").await;
    let proposal = thread
        .iter()
        .find(|t| t.contains("echo restarted web"))
        .unwrap();
    assert!(proposal.contains("echo restarted web"), "{proposal}");
    assert!(
        thread
            .iter()
            .any(|t| t.contains("Fail the demo service over")),
        "{thread:?}"
    );
    app.shutdown().await;
}

#[sqlx::test]
async fn auto_approval_runs_by_itself_and_switches_off_after_two_failures(pool: PgPool) {
    let mut cfg = config();
    cfg.auto_approve = true;
    let app = app_with(pool.clone(), cfg).await;
    for i in 0..2 {
        let body = json!({
            "version": "4", "status": "firing", "receiver": "sentinel", "groupKey": format!("g{i}"),
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://alertmanager.example", "truncatedAlerts": 0,
            "alerts": [{"status": "firing", "labels": {"alertname": "FlakyCacheFull", "shard": format!("s{i}")},
                        "annotations": {"summary": "cache full"},
                        "startsAt": "2026-11-29T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "", "fingerprint": format!("flaky-{i}")}]
        })
        .to_string();
        assert_eq!(app.post_webhook(Source::Alertmanager, &body).await, 200);
        let found = app
            .emu
            .wait_for(Duration::from_secs(20), |st| {
                let n = st
                    .messages
                    .iter()
                    .filter(|m| {
                        m.text.contains("Flush the flaky cache") && m.text.contains("Failed")
                    })
                    .count();
                (n > i).then_some(())
            })
            .await;
        assert!(found.is_some(), "auto-approved run {i} did not finish");
    }
    let tripped = app
        .emu
        .wait_for(Duration::from_secs(10), |st| {
            st.messages
                .iter()
                .find(|m| m.text.contains("Auto-approval of") && m.text.contains("is now"))
                .map(|m| m.text.clone())
        })
        .await;
    assert!(tripped.is_some(), "auto-approval did not switch itself off");
    let paused: bool = sqlx::query_scalar(
        "SELECT paused FROM action_switches WHERE name = 'auto:flush-flaky-cache'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(paused);
    app.shutdown().await;
}

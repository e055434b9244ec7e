//! The incident engine on real Postgres with the recording Slack fake: one thread per
//! incident, updates in place, runbook reply then diagnosis, resolution, reopening,
//! out-of-order and duplicate deliveries, storm digests, two replicas, Slack errors, slash
//! commands.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use sentinel::alerts::{parse, Alert, Severity, Source, Status};
use sentinel::diagnosis::{Diagnoser, DiagnoserOptions};
use sentinel::incidents::commands;
use sentinel::incidents::store::insert_alerts;
use sentinel::incidents::{Engine, EngineConfig, Routes, StormConfig};
use sentinel::slack::recorder::{Call, Recorder};
use sentinel::slack::PortError;
use sqlx::PgPool;

use crate::helpers::fixtures::{AM_FIRING, AM_RESOLVED, SLACK_MSG};
use crate::helpers::kb::hashed_runbooks;

struct Setup {
    engine: Engine,
    slack: Arc<Recorder>,
}

/// The engine with the knowledge step: the bundled runbooks (hash embeddings) and a
/// runbook-based diagnosis (no LLM).
async fn setup(pool: &PgPool, threshold: u32) -> Setup {
    let slack = Recorder::new();
    let routes = Routes::parse("namespace=payments -> C0PAY", "C0ALERTS").unwrap();
    let mut cfg = EngineConfig::new(routes);
    cfg.storm = StormConfig {
        threshold,
        window: std::time::Duration::from_secs(60),
    };
    cfg.runbook_base_url = Some("https://git.example/runbooks".into());
    let kb = hashed_runbooks(pool).await;
    let diagnoser = Diagnoser::new(kb, None, DiagnoserOptions::default());
    let engine = Engine::new(pool.clone(), slack.clone(), cfg).with_diagnoser(Arc::new(diagnoser));
    Setup { engine, slack }
}

async fn deliver(pool: &PgPool, alerts: &[Alert]) {
    let refs: Vec<&Alert> = alerts.iter().collect();
    insert_alerts(pool, &refs).await.unwrap();
}

fn am(body: &str) -> Vec<Alert> {
    parse::alertmanager(body.as_bytes()).unwrap()
}

fn alert(group: &str, pod: &str, status: Status, minute: i64) -> Alert {
    let labels: BTreeMap<String, String> = [
        ("alertname", group),
        ("pod", pod),
        ("namespace", "checkout"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Alert {
        source: Source::Generic,
        fingerprint: format!("{group}-{pod}"),
        status,
        labels,
        annotations: [("summary".to_string(), format!("{group} is unhappy"))].into(),
        severity: Severity::Critical,
        starts_at: Utc.with_ymd_and_hms(2026, 11, 20, 21, 0, 0).unwrap()
            + Duration::minutes(minute),
        ends_at: None,
        links: vec![],
        group_key: format!("generic:{group}"),
        origin: None,
        request_id: None,
    }
}

fn text_of(s: &Setup, ts: &str) -> String {
    let m = s.slack.current(ts).unwrap();
    format!(
        "{}\n{}",
        m.text(),
        serde_json::Value::from(m.blocks().to_vec())
    )
}

/// The texts of the replies in the thread of `ts`.
fn reply_texts(s: &Setup, ts: &str) -> Vec<String> {
    s.slack
        .replies(ts)
        .into_iter()
        .map(|m| m.text().to_string())
        .collect()
}

#[sqlx::test]
async fn new_incident_gets_one_root_and_a_runbook_reply(pool: PgPool) {
    let s = setup(&pool, 5).await;
    deliver(&pool, &am(AM_FIRING)).await;
    s.engine.run_once().await.unwrap();
    let roots = s.slack.roots();
    assert_eq!(roots.len(), 1);
    let (channel, ts, _) = &roots[0];
    assert_eq!(channel, "C0ALERTS");
    let t = text_of(&s, ts);
    assert!(t.contains("[FIRING] KubePodCrashLooping"), "{t}");
    assert!(t.contains("2 of 2 alerts firing"));
    assert!(
        t.contains("checkout-api-7d9f8b6c5-x2k4q") && t.contains("checkout-api-7d9f8b6c5-9mlzt")
    );
    let replies = s.slack.replies(ts);
    assert_eq!(replies.len(), 1);
    let reply = serde_json::Value::from(replies[0].blocks().to_vec()).to_string();
    // The search used the alert name: the runbook declaring it is an exact match, linked.
    assert!(
        reply.contains("https://git.example/runbooks/checkout/checkout-api-crashloop.md#"),
        "{reply}"
    );
    assert!(reply.contains("exact match"), "{reply}");
    // Then the reply is edited into the diagnosis (runbook-based: no LLM here).
    let shown = text_of(
        &s,
        &s.slack
            .calls()
            .iter()
            .find_map(|c| match c {
                Call::Reply { ts, .. } => Some(ts.clone()),
                _ => None,
            })
            .unwrap(),
    );
    assert!(
        shown.contains("Runbook-based diagnosis: KubePodCrashLooping"),
        "{shown}"
    );

    // Redelivery changes nothing in Slack.
    let before = s.slack.calls().len();
    deliver(&pool, &am(AM_FIRING)).await;
    s.engine.run_once().await.unwrap();
    assert_eq!(s.slack.calls().len(), before);
}

#[sqlx::test]
async fn group_grows_and_shrinks_in_place_then_resolves_once(pool: PgPool) {
    let s = setup(&pool, 5).await;
    deliver(&pool, &[alert("Api5xx", "a", Status::Firing, 0)]).await;
    s.engine.run_once().await.unwrap();
    let ts = s.slack.roots()[0].1.clone();

    // Grows: one new line, same root.
    deliver(&pool, &[alert("Api5xx", "b", Status::Firing, 1)]).await;
    s.engine.run_once().await.unwrap();
    assert_eq!(s.slack.roots().len(), 1);
    let t = text_of(&s, &ts);
    assert!(
        t.contains("2 of 2 alerts firing") && t.contains("pod=`b`"),
        "{t}"
    );

    // Shrinks: one alert resolves, the incident stays open.
    let mut r = alert("Api5xx", "a", Status::Resolved, 0);
    r.ends_at = Some(r.starts_at + Duration::minutes(5));
    deliver(&pool, &[r]).await;
    s.engine.run_once().await.unwrap();
    let t = text_of(&s, &ts);
    assert!(
        t.contains("1 of 2 alerts firing") && t.contains("✅ pod=`a` · resolved 21:05 UTC"),
        "{t}"
    );
    assert!(s.slack.reactions(&ts).is_empty());

    // All resolved: root edited, one reaction, one short reply.
    deliver(&pool, &[alert("Api5xx", "b", Status::Resolved, 1)]).await;
    s.engine.run_once().await.unwrap();
    assert!(text_of(&s, &ts).contains("[RESOLVED] Api5xx"));
    assert_eq!(s.slack.reactions(&ts), vec!["white_check_mark"]);
    let replies = reply_texts(&s, &ts);
    assert_eq!(replies.len(), 2, "runbook reply + resolution: {replies:?}");
    assert!(replies[1].starts_with("✅ Resolved: all 2 alert(s)"));

    // A repeated resolution says nothing more.
    deliver(&pool, &[alert("Api5xx", "b", Status::Resolved, 1)]).await;
    s.engine.run_once().await.unwrap();
    assert_eq!(s.slack.replies(&ts).len(), 2);
    assert_eq!(s.slack.roots().len(), 1);
}

#[sqlx::test]
async fn out_of_order_firing_cannot_undo_a_resolution_but_a_new_firing_reopens(pool: PgPool) {
    let s = setup(&pool, 5).await;
    // The resolved notification overtakes the firing one.
    deliver(&pool, &am(AM_RESOLVED)).await;
    s.engine.run_once().await.unwrap();
    deliver(&pool, &am(AM_FIRING)).await;
    s.engine.run_once().await.unwrap();
    let ts = s.slack.roots()[0].1.clone();
    assert!(
        text_of(&s, &ts).contains("[RESOLVED]"),
        "{}",
        text_of(&s, &ts)
    );
    let status: String = sqlx::query_scalar("SELECT status FROM incidents")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "resolved");

    // The same pod crashes again later: a new startsAt fires the incident again.
    let mut again = am(AM_FIRING);
    again.truncate(1);
    again[0].starts_at += Duration::hours(1);
    deliver(&pool, &again).await;
    s.engine.run_once().await.unwrap();
    assert_eq!(s.slack.roots().len(), 1, "reopened in the same thread");
    assert!(text_of(&s, &ts).contains("[FIRING AGAIN]"));
    let replies = reply_texts(&s, &ts);
    assert!(
        replies
            .last()
            .unwrap()
            .starts_with("🔥 Firing again: 1 alert(s)"),
        "{replies:?}"
    );
    let events: Vec<String> = sqlx::query_scalar("SELECT kind FROM incident_events ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(events.contains(&"reopened".to_string()), "{events:?}");
}

#[sqlx::test]
async fn storm_becomes_one_digest_updated_in_place(pool: PgPool) {
    let s = setup(&pool, 3).await;
    let mut alerts = Vec::new();
    for g in 0..12 {
        let name = if g % 2 == 0 { "NodeDown" } else { "DiskFull" };
        alerts.push(alert(&format!("{name}{g}"), "p", Status::Firing, 0));
    }
    // Rename so the digest groups by alert name but each incident has its own group key.
    for (i, a) in alerts.iter_mut().enumerate() {
        let name = if i % 2 == 0 { "NodeDown" } else { "DiskFull" };
        a.labels.insert("alertname".into(), name.into());
    }
    deliver(&pool, &alerts[..8]).await;
    s.engine.run_once().await.unwrap();
    deliver(&pool, &alerts[8..]).await;
    s.engine.run_once().await.unwrap();
    let roots = s.slack.roots();
    assert_eq!(roots.len(), 4, "3 incident roots + 1 digest");
    let digest = roots
        .iter()
        .find(|(_, _, m)| m.text().contains("Alert storm"))
        .expect("a storm digest");
    let t = text_of(&s, &digest.1);
    assert!(
        t.contains("Alert storm: 9 incidents (9 firing, 9 alerts)"),
        "{t}"
    );
    assert!(t.contains("NodeDown") && t.contains("DiskFull"));
    let digested: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM incidents WHERE digest_id IS NOT NULL AND root_ts IS NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(digested, 9);
    // The digest's later additions were edits, not posts.
    assert!(s
        .slack
        .calls()
        .iter()
        .any(|c| matches!(c, Call::Update { ts, .. } if *ts == digest.1)));
}

#[sqlx::test]
async fn two_replicas_post_exactly_one_root_per_incident(pool: PgPool) {
    let slack = Recorder::new();
    let mk = || {
        let mut cfg = EngineConfig::new(Routes::single("C0ALERTS"));
        cfg.storm.threshold = 1000;
        Engine::new(pool.clone(), slack.clone(), cfg)
    };
    let (a, b) = (mk(), mk());
    // Both replicas receive the same alerts (the webhook is load-balanced and retried).
    let alerts: Vec<Alert> = (0..20)
        .map(|g| alert(&format!("G{g}"), "p", Status::Firing, 0))
        .collect();
    tokio::join!(deliver(&pool, &alerts), deliver(&pool, &alerts));
    let (x, y) = tokio::join!(a.run_once(), b.run_once());
    x.unwrap();
    y.unwrap();
    let (x, y) = tokio::join!(a.run_once(), b.run_once());
    x.unwrap();
    y.unwrap();
    assert_eq!(slack.roots().len(), 20);
    let mut channels_ts: Vec<String> = slack
        .roots()
        .into_iter()
        .map(|r| r.2.text().to_string())
        .collect();
    channels_ts.sort();
    channels_ts.dedup();
    assert_eq!(channels_ts.len(), 20, "one root per incident");
}

#[sqlx::test]
async fn routes_by_labels(pool: PgPool) {
    let s = setup(&pool, 5).await;
    let mut a = alert("PayFail", "p", Status::Firing, 0);
    a.labels.insert("namespace".into(), "payments".into());
    deliver(&pool, &[a, alert("Other", "p", Status::Firing, 0)]).await;
    s.engine.run_once().await.unwrap();
    let mut chans: Vec<String> = s.slack.roots().into_iter().map(|r| r.0).collect();
    chans.sort();
    assert_eq!(chans, vec!["C0ALERTS", "C0PAY"]);
}

#[sqlx::test]
async fn channel_messages_are_answered_in_their_own_thread(pool: PgPool) {
    let s = setup(&pool, 5).await;
    let mut event: serde_json::Value = serde_json::from_str(SLACK_MSG).unwrap();
    deliver(&pool, &parse::slack_message(&event).unwrap()).await;
    s.engine.run_once().await.unwrap();
    assert!(s.slack.roots().is_empty(), "the alert message is the root");
    let replies = s.slack.replies("1763672652.331900");
    assert_eq!(replies.len(), 1);
    assert!(replies[0].text().contains("Runbook sections"));
    event["attachments"][0]["title"] =
        "[RESOLVED] KubePodCrashLooping checkout (prod-eu-1 kube-state-metrics warning)".into();
    event["ts"] = "1763673000.000100".into();
    deliver(&pool, &parse::slack_message(&event).unwrap()).await;
    s.engine.run_once().await.unwrap();
    assert_eq!(
        s.slack.reactions("1763672652.331900"),
        vec!["white_check_mark"]
    );
    assert_eq!(s.slack.replies("1763672652.331900").len(), 2);
    assert!(
        s.slack
            .calls()
            .iter()
            .all(|c| !matches!(c, Call::Update { ts, .. } if ts == "1763672652.331900")),
        "never edits others' messages"
    );
}

#[sqlx::test]
async fn slack_429s_and_errors_lose_nothing(pool: PgPool) {
    let s = setup(&pool, 5).await;
    s.slack.fail_next(vec![
        PortError::RateLimited(std::time::Duration::from_millis(5)),
        PortError::RateLimited(std::time::Duration::from_millis(5)),
        PortError::Transient("connection reset".into()),
    ]);
    deliver(&pool, &[alert("A", "p", Status::Firing, 0)]).await;
    s.engine.run_once().await.unwrap();
    assert_eq!(s.slack.roots().len(), 1);

    // A fatal error is recorded on the incident and does not loop forever.
    s.slack
        .fail_next(vec![PortError::Fatal("channel_not_found".into())]);
    deliver(&pool, &[alert("B", "p", Status::Firing, 0)]).await;
    s.engine.run_once().await.unwrap();
    let errors: Vec<String> =
        sqlx::query_scalar("SELECT detail FROM incident_events WHERE kind = 'slack_error'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(errors, vec!["channel_not_found"]);
}

/// What `/sentinel incidents` answers now.
async fn open_incidents(pool: &PgPool) -> String {
    commands::list(pool, Utc::now())
        .await
        .unwrap()
        .text()
        .to_string()
}

#[sqlx::test]
async fn slash_commands_list_and_show(pool: PgPool) {
    let s = setup(&pool, 5).await;
    deliver(&pool, &am(AM_FIRING)).await;
    s.engine.run_once().await.unwrap();
    deliver(&pool, &[alert("Later", "p", Status::Firing, 0)]).await;
    s.engine.run_once().await.unwrap();
    let list = open_incidents(&pool).await;
    let later = list.find("Later").unwrap();
    let crash = list.find("KubePodCrashLooping").unwrap();
    assert!(later < crash, "newest first: {list}");
    assert!(list.contains("2 firing") && list.contains("https://slack.com/archives/C0ALERTS/p"));

    let id: i64 =
        sqlx::query_scalar("SELECT id FROM incidents WHERE alertname = 'KubePodCrashLooping'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let shown = commands::show(&pool, id)
        .await
        .unwrap()
        .unwrap()
        .text()
        .to_string();
    assert!(shown.contains("*Alerts* (2 firing of 2)"), "{shown}");
    assert!(
        shown.contains("opened") && shown.contains("posted"),
        "timeline: {shown}"
    );
    assert!(shown.contains("Open the thread"));
    let missing = commands::show(&pool, 999).await.unwrap().unwrap_err();
    assert!(missing.0.contains("no incident #999"));

    deliver(&pool, &am(AM_RESOLVED)).await;
    s.engine.run_once().await.unwrap();
    let list = open_incidents(&pool).await;
    assert!(
        !list.contains("KubePodCrashLooping"),
        "resolved incidents are not open: {list}"
    );
}

/// A replica that died after Slack accepted a post but before it recorded the post's `ts`
/// left an attempt behind; whoever syncs next finds the marked post instead of doubling it.
#[sqlx::test]
async fn a_post_slack_accepted_before_a_crash_is_found_not_doubled(pool: PgPool) {
    use sentinel::slack::message::Marker;
    use sentinel::slack::{Message, Mrkdwn, SlackPort};
    let s = setup(&pool, 5).await;
    deliver(&pool, &am(AM_FIRING)).await;
    s.engine.apply_all().await.unwrap();
    let id: i64 = sqlx::query_scalar("SELECT id FROM incidents")
        .fetch_one(&pool)
        .await
        .unwrap();
    // What the dead replica did: record the attempt, post the marked root, then die.
    sqlx::query("UPDATE incidents SET root_attempted_at = now() WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let lost = Message::text_only(&Mrkdwn::own("root posted by the replica that died"))
        .marked(Marker::new("sentinel_incident_root", id));
    let ts = s.slack.post("C0ALERTS", &lost).await.unwrap();
    s.engine.run_once().await.unwrap();
    assert_eq!(s.slack.roots().len(), 1, "no second root");
    let recorded: Option<String> = sqlx::query_scalar("SELECT root_ts FROM incidents")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(recorded.as_deref(), Some(ts.as_str()));
    // The found root now shows the incident, and the thread goes on under it.
    assert!(text_of(&s, &ts).contains("[FIRING] KubePodCrashLooping"));
    assert_eq!(s.slack.replies(&ts).len(), 1, "the runbook reply, once");
    // Resolving twice across a crash between the reply and its record: one reply.
    deliver(&pool, &am(AM_RESOLVED)).await;
    s.engine.apply_all().await.unwrap();
    sqlx::query("UPDATE incidents SET announce_attempted = $2 WHERE id = $1")
        .bind(id)
        .bind(format!("{id}:resolved:0"))
        .execute(&pool)
        .await
        .unwrap();
    let said = Message::text_only(&Mrkdwn::own("✅ Resolved (posted before the crash)")).marked(
        Marker::new("sentinel_status_reply", format!("{id}:resolved:0")),
    );
    s.slack.reply("C0ALERTS", &ts, &said).await.unwrap();
    s.engine.run_once().await.unwrap();
    let replies = reply_texts(&s, &ts);
    assert_eq!(
        replies.len(),
        2,
        "runbook reply + one resolution: {replies:?}"
    );
}

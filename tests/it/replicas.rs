//! Three `sentinel serve` processes on one database and one Slack app (issue 14): one is
//! SIGKILLed while Slack holds the answer to its post, one is SIGTERMed under load. What
//! the channels show afterwards: one root per incident, every accepted alert shown, every
//! mention and command answered once. The figures go to stderr (`replicas:` lines) for
//! docs/benchmarks.md.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sentinel::slack::emulator::{Emulator, State, BOT_USER_ID};
use sqlx::PgPool;

use crate::helpers::process::{alert, post_alert, serve_env, url_of, with, Replica};
use crate::helpers::slack::{mention, unpaced_emulator, Shown};

const ALERTS: &str = "C0ALERTS";
const OPS: &str = "C0OPS";
const GENERAL: &str = "C0GENERAL";
/// The alert whose root post is cut short by a SIGKILL; routed alone to `OPS`.
const CRASH: &str = "CrashDuringPostFiring";
/// Generous bound for anything to show: a dead replica's leases last 15 s.
const SHOWN: Duration = Duration::from_secs(60);

/// Sentinel's top-level messages in `channel` whose text shows `name`.
fn roots_showing(st: &State, channel: &str, name: &str) -> Vec<String> {
    st.messages
        .iter()
        .filter(|m| m.channel == channel && m.thread_ts.is_none())
        .filter(|m| m.user.as_deref() == Some(BOT_USER_ID) && m.shown().contains(name))
        .map(|m| m.ts.clone())
        .collect()
}

/// Sentinel's replies in thread `ts` of `channel`.
fn bot_replies(st: &State, channel: &str, ts: &str) -> usize {
    st.messages
        .iter()
        .filter(|m| m.channel == channel && m.thread_ts.as_deref() == Some(ts) && m.ts != ts)
        .filter(|m| m.user.as_deref() == Some(BOT_USER_ID))
        .count()
}

/// Answers to `/sentinel ask … TOKEN` through its response_url.
fn command_answers(st: &State, token: &str) -> usize {
    st.ephemerals
        .iter()
        .filter(|e| e.via == "response_url" && e.shown().contains(token))
        .count()
}

/// What people asked: mentions (by ts) and commands (by token).
#[derive(Default)]
struct Questions {
    mentions: Vec<String>,
    commands: Vec<String>,
}

impl Questions {
    /// `n` mentions and `n` slash commands, each with its own token.
    fn ask(&mut self, emu: &Emulator, tag: &str, n: usize) {
        for i in 0..n {
            let token = format!("widget{tag}{i}x");
            let text = mention(&format!("how do I restart {token}?"));
            self.mentions
                .push(emu.user_says(GENERAL, "U0ALICE", &text, None));
            emu.slash_command(
                GENERAL,
                "U0BOB",
                "/sentinel",
                &format!("ask how do I restart {token}?"),
            );
            self.commands.push(token);
        }
    }

    /// Every question answered at least once.
    fn answered(&self, st: &State) -> bool {
        self.mentions
            .iter()
            .all(|ts| bot_replies(st, GENERAL, ts) > 0)
            && self.commands.iter().all(|t| command_answers(st, t) > 0)
    }

    /// Every question answered exactly once.
    fn assert_once(&self, st: &State) {
        for ts in &self.mentions {
            assert_eq!(bot_replies(st, GENERAL, ts), 1, "mention {ts}");
        }
        for t in &self.commands {
            assert_eq!(command_answers(st, t), 1, "command about {t}");
        }
    }
}

/// Waits until every alert in `names` has a root in `ALERTS`.
async fn wait_roots(emu: &Emulator, names: &[String]) {
    emu.wait_for(SHOWN, |st| {
        names
            .iter()
            .all(|n| !roots_showing(st, ALERTS, n).is_empty())
            .then_some(())
    })
    .await
    .unwrap_or_else(|| {
        let st = emu.state();
        let missing: Vec<_> = names
            .iter()
            .filter(|n| roots_showing(&st, ALERTS, n).is_empty())
            .collect();
        panic!("not shown after {SHOWN:?}: {missing:?}")
    });
}

/// Waits until every alert is applied, every incident shown and diagnosed.
async fn settled(pool: &PgPool) {
    let deadline = Instant::now() + SHOWN;
    loop {
        let pending: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM alerts WHERE processed_at IS NULL)
                  + (SELECT count(*) FROM incidents
                     WHERE shown_version < version OR diagnosed_at IS NULL)",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if pending == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{pending} still pending");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One root and one reply (the runbook reply, edited into the diagnosis) per alert.
fn assert_one_thread_each(st: &State, channel: &str, names: &[String]) {
    for n in names {
        let roots = roots_showing(st, channel, n);
        assert_eq!(roots.len(), 1, "roots showing {n}: {roots:?}");
        assert_eq!(bot_replies(st, channel, &roots[0]), 1, "replies under {n}");
    }
}

async fn three(env: &[(String, String)]) -> Vec<Replica> {
    futures::future::join_all((0..3).map(|_| Replica::spawn(env))).await
}

#[sqlx::test]
async fn a_replica_killed_in_the_middle_of_a_post_leaves_one_root_and_loses_nothing(pool: PgPool) {
    let emu = unpaced_emulator().await;
    let env = with(
        serve_env(&emu, &url_of(&pool)),
        "SENTINEL_ALERT_ROUTES",
        &format!("alertname={CRASH} -> {OPS}"),
    );
    let mut replicas = three(&env).await;
    assert!(emu.wait_connected(3, SHOWN).await, "three replicas connect");
    let mut sent: Vec<String> = Vec::new();
    let mut questions = Questions::default();
    let send = |replica: &Replica, name: String| {
        let body = alert(&name);
        let hooks = replica.hooks.clone();
        async move {
            let r = post_alert(&hooks, &body).await;
            assert_eq!(r, Some((200, false)), "{name} accepted");
            name
        }
    };

    // All three up: alerts through every replica, mentions and commands.
    for i in 0..9 {
        sent.push(send(&replicas[i % 3], format!("Replica{i:03}Firing")).await);
    }
    questions.ask(&emu, "a", 3);
    wait_roots(&emu, &sent).await;

    // Slack stores the crash alert's root but holds its answer; its poster dies then.
    emu.hold_posts(OPS, 1, Duration::from_secs(60));
    send(&replicas[0], CRASH.to_string()).await;
    let held = emu
        .wait_for(SHOWN, |st| st.held.first().cloned())
        .await
        .expect("the crash alert's root was posted");
    let owner: String = sqlx::query_scalar(
        "SELECT sync_owner::text FROM incidents WHERE alertname = $1 AND sync_owner IS NOT NULL",
    )
    .bind(CRASH)
    .fetch_one(&pool)
    .await
    .unwrap();
    let victim = replicas
        .iter()
        .position(|r| r.owner == owner)
        .unwrap_or_else(|| {
            panic!(
                "{owner} is none of {:?}",
                replicas.iter().map(|r| &r.owner).collect::<Vec<_>>()
            )
        });
    replicas[victim].sigkill().await;
    let killed = Instant::now();
    // Work goes on meanwhile (Slack redelivers anything the dead socket took unacked).
    let others: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    for i in 9..15 {
        sent.push(send(&replicas[others[i % 2]], format!("Replica{i:03}Firing")).await);
    }
    questions.ask(&emu, "b", 3);
    replicas[victim] = Replica::spawn(&env).await;
    for i in 15..21 {
        sent.push(send(&replicas[i % 3], format!("Replica{i:03}Firing")).await);
    }
    questions.ask(&emu, "c", 3);

    wait_roots(&emu, &sent).await;
    let all_shown = killed.elapsed();
    // The dead replica's incident resumes elsewhere, under the root Slack already shows.
    emu.wait_for(SHOWN, |st| (bot_replies(st, OPS, &held) > 0).then_some(()))
        .await
        .expect("the crash incident's thread was continued");
    let recovered = killed.elapsed();
    let root_ts: Option<String> =
        sqlx::query_scalar("SELECT root_ts FROM incidents WHERE alertname = $1")
            .bind(CRASH)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        root_ts.as_deref(),
        Some(held.as_str()),
        "the held post is the root"
    );
    let recovered_notes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM incident_events e JOIN incidents i ON i.id = e.incident_id
         WHERE i.alertname = $1 AND e.kind = 'recovered'",
    )
    .bind(CRASH)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(recovered_notes, 1, "found, not posted again");
    settled(&pool).await;
    emu.wait_for(SHOWN, |st| questions.answered(st).then_some(()))
        .await
        .expect("every question answered");

    // What people see: one thread per alert (so none missing, none doubled), one answer
    // per question.
    let redelivered = {
        let st = emu.state();
        assert_one_thread_each(&st, ALERTS, &sent);
        assert_one_thread_each(&st, OPS, &[CRASH.to_string()]);
        let ops_roots = st
            .messages
            .iter()
            .filter(|m| m.channel == OPS && m.thread_ts.is_none())
            .count();
        assert_eq!(ops_roots, 1, "one root in {OPS}");
        questions.assert_once(&st);
        st.acks.iter().filter(|a| a.retry_attempt > 0).count()
    };
    eprintln!(
        "replicas: alerts sent, accepted and shown {}, duplicated 0; mentions {} and commands {} answered once; {redelivered} envelopes redelivered; killed replica's incident shown {:.1} s after SIGKILL; alerts sent around the kill all shown {:.1} s after it",
        sent.len() + 1,
        questions.mentions.len(),
        questions.commands.len(),
        recovered.as_secs_f64(),
        all_shown.as_secs_f64(),
    );
    for mut r in replicas {
        assert!(r.stop().await.success(), "{}", r.output());
    }
}

/// Outcomes of webhooks sent to a replica while it shuts down.
#[derive(Default, Debug)]
struct Load {
    accepted: Vec<String>,
    /// 503s, and how many of them said `Retry-After`.
    refused: usize,
    retry_after: usize,
    other: HashMap<u16, usize>,
}

impl Load {
    fn count(&mut self, name: String, (status, retry_after): (u16, bool)) {
        match status {
            200 => self.accepted.push(name),
            503 => {
                self.refused += 1;
                self.retry_after += usize::from(retry_after);
            }
            s => *self.other.entry(s).or_default() += 1,
        }
    }
}

#[sqlx::test]
async fn a_replica_sigtermed_under_load_drains_and_exits_0_losing_nothing(pool: PgPool) {
    let emu = unpaced_emulator().await;
    // The default grace of a deploy (fly.toml, the chart): the sync step in flight posts
    // a root and a reply at Slack's pace of one message a second per channel, shared by
    // the workers, which a loaded CI machine stretches past the tests' usual 10 s.
    let env = with(
        serve_env(&emu, &url_of(&pool)),
        "SENTINEL_SHUTDOWN_SECS",
        "20",
    );
    let mut replicas = three(&env).await;
    assert!(emu.wait_connected(3, SHOWN).await, "three replicas connect");

    // A steady stream of alerts to replica 1, as Alertmanager sends them.
    let load = Arc::new(Mutex::new(Load::default()));
    let sender = {
        let (load, hooks) = (load.clone(), replicas[1].hooks.clone());
        tokio::spawn(async move {
            for i in 0.. {
                let name = format!("Load{i:04}Firing");
                let Some(r) = post_alert(&hooks, &alert(&name)).await else {
                    return;
                };
                load.lock().unwrap().count(name, r);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Every replica is answering a mention whose answer Slack holds for 3 s: replica 1
    // has Socket Mode work in flight when SIGTERM comes.
    emu.hold_posts(GENERAL, 3, Duration::from_secs(3));
    let mut questions = Questions::default();
    for i in 0..3 {
        let text = mention(&format!("how do I restart widgetterm{i}x?"));
        questions
            .mentions
            .push(emu.user_says(GENERAL, "U0ALICE", &text, None));
    }
    emu.wait_for(SHOWN, |st| (st.held.len() >= 3).then_some(()))
        .await
        .expect("three answers in flight");

    let posting: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM incidents WHERE sync_owner = $1::uuid AND sync_until > now()",
    )
    .bind(&replicas[1].owner)
    .fetch_all(&pool)
    .await
    .unwrap();
    replicas[1].sigterm();
    let termed = Instant::now();
    let status = replicas[1]
        .exited(Duration::from_secs(25))
        .await
        .unwrap_or_else(|| panic!("no exit 25 s after SIGTERM:\n{}", replicas[1].output()));
    let to_exit = termed.elapsed();
    assert_eq!(status.code(), Some(0), "{}", replicas[1].output());
    tokio::time::timeout(Duration::from_secs(5), sender)
        .await
        .expect("the server stopped answering")
        .unwrap();
    let load = std::mem::take(&mut *load.lock().unwrap());
    assert!(
        load.refused > 0,
        "webhooks during the drain got 503: {load:?}"
    );
    assert_eq!(load.retry_after, load.refused, "every 503 says Retry-After");
    assert!(load.other.is_empty(), "{load:?}");
    // It drained within the grace (checked first: past it, unfinished work is by design)...
    let log = replicas[1].output();
    assert!(
        !log.contains("did not") && !log.contains("deadline passed"),
        "drained within the deadline ({to_exit:?} after SIGTERM):\n{log}"
    );
    // ...so what it was posting it finished, and it left no lease behind for others to
    // wait out.
    let (unshown, left): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE id = ANY($1) AND shown_version < version),
                count(*) FILTER (WHERE sync_owner = $2::uuid)
         FROM incidents",
    )
    .bind(&posting)
    .bind(&replicas[1].owner)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (unshown, left),
        (0, 0),
        "of {posting:?} being posted at SIGTERM ({to_exit:?} before its exit):\n{log}"
    );
    emu.wait_for(SHOWN, |st| (st.connections.len() == 2).then_some(()))
        .await
        .expect("its socket closed");

    // Everything it accepted is shown by the others; its mention was answered before exit.
    wait_roots(&emu, &load.accepted).await;
    let shown = termed.elapsed();
    settled(&pool).await;
    {
        let st = emu.state();
        assert_one_thread_each(&st, ALERTS, &load.accepted);
        questions.assert_once(&st);
    }
    eprintln!(
        "replicas: SIGTERM under load: exit 0 after {:.2} s, the {} incidents it was posting finished by then; {} alerts accepted (all shown {:.1} s after SIGTERM, 0 duplicated), {} refused with 503 + Retry-After during the drain",
        to_exit.as_secs_f64(),
        posting.len(),
        load.accepted.len(),
        shown.as_secs_f64(),
        load.refused,
    );
    replicas.remove(1);
    for mut r in replicas {
        assert!(r.stop().await.success(), "{}", r.output());
    }
}

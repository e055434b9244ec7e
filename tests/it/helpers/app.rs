//! `TestApp`: Sentinel as `sentinel serve` runs it (the Socket Mode bot, the webhook
//! server, the incident engine with diagnosis) on the Slack emulator and a test database,
//! and what a test does to it and reads back, the way a person on call would.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use sentinel::alerts::Source;
use sentinel::config::AlertsConfig;
use sentinel::diagnosis::{Diagnoser, DiagnoserOptions};
use sentinel::http::{SourceAuth, WebhookAuth};
use sentinel::incidents::{Routes, StormConfig};
use sentinel::llm::testserver::TestLlm;
use sentinel::llm::{LlmClient, TokenLedger};
use sentinel::metrics::Metrics;
use sentinel::slack::emulator::{Emulator, Message, State, BOT_USER_ID};
use sentinel::stack::{ActionsSetup, Parts, SlackSide, Stack};
use sqlx::PgPool;
use tokio::net::TcpListener;

use super::kb::hashed_runbooks;
use super::slack::{
    acked, emulator, slack_config, slash_answer, test_listener, Shown, RUNBOOKS_URL, WAIT,
};

/// The alert channel: webhook alerts go there, and the bot watches it for alert posts.
pub const ALERTS: &str = "C0ALERTS";
/// The bearer token every webhook source expects.
pub const HOOK_TOKEN: &str = "hook-token";

pub struct TestApp {
    pub emu: Emulator,
    pub stack: Stack,
    pub pool: PgPool,
    pub setup: Setup,
}

fn alerts_config() -> AlertsConfig {
    let bearer = || SourceAuth {
        bearer: Some(SecretString::from(HOOK_TOKEN)),
        hmac_secret: None,
    };
    AlertsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_body_bytes: 1 << 20,
        auth: WebhookAuth {
            alertmanager: bearer(),
            grafana: bearer(),
            generic: bearer(),
            allow_unauthenticated: false,
        },
        routes: Some(Routes::single(ALERTS)),
        storm: StormConfig::default(),
        runbook_base_url: Some(RUNBOOKS_URL.into()),
    }
}

/// What a test Sentinel is started with besides the emulator and database.
#[derive(Default, Clone)]
pub struct Setup {
    /// Diagnosis by this LLM (else runbook-based).
    pub llm: Option<sentinel::config::LlmConfig>,
    /// Remediation actions (off by default).
    pub actions: ActionsSetup,
    /// Runbook folders ingested instead of the bundled ones.
    pub runbooks: Option<Vec<std::path::PathBuf>>,
}

/// One Sentinel on `emu` and `pool`: the bundled runbooks (hash embeddings), diagnosis by
/// `llm` if given (else runbook-based), once its socket is connected.
/// Each one has its own metrics registry, as each process would.
async fn start(emu: &Emulator, pool: PgPool, setup: &Setup) -> Stack {
    let metrics = Metrics::default();
    let kb = match &setup.runbooks {
        Some(dirs) => super::kb::ingested(&pool, Arc::new(super::embed::HashEmbedder), dirs).await,
        None => hashed_runbooks(&pool).await,
    }
    .with_metrics(metrics.clone());
    let client = setup.llm.clone().map(|l| {
        let ledger = TokenLedger::postgres(pool.clone()).with_metrics(metrics.clone());
        Arc::new(LlmClient::new(l, ledger))
    });
    let diagnoser = Diagnoser::new(
        kb,
        client,
        DiagnoserOptions {
            llm_deadline: Duration::from_secs(10),
            runbook_base_url: Some(RUNBOOKS_URL.into()),
            ..DiagnoserOptions::default()
        },
    );
    let before = emu.state().connections.len();
    let stack = Stack::start(Parts {
        pool,
        alerts: alerts_config(),
        listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        slack: SlackSide::Bot {
            config: slack_config(emu, &[ALERTS]),
            listener: test_listener(),
        },
        diagnoser: Some(Arc::new(diagnoser)),
        actions: setup.actions.clone(),
        metrics,
        metrics_listener: None,
    })
    .await
    .unwrap();
    assert!(
        emu.wait_connected(before + 1, WAIT).await,
        "bot did not connect"
    );
    stack
}

/// Top-level messages in the alert channel.
fn roots_in(st: &State) -> Vec<Message> {
    st.messages
        .iter()
        .filter(|m| m.channel == ALERTS && m.thread_ts.as_ref().is_none_or(|t| t == &m.ts))
        .cloned()
        .collect()
}

/// Sentinel's replies in a thread of the alert channel, as shown.
fn replies_in(st: &State, root: &str) -> Vec<String> {
    st.messages
        .iter()
        .filter(|m| {
            m.channel == ALERTS
                && m.thread_ts.as_deref() == Some(root)
                && m.ts != root
                && m.user.as_deref() == Some(BOT_USER_ID)
        })
        .map(Shown::shown)
        .collect()
}

impl TestApp {
    /// Sentinel with a runbook-based diagnosis (no LLM), on a fresh emulator.
    pub async fn spawn(pool: PgPool) -> Self {
        Self::spawn_with(pool, Setup::default()).await
    }

    /// Sentinel whose diagnoses and answers come from `llm`.
    pub async fn spawn_with_llm(pool: PgPool, llm: &TestLlm) -> Self {
        Self::spawn_with(
            pool,
            Setup {
                llm: Some(llm.config(Duration::from_secs(5))),
                ..Setup::default()
            },
        )
        .await
    }

    pub async fn spawn_with(pool: PgPool, setup: Setup) -> Self {
        let emu = emulator().await;
        let stack = start(&emu, pool.clone(), &setup).await;
        Self {
            emu,
            stack,
            pool,
            setup,
        }
    }

    /// A second replica on the same Slack app and database (stop it with `shutdown`).
    pub async fn replica(&self) -> Stack {
        start(&self.emu, self.pool.clone(), &self.setup).await
    }

    pub async fn shutdown(self) {
        self.stack.shutdown().await;
    }

    /// POSTs `body` to `/hooks/<source>` with the right token; returns the status.
    pub async fn post_webhook(&self, source: Source, body: &str) -> u16 {
        sentinel::net::client()
            .post(format!(
                "http://{}/hooks/{}",
                self.stack.webhook_addr,
                source.as_str()
            ))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {HOOK_TOKEN}"))
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The `/metrics` exposition, scraped over HTTP without credentials.
    pub async fn metrics(&self) -> String {
        let r = sentinel::net::client()
            .get(format!("http://{}/metrics", self.stack.webhook_addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }

    /// `user` runs `/sentinel TEXT` in the alert channel: the private answer shown with
    /// `needle` in it (see `slash_answer`).
    pub async fn run_slash(&self, user: &str, text: &str, needle: &str) -> String {
        slash_answer(&self.emu, ALERTS, user, text, needle)
            .await
            .shown()
    }

    /// `user` clicks button `action_id` on message `ts` in `channel`; returns the
    /// envelope id once the bot acked it.
    pub async fn click(&self, channel: &str, ts: &str, user: &str, action_id: &str) -> String {
        let id = self
            .emu
            .click_button(channel, ts, user, action_id)
            .unwrap_or_else(|| panic!("no {action_id} button on {ts}"));
        acked(&self.emu, &id).await;
        id
    }

    /// Top-level messages in the alert channel.
    pub fn roots(&self) -> Vec<Message> {
        roots_in(&self.emu.state())
    }

    /// The first root message's ts in the alert channel, once there is one.
    pub async fn first_root(&self) -> String {
        self.emu
            .wait_for(WAIT, |st| roots_in(st).first().map(|m| m.ts.clone()))
            .await
            .expect("root message posted")
    }

    /// Sentinel's replies in thread `ts` of the alert channel, as shown.
    pub fn thread(&self, ts: &str) -> Vec<String> {
        replies_in(&self.emu.state(), ts)
    }

    /// Sentinel's replies in thread `ts` of the alert channel once one of them contains
    /// `needle`.
    pub async fn wait_thread(&self, ts: &str, needle: &str) -> Vec<String> {
        let found = self
            .emu
            .wait_for(WAIT, |st| {
                let texts = replies_in(st, ts);
                texts.iter().any(|t| t.contains(needle)).then_some(texts)
            })
            .await;
        found.unwrap_or_else(|| panic!("no reply containing {needle:?}: {:?}", self.thread(ts)))
    }

    /// Waits until every received alert is processed and every incident is shown in Slack.
    pub async fn settled(&self) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let pending: i64 = sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM alerts WHERE processed_at IS NULL)
                      + (SELECT count(*) FROM incidents WHERE shown_version < version)",
            )
            .fetch_one(&self.pool)
            .await
            .unwrap();
            if pending == 0 {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "alerts still pending");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

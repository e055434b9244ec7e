//! Shared set-up for the Slack tests: the emulator, a knowledge base over `runbooks/`
//! embedded with a small deterministic embedder, and a bot connected through Socket Mode.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use sentinel::config::AlertsConfig;
use sentinel::config::SlackConfig;
use sentinel::diagnosis::{Diagnoser, DiagnoserOptions};
use sentinel::embed::{l2_normalize, Embedder};
use sentinel::knowledge::{ingest, KnowledgeBase};
use sentinel::slack::emulator::{Emulator, EmulatorConfig};
use sentinel::slack::socket::ListenerOptions;
use sentinel::stack::{Parts, SlackSide, Stack};
use sqlx::PgPool;

pub const WAIT: Duration = Duration::from_secs(20);

/// Bag-of-words hashed into 384 dimensions: deterministic, instant, and good enough for
/// the lexical half of hybrid search to find the obvious runbook.
pub struct HashEmbedder;

#[async_trait]
impl Embedder for HashEmbedder {
    fn model_name(&self) -> &str {
        "test-hash-384"
    }
    fn dim(&self) -> usize {
        384
    }
    fn max_tokens(&self) -> usize {
        256
    }
    fn count_tokens(&self, text: &str) -> usize {
        text.split_whitespace().count()
    }
    async fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0f32; 384];
                for w in t
                    .to_lowercase()
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                {
                    let h = w.bytes().fold(1469598103934665603u64, |h, b| {
                        (h ^ b as u64).wrapping_mul(1099511628211)
                    });
                    v[(h % 384) as usize] += 1.0;
                }
                l2_normalize(&mut v);
                v
            })
            .collect())
    }
}

pub async fn knowledge(pool: PgPool) -> KnowledgeBase {
    let embedder: Arc<dyn Embedder> = Arc::new(HashEmbedder);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    ingest::ingest(&pool, embedder.as_ref(), &[root], false)
        .await
        .unwrap();
    KnowledgeBase::open(pool, embedder).await.unwrap()
}

pub fn slack_config(emu: &Emulator, connections: u32, watch: &[&str]) -> SlackConfig {
    SlackConfig {
        app_token: SecretString::from(emu.shared.cfg.app_token.clone()),
        bot_token: SecretString::from(emu.shared.cfg.bot_token.clone()),
        api_url: emu.api_url(),
        connections,
        watch_channels: watch.iter().map(|s| s.to_string()).collect(),
        handler_concurrency: 64,
        timeout_secs: 5,
        runbook_base_url: Some("https://runbooks.example.com".into()),
    }
}

pub fn test_listener(connections: u32) -> ListenerOptions {
    ListenerOptions {
        connections,
        reconnect_secs: 1,
        ping_secs: 5,
        stagger_secs: 0,
        concurrency: 64,
    }
}

pub async fn emulator() -> Emulator {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Emulator::start(EmulatorConfig::default()).await.unwrap()
}

/// Sentinel as `serve` runs it (bot, webhooks, engine; runbook answers, no LLM) on
/// `pool`, connected to `emu` with `connections` sockets, watching `watch`.
pub async fn bot(emu: &Emulator, pool: PgPool, connections: u32, watch: &[&str]) -> Stack {
    let kb = knowledge(pool.clone()).await;
    let diagnoser = Diagnoser::new(
        kb,
        None,
        DiagnoserOptions {
            runbook_base_url: Some("https://runbooks.example.com".into()),
            ..DiagnoserOptions::default()
        },
    );
    let before = emu.state().connections.len();
    let stack = Stack::start(Parts {
        pool,
        alerts: AlertsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_body_bytes: 1 << 20,
            auth: Default::default(),
            routes: None,
            storm: Default::default(),
            runbook_base_url: None,
        },
        listener: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        slack: SlackSide::Bot {
            config: slack_config(emu, connections, watch),
            listener: test_listener(connections),
        },
        diagnoser: Some(std::sync::Arc::new(diagnoser)),
    })
    .await
    .unwrap();
    assert!(
        emu.wait_connected(before + connections as usize, WAIT)
            .await,
        "bot did not connect"
    );
    stack
}

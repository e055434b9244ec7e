//! The alert half of `sentinel demo`: fire the sample Alertmanager alert at the webhook
//! server over HTTP and print the Slack thread the incident engine produces.

use std::sync::Arc;

use secrecy::SecretString;
use tokio::net::TcpListener;

use crate::alerts::notify::ConsoleNotifier;
use crate::alerts::parse;
use crate::http::{router, AppState, SourceAuth, WebhookAuth};
use crate::incidents::intake::{AlertWriter, WriterConfig};
use crate::incidents::{Engine, EngineConfig, Routes, RunbookSearch};
use crate::knowledge::KnowledgeBase;

const SAMPLE: &str = include_str!("../tests/data/alerts/alertmanager-v4-firing.json");
const TOKEN: &str = "demo-token";
const CHANNEL: &str = "C0DEMOALERTS";

pub async fn run(kb: &KnowledgeBase) -> anyhow::Result<()> {
    let pool = kb.pool.clone();
    // The demo replays the same sample every time: forget the previous run's incident.
    let group_key = parse::alertmanager(SAMPLE.as_bytes())?
        .first()
        .map(|a| a.group_key.clone())
        .unwrap_or_default();
    sqlx::query("DELETE FROM incidents WHERE group_key = $1")
        .bind(&group_key)
        .execute(&pool)
        .await?;
    sqlx::query("DELETE FROM alerts WHERE group_key = $1")
        .bind(&group_key)
        .execute(&pool)
        .await?;

    let engine = Engine::new(
        pool.clone(),
        Arc::new(ConsoleNotifier::default()),
        Some(Arc::new(kb.clone()) as Arc<dyn RunbookSearch>),
        EngineConfig::new(Routes::single(CHANNEL)),
    );
    let state = AppState {
        pool: pool.clone(),
        writer: AlertWriter::spawn(pool.clone(), None, WriterConfig::default()),
        auth: Arc::new(WebhookAuth {
            alertmanager: SourceAuth {
                bearer: Some(SecretString::from(TOKEN)),
                hmac_secret: None,
            },
            ..WebhookAuth::default()
        }),
        max_body_bytes: 1 << 20,
        slack_connected: None,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/hooks/alertmanager"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(SAMPLE)
        .send()
        .await?;
    println!();
    println!(
        "POST /hooks/alertmanager (sample KubePodCrashLooping, 2 alerts) -> {} {}",
        resp.status(),
        resp.text().await?
    );
    println!("Slack thread in #{CHANNEL}:");
    engine.run_once().await?;
    server.abort();
    Ok(())
}

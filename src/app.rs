//! The composition root: builds the app's parts from config once.

use std::sync::Arc;

use crate::config::{Config, ProcessEnv};
use crate::db;
use crate::embed::{self, Embedder};
use crate::error::UserError;
use crate::knowledge::KnowledgeBase;

/// Everything a subcommand needs, built once from the configuration.
pub struct App {
    pub config: Config,
    /// The process's one metrics registry (`/metrics`); every part records into it.
    pub metrics: crate::metrics::Metrics,
}

impl App {
    pub fn from_env() -> Result<Self, UserError> {
        let config = Config::from_env(&ProcessEnv)?;
        Ok(Self {
            metrics: crate::metrics::Metrics::new(config.metrics.llm_price_per_1k),
            config,
        })
    }

    /// Binds `SENTINEL_METRICS_ADDR` when set (`/metrics` then moves there).
    pub async fn metrics_listener(&self) -> Result<Option<tokio::net::TcpListener>, UserError> {
        let Some(addr) = self.config.metrics.listen else {
            return Ok(None);
        };
        tokio::net::TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|e| {
                UserError::new(format!(
                    "cannot listen on {addr} (SENTINEL_METRICS_ADDR): {e}"
                ))
            })
    }

    /// Binds the webhook address (`SENTINEL_WEBHOOK_ADDR`).
    pub async fn webhook_listener(&self) -> Result<tokio::net::TcpListener, UserError> {
        let addr = self.config.alerts.listen;
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| UserError::new(format!("cannot listen on {addr}: {e}")))
    }

    pub async fn pool(&self) -> anyhow::Result<sqlx::PgPool> {
        db::connect_and_migrate(self.config.require_database_url()?).await
    }

    pub async fn embedder(&self) -> anyhow::Result<Arc<dyn Embedder>> {
        embed::from_config(&self.config.embedder).await
    }

    pub async fn knowledge(&self) -> anyhow::Result<KnowledgeBase> {
        let (pool, embedder) = tokio::try_join!(self.pool(), self.embedder())?;
        Ok(KnowledgeBase::open(pool, embedder)
            .await?
            .with_metrics(self.metrics.clone()))
    }

    /// What the stack needs to offer remediation actions.
    pub fn actions(&self) -> crate::stack::ActionsSetup {
        crate::stack::ActionsSetup {
            config: self.config.actions.clone(),
            audit_key: self.config.audit.key.clone(),
            audit_channel: self.config.audit.channel.clone(),
        }
    }

    /// The configured LLM client (token usage recorded in `kb`'s database), or `None`.
    pub fn llm(&self, kb: &KnowledgeBase) -> Option<Arc<crate::llm::LlmClient>> {
        self.config.llm.clone().map(|cfg| {
            Arc::new(crate::llm::LlmClient::new(
                cfg,
                crate::llm::TokenLedger::postgres(kb.pool.clone())
                    .with_metrics(self.metrics.clone()),
            ))
        })
    }

    /// The diagnosis pipeline over `kb`, with the configured LLM (if any).
    pub fn diagnoser(&self, kb: KnowledgeBase) -> crate::diagnosis::Diagnoser {
        let llm = self.llm(&kb);
        let opts = crate::diagnosis::DiagnoserOptions {
            llm_deadline: self
                .config
                .llm
                .as_ref()
                .map(|l| l.timeout * 2)
                .unwrap_or(std::time::Duration::from_secs(30)),
            runbook_base_url: self.config.diagnosis.runbook_base_url.clone(),
            redact_labels: self.config.diagnosis.redact_labels.clone(),
            workers: self.config.diagnosis.workers,
            breaker: self.config.diagnosis.breaker,
            ..Default::default()
        };
        crate::diagnosis::Diagnoser::new(kb, llm, opts)
    }
}

//! Remediation actions: runbook-declared argv proposed in the incident thread with
//! Approve / Reject / Dry run buttons, approved by authorised people (two for high risk),
//! run once (the database decides), verified, rolled back when asked, and audited.
//!
//! `value` signs button values, `resolve` renders the argv, `approvers` says who may
//! approve, `store` holds the proposal state machine, `runner` runs processes, `render`
//! draws the messages, `flow` takes proposals and clicks, `run` runs what was approved,
//! `offer` proposes a diagnosis's actions, `commands` serves `/sentinel run`, `actions`
//! and `audit`.

pub mod approvers;
pub mod commands;
pub mod config;
mod flow;
pub mod offer;
pub mod render;
pub mod resolve;
mod run;
pub mod runner;
pub mod store;
pub mod value;

use std::sync::Arc;

use sqlx::PgPool;

use crate::audit::AuditKey;
pub use config::{ActionsConfig, Mode};
pub use flow::{ClickError, Clicker, ProposeRequest, Proposed};

/// The actions service, shared by the incident engine (proposals), the bot (clicks and
/// commands) and the sweeper.
pub struct Actions {
    pub pool: PgPool,
    pub cfg: ActionsConfig,
    keys: value::Keys,
    audit_key: AuditKey,
    directory: approvers::DirectoryCache,
    /// Slack's directory (user groups, names); `None` without a bot (tests, console).
    dir: Option<Arc<dyn approvers::Directory>>,
    /// This replica, as the owner of run leases.
    owner: uuid::Uuid,
    /// Where the audit chain's head is posted after every action (it is logged anyway).
    audit_channel: Option<String>,
    /// Finished runs are counted here, by outcome.
    pub(crate) metrics: crate::metrics::Metrics,
}

/// Why actions are not available.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("actions are off (SENTINEL_ACTIONS=off)")]
    Off,
    #[error("SENTINEL_ACTIONS={0} needs SENTINEL_AUDIT_KEY: no action runs without its audit log")]
    NoAuditKey(&'static str),
}

impl Actions {
    pub fn new(
        pool: PgPool,
        cfg: ActionsConfig,
        audit_key: Option<AuditKey>,
        dir: Option<Arc<dyn approvers::Directory>>,
    ) -> Result<Self, Unavailable> {
        let (Some(keys), true) = (cfg.keys.clone(), cfg.mode != Mode::Off) else {
            return Err(Unavailable::Off);
        };
        let audit_key = audit_key.ok_or(Unavailable::NoAuditKey(cfg.mode.name()))?;
        Ok(Self {
            pool,
            cfg,
            keys,
            audit_key,
            directory: approvers::DirectoryCache::default(),
            dir,
            owner: uuid::Uuid::new_v4(),
            audit_channel: None,
            metrics: crate::metrics::Metrics::default(),
        })
    }

    /// Counts finished runs in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Posts the audit head to `channel` after every action.
    pub fn with_audit_channel(mut self, channel: Option<String>) -> Self {
        self.audit_channel = channel;
        self
    }
}

//! `sentinel doctor`: checks a deployment end to end (Slack tokens, scopes, Socket Mode,
//! channels, database, migrations, pgvector, embedding model, LLM, webhook credentials)
//! and reports each as ok / warn / fail / skip with a fix. Never prints a secret.

mod infra;
pub mod render;
mod slack;

use serde::Serialize;

use crate::config::Config;
use crate::error::UserError;

/// A check's outcome. `Skip`: it could not run (a check it needs failed, or nothing to check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable id (`slack_scopes`, `database`, ...): part of the `--json` contract.
    pub name: &'static str,
    pub status: Status,
    /// What was found, in one sentence (no secret).
    pub detail: String,
    /// What to do about a warning or failure; `None` when ok or skipped.
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }
    pub fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    pub fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    pub fn skip(name: &'static str, reason: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Skip,
            detail: reason.into(),
            fix: None,
        }
    }
}

/// Every check, in the order printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// True when no check failed (warnings and skips allowed).
    pub fn ok(&self) -> bool {
        !self.checks.iter().any(|c| c.status == Status::Fail)
    }

    /// The process exit code: 0 when nothing failed, else 1.
    pub fn exit_code(&self) -> i32 {
        if self.ok() {
            0
        } else {
            1
        }
    }

    pub fn count(&self, s: Status) -> usize {
        self.checks.iter().filter(|c| c.status == s).count()
    }
}

/// Runs every check against `config` (or reports why the configuration did not load).
pub async fn run(config: Result<Config, UserError>) -> Report {
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            return Report {
                checks: vec![Check::fail(
                    "config",
                    e.0,
                    "Fix the variable named above (every variable is described in .env.example), then run `sentinel doctor` again.",
                )],
            }
        }
    };
    let mut checks = vec![Check::ok(
        "config",
        "the environment parses into a valid configuration",
    )];
    let (slack, db, embed, llm) = tokio::join!(
        slack::checks(&config),
        infra::database(&config),
        infra::embedder(&config),
        infra::llm(&config),
    );
    checks.extend(slack);
    checks.extend(db);
    checks.push(embed);
    checks.push(llm);
    checks.push(infra::webhooks(&config));
    Report { checks }
}

//! Diagnosis: a cited draft of what is wrong, why, what to check and what to do, for an
//! alert's thread; runbook-based when no LLM can answer; and questions answered with sources.
//!
//! `prompt`, `validate`, `fallback` and `render` are pure; `engine` and `ask` do the I/O
//! (knowledge base, LLM) and return a `slack::Message`; the incident engine and the bot
//! post it.

pub mod ask;
pub mod breaker;
pub mod catalog;
pub mod engine;
pub mod fallback;
pub mod prompt;
pub mod render;
pub mod validate;

use std::collections::BTreeMap;

use serde::Serialize;

pub use engine::{Diagnoser, DiagnoserOptions, Outcome};

/// What is being diagnosed: the lead maps the real alert/incident types onto this.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Subject {
    /// The incident this belongs to: its token budget pays for LLM calls.
    pub incident_key: Option<String>,
    pub alert_name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub severity: Option<String>,
    /// `firing` or `resolved`.
    pub status: String,
    /// Messages of the thread so far, oldest first (for questions in an incident thread).
    pub thread_context: Vec<String>,
}

impl Subject {
    pub fn runbook_url(&self) -> Option<&str> {
        self.annotations
            .get("runbook_url")
            .or_else(|| self.annotations.get("runbook"))
            .map(String::as_str)
            .filter(|u| !u.trim().is_empty())
    }

    /// The text searched for runbook sections: name, summary, description, message.
    pub fn search_text(&self) -> String {
        let mut parts = vec![self.alert_name.clone()];
        for k in ["summary", "description", "message"] {
            if let Some(v) = self.annotations.get(k) {
                parts.push(v.clone());
            }
        }
        parts.join(" ")
    }
}

/// A runbook section given to the model (and cited in Slack) under a short id.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    /// `S1`, `S2`, ... in retrieval order.
    pub id: String,
    pub chunk_id: String,
    pub runbook_path: String,
    pub runbook_title: String,
    pub heading: String,
    pub anchor: String,
    pub body: String,
    /// A browsable link to the section, when one is known.
    pub url: Option<String>,
}

/// The id a claim cites when it rests on the alert itself rather than a runbook.
pub const ALERT_SOURCE: &str = "ALERT";

/// A statement and the source ids it rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claim {
    pub text: String,
    pub sources: Vec<String>,
}

/// A hypothesis with the model's confidence (0 to 1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cause {
    pub text: String,
    pub confidence: f64,
    pub sources: Vec<String>,
}

/// A catalog action the model proposed, with validated parameters and the rendered argv.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProposedAction {
    pub action_id: String,
    pub title: String,
    pub runbook_path: String,
    pub params: BTreeMap<String, String>,
    pub argv: Vec<String>,
    pub reason: String,
    pub sources: Vec<String>,
}

/// A validated LLM diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    pub summary: Claim,
    pub causes: Vec<Cause>,
    pub next_checks: Vec<Claim>,
    pub actions: Vec<ProposedAction>,
}

/// Why the thread got a runbook-based diagnosis instead of an LLM draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackReason {
    NoLlm,
    Timeout,
    Unavailable,
    InvalidOutput,
    Budget,
    /// The LLM kept failing: it is not asked until a probe gets an answer.
    CircuitOpen,
}

impl FallbackReason {
    /// Its name in snake case, as serialized (the `reason` label of the fallback metric).
    pub fn code(&self) -> &'static str {
        match self {
            FallbackReason::NoLlm => "no_llm",
            FallbackReason::Timeout => "timeout",
            FallbackReason::Unavailable => "unavailable",
            FallbackReason::InvalidOutput => "invalid_output",
            FallbackReason::Budget => "budget",
            FallbackReason::CircuitOpen => "circuit_open",
        }
    }

    pub fn explain(&self) -> &'static str {
        match self {
            FallbackReason::NoLlm => "no LLM is configured",
            FallbackReason::Timeout => "the LLM did not answer in time",
            FallbackReason::Unavailable => "the LLM is unavailable",
            FallbackReason::InvalidOutput => "the LLM's answer failed validation twice",
            FallbackReason::Budget => "this incident's LLM token budget is spent",
            FallbackReason::CircuitOpen => "the LLM is failing; circuit open",
        }
    }
}

/// One runbook's Meaning / Diagnosis / Mitigation, for the runbook-based diagnosis.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FallbackRunbook {
    pub runbook_title: String,
    pub runbook_path: String,
    pub url: Option<String>,
    pub meaning: Option<String>,
    pub diagnosis: Option<String>,
    pub mitigation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fallback {
    pub reason: FallbackReason,
    /// The best runbook, when any matched.
    pub runbook: Option<FallbackRunbook>,
    /// Titles of the actions the matched runbooks declare (proposals come with an LLM).
    pub actions: Vec<(String, String)>,
}

/// What goes in the thread.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Draft {
    Llm(Diagnosis),
    Fallback(Fallback),
}

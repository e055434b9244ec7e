//! The diagnosis pipeline: redact, retrieve runbook sections and their action catalog, ask
//! the LLM (one repair attempt), validate, fall back to the runbook when anything fails,
//! render. The incident engine posts the result (`incidents::sync`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::breaker::{Breaker, BreakerConfig, CallOutcome};
use super::catalog::Catalog;
use super::fallback::{self, Section};
use super::{prompt, render, validate};
use super::{Draft, FallbackReason, Source, Subject};
use crate::knowledge::{Hit, KnowledgeBase, SearchRequest};
use crate::llm::{ChatMessage, JsonRequest, LlmClient, LlmError};
use crate::redact::Redactor;
use crate::slack::Message;

#[derive(Debug, Clone)]
pub struct DiagnoserOptions {
    /// Runbook sections retrieved and given to the model.
    pub k: usize,
    /// The whole LLM phase (retries and repair included); past it, the fallback is posted.
    pub llm_deadline: Duration,
    pub runbook_base_url: Option<String>,
    /// Labels whose values are secret (from `SENTINEL_REDACT_LABELS`).
    pub redact_labels: Vec<String>,
    /// Incident diagnoses one replica's engine runs at once (`SENTINEL_DIAGNOSIS_WORKERS`).
    pub workers: usize,
    /// When to stop asking a failing LLM, and how often to try it again.
    pub breaker: BreakerConfig,
}

impl Default for DiagnoserOptions {
    fn default() -> Self {
        Self {
            k: 6,
            llm_deadline: Duration::from_secs(30),
            runbook_base_url: None,
            redact_labels: Vec::new(),
            workers: 8,
            breaker: BreakerConfig::default(),
        }
    }
}

#[derive(Clone)]
pub struct Diagnoser {
    pub kb: KnowledgeBase,
    pub llm: Option<Arc<LlmClient>>,
    pub opts: DiagnoserOptions,
    /// Shared by every clone: one view of whether the LLM is failing.
    pub breaker: Arc<Breaker>,
}

/// A finished diagnosis: what was drafted, from which sources, and the rendered message.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub draft: Draft,
    pub sources: Vec<Source>,
    pub message: Message,
    /// Proposed actions that were dropped, and why.
    pub dropped: Vec<String>,
}

/// Retrieved material for one subject, already redacted.
pub(crate) struct Retrieved {
    pub hits: Vec<Hit>,
    pub sources: Vec<Source>,
    pub catalog: Catalog,
}

impl Diagnoser {
    pub fn new(kb: KnowledgeBase, llm: Option<Arc<LlmClient>>, opts: DiagnoserOptions) -> Self {
        Self {
            breaker: Arc::new(Breaker::new(opts.breaker)),
            kb,
            llm,
            opts,
        }
    }

    /// A redactor that also knows this subject's sensitive label values.
    pub fn redactor_for(&self, s: &Subject) -> Redactor {
        let mut r = Redactor::new(&self.opts.redact_labels);
        r.learn(&s.labels);
        r.learn(&s.annotations);
        r
    }

    /// The subject with every secret removed: the only form that goes further.
    pub fn redact_subject(r: &Redactor, s: &Subject) -> Subject {
        Subject {
            incident_key: s.incident_key.clone(),
            alert_name: r.redact(&s.alert_name),
            labels: r.redact_map(&s.labels),
            annotations: r.redact_map(&s.annotations),
            severity: s.severity.as_deref().map(|v| r.redact(v)),
            status: r.redact(&s.status),
            thread_context: s.thread_context.iter().map(|m| r.redact(m)).collect(),
        }
    }

    /// Searches the knowledge base; a failure is logged and yields no sections.
    pub(crate) async fn retrieve(&self, r: &Redactor, req: SearchRequest) -> Retrieved {
        let hits = self.search_logged(&req).await;
        self.prepare(r, hits).await
    }

    async fn search_logged(&self, req: &SearchRequest) -> Vec<Hit> {
        match self.kb.search(req).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "runbook search failed");
                Vec::new()
            }
        }
    }

    /// The action catalog and redacted sources for `hits`.
    async fn prepare(&self, r: &Redactor, hits: Vec<Hit>) -> Retrieved {
        let catalog = match Catalog::load(&self.kb.pool, &hits).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "action catalog load failed");
                Catalog::default()
            }
        };
        let mut sources = catalog.sources(&hits, self.opts.runbook_base_url.as_deref());
        for s in &mut sources {
            s.body = r.redact(&s.body);
        }
        Retrieved {
            hits,
            sources,
            catalog,
        }
    }

    /// The runbook sections a diagnosis of `subject` rests on, searched with its redacted
    /// text (exact signals first). The incident engine shows the best of them at once and
    /// hands them to [`Diagnoser::diagnose_hits`], so an incident costs one search.
    pub async fn hits_for(&self, subject: &Subject) -> Vec<Hit> {
        let r = self.redactor_for(subject);
        let s = Self::redact_subject(&r, subject);
        self.search_logged(&SearchRequest {
            text: s.search_text(),
            alert: Some(s.alert_name.clone()).filter(|a| !a.is_empty()),
            runbook_url: s.runbook_url().map(str::to_string),
            k: self.opts.k,
        })
        .await
    }

    /// Diagnoses `subject`. Never fails: any trouble yields the runbook-based diagnosis.
    #[tracing::instrument(skip_all, fields(incident = ?subject.incident_key))]
    pub async fn diagnose(&self, subject: &Subject) -> Outcome {
        let hits = self.hits_for(subject).await;
        self.diagnose_hits(subject, hits).await
    }

    /// [`Diagnoser::diagnose`] on sections already found by [`Diagnoser::hits_for`].
    pub async fn diagnose_hits(&self, subject: &Subject, hits: Vec<Hit>) -> Outcome {
        let r = self.redactor_for(subject);
        let s = Self::redact_subject(&r, subject);
        let got = self.prepare(&r, hits).await;
        let (draft, dropped) = match self.ask_llm(&r, &s, &got).await {
            Ok((d, dropped)) => (Draft::Llm(d), dropped),
            Err(reason) => {
                self.kb.metrics.diagnosis_fallback(reason.code());
                (self.fallback(&r, reason, &got).await, vec![])
            }
        };
        for d in &dropped {
            tracing::warn!(reason = %r.redact(d), "dropped a proposed action");
        }
        let message = render::draft(&s.alert_name, &draft, &got.sources).redacted(&r);
        Outcome {
            draft,
            sources: got.sources,
            message,
            dropped,
        }
    }

    /// Records the tokens `subject`'s incident has cost so far (once per incident
    /// diagnosis), when an LLM is configured.
    pub async fn record_incident_usage(&self, subject: &Subject) {
        if let (Some(llm), Some(key)) = (&self.llm, &subject.incident_key) {
            let used = llm.ledger().used(key).await;
            self.kb.metrics.incident_llm_usage(used);
        }
    }

    /// The LLM's draft within the deadline, unless there is no LLM or the breaker holds
    /// it back; every call's result is reported to the breaker.
    async fn ask_llm(
        &self,
        r: &Redactor,
        s: &Subject,
        got: &Retrieved,
    ) -> Result<(super::Diagnosis, Vec<String>), FallbackReason> {
        let Some(llm) = &self.llm else {
            return Err(FallbackReason::NoLlm);
        };
        let Some(permit) = self.breaker.admit() else {
            return Err(FallbackReason::CircuitOpen);
        };
        let deadline = self.opts.llm_deadline;
        let draft = tokio::time::timeout(deadline, self.llm_draft(llm, r, s, got));
        // Once other calls open the circuit, this one stops waiting too (a probe is the
        // test of an open circuit: it runs its course).
        let opened = self.breaker.opened();
        let probe = permit.is_probe();
        let result = tokio::select! {
            r = draft => r,
            _ = opened, if !probe => return Err(FallbackReason::CircuitOpen),
        };
        match result {
            Ok(Ok(d)) => {
                permit.record(CallOutcome::Success);
                Ok(d)
            }
            Ok(Err(LlmFailure::Invalid)) => {
                permit.record(CallOutcome::Success);
                Err(FallbackReason::InvalidOutput)
            }
            Ok(Err(LlmFailure::Call(e))) => {
                permit.record(CallOutcome::of(&e));
                Err(reason_of(e))
            }
            Err(_) => {
                tracing::warn!(
                    deadline_ms = deadline.as_millis() as u64,
                    "LLM diagnosis timed out"
                );
                permit.record(CallOutcome::Failure);
                Err(FallbackReason::Timeout)
            }
        }
    }

    async fn llm_draft(
        &self,
        llm: &LlmClient,
        r: &Redactor,
        s: &Subject,
        got: &Retrieved,
    ) -> Result<(super::Diagnosis, Vec<String>), LlmFailure> {
        let ids: Vec<String> = got.sources.iter().map(|x| x.id.clone()).collect();
        let mut messages = vec![
            ChatMessage::system(prompt::SYSTEM_PROMPT),
            ChatMessage::user(r.redact(&prompt::diagnosis_prompt(s, &got.sources, &got.catalog))),
        ];
        for purpose in ["diagnosis", "repair"] {
            let req = JsonRequest {
                incident: s.incident_key.clone(),
                purpose,
                messages: messages.clone(),
                schema_name: "diagnosis",
                schema: prompt::diagnosis_schema(),
            };
            let content = llm
                .complete_json(&req)
                .await
                .map_err(LlmFailure::Call)?
                .content;
            match validate::diagnosis(&content, &ids, &got.catalog, s, prompt::SYSTEM_PROMPT) {
                Ok(v) => return Ok((v.diagnosis, v.dropped)),
                Err(problems) => {
                    tracing::warn!(?problems, purpose, "LLM diagnosis failed validation");
                    messages.push(ChatMessage::assistant(
                        r.redact(&crate::text::truncate_chars(&content, 4_000)),
                    ));
                    messages.push(ChatMessage::user(repair_request(&problems)));
                }
            }
        }
        Err(LlmFailure::Invalid)
    }

    /// The runbook-based diagnosis from the best hit's runbook.
    async fn fallback(&self, r: &Redactor, reason: FallbackReason, got: &Retrieved) -> Draft {
        let best = got.hits.first();
        let sections = match best {
            Some(h) => match runbook_sections(&self.kb, &h.runbook_path).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "cannot read runbook sections");
                    vec![Section {
                        heading_path: h.heading_path.clone(),
                        anchor: h.anchor.clone(),
                        body: h.body.clone(),
                    }]
                }
            },
            None => Vec::new(),
        };
        let sections: Vec<Section> = sections
            .into_iter()
            .map(|s| Section {
                body: r.redact(&s.body),
                ..s
            })
            .collect();
        Draft::Fallback(fallback::build(
            reason,
            best.map(|h| (h.runbook_path.as_str(), h.runbook_title.as_str())),
            &sections,
            &got.catalog,
            self.opts.runbook_base_url.as_deref(),
        ))
    }
}

/// Why the LLM gave no draft.
enum LlmFailure {
    /// A call failed.
    Call(LlmError),
    /// It answered, twice, with something that failed validation.
    Invalid,
}

pub(crate) fn reason_of(e: LlmError) -> FallbackReason {
    match e {
        LlmError::Timeout(_) => FallbackReason::Timeout,
        LlmError::Budget { .. } => FallbackReason::Budget,
        _ => FallbackReason::Unavailable,
    }
}

pub(crate) fn repair_request(problems: &[String]) -> String {
    let list: Vec<String> = problems
        .iter()
        .take(10)
        .map(|p| format!("- {}", crate::text::truncate_chars(p, 200)))
        .collect();
    format!(
        "Your answer was not valid:\n{}\nAnswer again with one JSON object that follows the schema. \
         Cite only the ids given (S1, S2, ... or ALERT).",
        list.join("\n")
    )
}

/// Every chunk of one runbook, in document order.
pub(crate) async fn runbook_sections(
    kb: &KnowledgeBase,
    path: &str,
) -> anyhow::Result<Vec<Section>> {
    let rows: Vec<(Vec<String>, String, String)> = sqlx::query_as(
        "SELECT c.heading_path, c.anchor, c.body FROM chunks c JOIN runbooks r ON r.id = c.runbook_id
         WHERE r.path = $1 ORDER BY c.ord",
    )
    .bind(path)
    .fetch_all(&kb.pool)
    .await
    .context("Failed to read the runbook's sections")?;
    Ok(rows
        .into_iter()
        .map(|(heading_path, anchor, body)| Section {
            heading_path,
            anchor,
            body,
        })
        .collect())
}

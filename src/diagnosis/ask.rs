//! Questions: `@sentinel QUESTION` in a thread (with the incident's alert, diagnosis and
//! thread so far) and `/sentinel ask` (ephemeral), answered with sources; and
//! `/sentinel search TEXT` listing runbook sections.

use super::engine::{reason_of, repair_request, Diagnoser};
use super::{prompt, render, validate, Source, Subject};
use crate::knowledge::SearchRequest;
use crate::llm::{ChatMessage, JsonRequest};
use crate::redact::Redactor;
use crate::slack::Message;

/// Sections given to the model for a question.
const QUESTION_K: usize = 5;
/// Sections listed when no LLM answers.
const FALLBACK_SECTIONS: usize = 3;

/// The incident a question is asked in.
#[derive(Debug, Clone, Default)]
pub struct IncidentContext {
    /// The incident's alert (and `thread_context`: the thread so far).
    pub subject: Subject,
    /// The diagnosis summary posted in the thread, if any.
    pub diagnosis: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub text: String,
    pub cited: Vec<String>,
    pub sources: Vec<Source>,
    /// False when the answer lists runbook sections because no LLM answered.
    pub by_llm: bool,
    pub message: Message,
}

impl Diagnoser {
    /// Answers a question; never fails (without an LLM it lists the best sections).
    #[tracing::instrument(skip_all)]
    pub async fn answer_question(&self, question: &str, ctx: Option<&IncidentContext>) -> Answer {
        let mut r = match ctx {
            Some(c) => self.redactor_for(&c.subject),
            None => Redactor::new(&self.opts.redact_labels),
        };
        if let Some(c) = ctx {
            r.learn(&c.subject.labels);
        }
        let q = r.redact(question);
        let subject = ctx.map(|c| Self::redact_subject(&r, &c.subject));
        let diagnosis = ctx
            .and_then(|c| c.diagnosis.as_deref())
            .map(|d| r.redact(d));
        let text = match &subject {
            Some(s) => format!("{q} {}", s.search_text()),
            None => q.clone(),
        };
        let got = self
            .retrieve(
                &r,
                SearchRequest {
                    text,
                    alert: subject.as_ref().map(|s| s.alert_name.clone()),
                    runbook_url: subject
                        .as_ref()
                        .and_then(|s| s.runbook_url().map(str::to_string)),
                    k: QUESTION_K,
                },
            )
            .await;
        let ids: Vec<String> = got.sources.iter().map(|s| s.id.clone()).collect();
        let mut llm_answer = None;
        if let Some(llm) = &self.llm {
            let mut messages = vec![
                ChatMessage::system(prompt::QUESTION_SYSTEM_PROMPT),
                ChatMessage::user(r.redact(&prompt::question_prompt(
                    &q,
                    subject.as_ref().map(|s| (s, diagnosis.as_deref())),
                    &got.sources,
                ))),
            ];
            let work = async {
                for purpose in ["question", "repair"] {
                    let req = JsonRequest {
                        incident: subject.as_ref().and_then(|s| s.incident_key.clone()),
                        purpose,
                        messages: messages.clone(),
                        schema_name: "answer",
                        schema: prompt::answer_schema(),
                    };
                    let content = match llm.complete_json(&req).await {
                        Ok(c) => c.content,
                        Err(e) => {
                            tracing::warn!(reason = ?reason_of(e), "no LLM answer");
                            return None;
                        }
                    };
                    match validate::answer(&content, &ids, prompt::QUESTION_SYSTEM_PROMPT) {
                        Ok(a) => return Some(a),
                        Err(problems) => {
                            messages.push(ChatMessage::assistant(r.redact(&content)));
                            messages.push(ChatMessage::user(repair_request(&problems)));
                        }
                    }
                }
                None
            };
            llm_answer = tokio::time::timeout(self.opts.llm_deadline, work)
                .await
                .ok()
                .flatten();
        }
        let (text, cited, by_llm) = match llm_answer {
            Some((t, c)) => (t, c, true),
            None => {
                let top: Vec<&Source> = got.sources.iter().take(FALLBACK_SECTIONS).collect();
                let text = if top.is_empty() {
                    "I found no runbook section about this.".to_string()
                } else {
                    top.iter()
                        .map(|s| {
                            format!(
                                "• **{}**: {}",
                                s.heading,
                                crate::text::excerpt(&s.body, 400)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                (text, top.iter().map(|s| s.id.clone()).collect(), false)
            }
        };
        let message = render::answer(&q, &text, &cited, &got.sources, by_llm).redacted(&r);
        Answer {
            text: r.redact(&text),
            cited,
            sources: got.sources,
            by_llm,
            message,
        }
    }
}

//! Validation of the model's answer (pure): JSON shape, citations, confidence, leaks of the
//! system prompt, and actions checked against the catalog and their parameter patterns.
//!
//! Problems that a repair can fix make the answer invalid; unlisted actions or bad
//! parameters are dropped (and reported) without failing the answer.

use std::collections::{BTreeMap, HashSet};

use schemars::JsonSchema;
use serde::Deserialize;

use super::catalog::Catalog;
use super::{Cause, Claim, Diagnosis, ProposedAction, Subject, ALERT_SOURCE};
use crate::text::words;

pub const MAX_CAUSES: usize = 5;
pub const MAX_CHECKS: usize = 6;
pub const MAX_ACTIONS: usize = 3;
const MAX_TEXT: usize = 1_200;

// The model's answer as parsed. The JSON Schema it answers in is derived from these types
// (`prompt::diagnosis_schema`, `prompt::answer_schema`): a field added here is in it.

#[derive(Deserialize, JsonSchema)]
struct RawClaim {
    text: String,
    sources: Vec<String>,
}

#[derive(Deserialize, JsonSchema)]
struct RawCause {
    cause: String,
    confidence: f64,
    sources: Vec<String>,
}

#[derive(Deserialize, JsonSchema)]
struct RawCheck {
    check: String,
    sources: Vec<String>,
}

#[derive(Deserialize, JsonSchema)]
struct RawParam {
    name: String,
    value: String,
}

#[derive(Deserialize, JsonSchema)]
struct RawAction {
    action_id: String,
    #[serde(default)]
    params: Vec<RawParam>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    sources: Vec<String>,
}

#[derive(Deserialize, JsonSchema)]
pub(super) struct RawDiagnosis {
    summary: RawClaim,
    likely_causes: Vec<RawCause>,
    next_checks: Vec<RawCheck>,
    #[serde(default)]
    proposed_actions: Vec<RawAction>,
}

#[derive(Deserialize, JsonSchema)]
pub struct RawAnswer {
    pub answer: String,
    pub sources: Vec<String>,
}

/// The validated diagnosis and what was dropped from it (for the log).
#[derive(Debug)]
pub struct Validated {
    pub diagnosis: Diagnosis,
    pub dropped: Vec<String>,
}

/// The JSON object in `content`, tolerating a Markdown code fence around it.
fn json_text(content: &str) -> &str {
    let t = content.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .unwrap_or(t);
    t.strip_suffix("```").unwrap_or(t).trim()
}

/// Parses `content` as `T`, or says in one line why not.
pub fn parse<T: for<'de> Deserialize<'de>>(content: &str) -> Result<T, String> {
    let text = json_text(content);
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the answer is not valid JSON: {e}"))?;
    serde_json::from_value(value).map_err(|e| format!("the answer does not follow the schema: {e}"))
}

/// Window length: eight consecutive words of the system prompt in an answer is a leak.
const LEAK_WINDOW: usize = 8;

/// True when `text` repeats a run of `LEAK_WINDOW` words from `secret_prompt`.
pub fn leaks(text: &str, secret_prompt: &str) -> bool {
    let p = words(secret_prompt);
    let t = words(text);
    if t.len() < LEAK_WINDOW || p.len() < LEAK_WINDOW {
        return false;
    }
    let windows: HashSet<&[String]> = p.windows(LEAK_WINDOW).collect();
    t.windows(LEAK_WINDOW).any(|w| windows.contains(w))
}

/// Checks citations against the given ids; returns the problems.
fn check_sources(what: &str, sources: &[String], ids: &HashSet<&str>, problems: &mut Vec<String>) {
    if sources.is_empty() {
        problems.push(format!("{what} cites no source"));
    }
    for s in sources {
        if !ids.contains(s.as_str()) {
            problems.push(format!("{what} cites `{s}`, which is not a provided id"));
        }
    }
}

fn check_text(what: &str, text: &str, system: &str, problems: &mut Vec<String>) {
    if text.trim().is_empty() {
        problems.push(format!("{what} is empty"));
    } else if leaks(text, system) {
        problems.push(format!("{what} repeats the instructions"));
    }
}

fn clip(s: &str) -> String {
    crate::text::truncate_chars(s.trim(), MAX_TEXT)
}

/// Validates a diagnosis answer. `ids` are the source ids given to the model.
pub fn diagnosis(
    content: &str,
    ids: &[String],
    catalog: &Catalog,
    subject: &Subject,
    system: &str,
) -> Result<Validated, Vec<String>> {
    let raw: RawDiagnosis = parse(content).map_err(|e| vec![e])?;
    let mut known: HashSet<&str> = ids.iter().map(String::as_str).collect();
    known.insert(ALERT_SOURCE);
    let mut problems = Vec::new();

    check_text("summary", &raw.summary.text, system, &mut problems);
    check_sources("summary", &raw.summary.sources, &known, &mut problems);
    for (i, c) in raw.likely_causes.iter().enumerate() {
        let what = format!("likely_causes[{i}]");
        check_text(&what, &c.cause, system, &mut problems);
        check_sources(&what, &c.sources, &known, &mut problems);
        if !(0.0..=1.0).contains(&c.confidence) || c.confidence.is_nan() {
            problems.push(format!("{what} confidence must be between 0 and 1"));
        }
    }
    for (i, c) in raw.next_checks.iter().enumerate() {
        let what = format!("next_checks[{i}]");
        check_text(&what, &c.check, system, &mut problems);
        check_sources(&what, &c.sources, &known, &mut problems);
    }
    for (i, a) in raw.proposed_actions.iter().enumerate() {
        if leaks(&a.reason, system) {
            problems.push(format!(
                "proposed_actions[{i}] reason repeats the instructions"
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let mut dropped = Vec::new();
    let mut actions = Vec::new();
    for a in raw.proposed_actions {
        match check_action(&a, catalog, subject, &known) {
            Ok(p) if actions.len() < MAX_ACTIONS => actions.push(p),
            Ok(p) => dropped.push(format!(
                "`{}`: more than {MAX_ACTIONS} actions",
                p.action_id
            )),
            Err(why) => dropped.push(why),
        }
    }
    let mut causes: Vec<Cause> = raw
        .likely_causes
        .into_iter()
        .map(|c| Cause {
            text: clip(&c.cause),
            confidence: c.confidence,
            sources: c.sources,
        })
        .collect();
    causes.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    causes.truncate(MAX_CAUSES);
    let mut next_checks: Vec<Claim> = raw
        .next_checks
        .into_iter()
        .map(|c| Claim {
            text: clip(&c.check),
            sources: c.sources,
        })
        .collect();
    next_checks.truncate(MAX_CHECKS);
    Ok(Validated {
        diagnosis: Diagnosis {
            summary: Claim {
                text: clip(&raw.summary.text),
                sources: raw.summary.sources,
            },
            causes,
            next_checks,
            actions,
        },
        dropped,
    })
}

/// A proposed action is kept only when the catalog has it and its parameters render.
fn check_action(
    a: &RawAction,
    catalog: &Catalog,
    subject: &Subject,
    known: &HashSet<&str>,
) -> Result<ProposedAction, String> {
    let id = crate::text::truncate_chars(a.action_id.trim(), 80);
    let entry = catalog
        .actions
        .get(a.action_id.trim())
        .ok_or_else(|| format!("`{id}` is not in the action catalog"))?;
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for p in &a.params {
        params.insert(p.name.clone(), p.value.clone());
    }
    // Parameters the model left out come from the alert labels the catalog names.
    for (name, decl) in &entry.action.params {
        if params.contains_key(name) {
            continue;
        }
        if let Some(v) = decl.from_label.as_ref().and_then(|l| subject.labels.get(l)) {
            params.insert(name.clone(), v.clone());
        }
    }
    let argv = entry
        .action
        .render(&entry.action.command, &params)
        .map_err(|e| format!("`{id}` has invalid parameters: {e}"))?;
    Ok(ProposedAction {
        action_id: entry.action.id.clone(),
        title: entry.action.title.clone(),
        runbook_path: entry.runbook_path.clone(),
        params,
        argv,
        reason: clip(&a.reason),
        sources: a
            .sources
            .iter()
            .filter(|s| known.contains(s.as_str()))
            .cloned()
            .collect(),
    })
}

/// Validates a question's answer; returns the answer text and its valid sources.
pub fn answer(
    content: &str,
    ids: &[String],
    system: &str,
) -> Result<(String, Vec<String>), Vec<String>> {
    let raw: RawAnswer = parse(content).map_err(|e| vec![e])?;
    let mut known: HashSet<&str> = ids.iter().map(String::as_str).collect();
    known.insert(ALERT_SOURCE);
    let mut problems = Vec::new();
    check_text("answer", &raw.answer, system, &mut problems);
    for s in &raw.sources {
        if !known.contains(s.as_str()) {
            problems.push(format!("answer cites `{s}`, which is not a provided id"));
        }
    }
    if problems.is_empty() {
        Ok((clip(&raw.answer), raw.sources))
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SYS: &str = super::super::prompt::SYSTEM_PROMPT;

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        c.add(
            "checkout/crash.md",
            vec![],
            json!([{"id": "restart-checkout", "title": "Restart checkout-api pods",
                    "command": ["kubectl", "-n", "{namespace}", "rollout", "restart", "deployment/checkout-api"],
                    "params": {"namespace": {"pattern": "checkout(-[a-z0-9]+)?", "from_label": "namespace"}}}]),
        );
        c
    }

    fn subject() -> Subject {
        Subject {
            labels: BTreeMap::from([("namespace".to_string(), "checkout".to_string())]),
            ..Default::default()
        }
    }

    fn ids() -> Vec<String> {
        vec!["S1".into(), "S2".into()]
    }

    fn good() -> serde_json::Value {
        json!({
            "summary": {"text": "checkout-api pods crash after a deploy", "sources": ["S1", "ALERT"]},
            "likely_causes": [
                {"cause": "bad release", "confidence": 0.4, "sources": ["S2"]},
                {"cause": "OOM", "confidence": 0.7, "sources": ["S1"]}
            ],
            "next_checks": [{"check": "read the previous logs", "sources": ["S1"]}],
            "proposed_actions": [{"action_id": "restart-checkout", "params": [], "reason": "config fix", "sources": ["S2", "S9"]}]
        })
    }

    #[test]
    fn good_answer_validates_and_sorts_causes() {
        let v = diagnosis(&good().to_string(), &ids(), &catalog(), &subject(), SYS).unwrap();
        assert_eq!(v.diagnosis.causes[0].text, "OOM");
        let a = &v.diagnosis.actions[0];
        assert_eq!(a.params["namespace"], "checkout", "filled from the label");
        assert_eq!(a.argv[2], "checkout");
        assert_eq!(
            a.sources,
            ["S2"],
            "unknown citation on an action is dropped"
        );
        assert!(v.dropped.is_empty());
    }

    #[test]
    fn code_fences_are_tolerated() {
        let content = format!("```json\n{}\n```", good());
        assert!(diagnosis(&content, &ids(), &catalog(), &subject(), SYS).is_ok());
    }

    #[test]
    fn invalid_json_and_schema_violations_are_problems() {
        let e = diagnosis("{not json", &ids(), &catalog(), &subject(), SYS).unwrap_err();
        assert!(e[0].contains("not valid JSON"));
        let e = diagnosis(r#"{"summary": "x"}"#, &ids(), &catalog(), &subject(), SYS).unwrap_err();
        assert!(e[0].contains("schema"), "{e:?}");
    }

    #[test]
    fn unknown_citations_and_bad_confidence_are_problems() {
        let mut v = good();
        v["summary"]["sources"] = json!(["S7"]);
        v["likely_causes"][0]["confidence"] = json!(70);
        v["next_checks"][0]["sources"] = json!([]);
        let e = diagnosis(&v.to_string(), &ids(), &catalog(), &subject(), SYS).unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
    }

    #[test]
    fn hallucinated_actions_and_bad_params_are_dropped() {
        let mut v = good();
        v["proposed_actions"] = json!([
            {"action_id": "delete-cluster", "params": [], "reason": "x", "sources": ["S1"]},
            {"action_id": "restart-checkout", "params": [{"name": "namespace", "value": "kube-system"}], "reason": "x", "sources": ["S1"]},
            {"action_id": "restart-checkout", "params": [{"name": "cmd", "value": "rm -rf /"}], "reason": "x", "sources": ["S1"]}
        ]);
        let out = diagnosis(&v.to_string(), &ids(), &catalog(), &subject(), SYS).unwrap();
        assert!(out.diagnosis.actions.is_empty());
        assert_eq!(out.dropped.len(), 3, "{:?}", out.dropped);
        assert!(out.dropped[0].contains("not in the action catalog"));
    }

    #[test]
    fn leaking_the_system_prompt_is_a_problem() {
        let mut v = good();
        v["summary"]["text"] = json!(format!("My rules: {}", &SYS[..300]));
        let e = diagnosis(&v.to_string(), &ids(), &catalog(), &subject(), SYS).unwrap_err();
        assert!(e[0].contains("repeats the instructions"));
        assert!(!leaks(
            "Pods crash because the release is bad and the config map changed.",
            SYS
        ));
    }

    #[test]
    fn answers_validate_citations() {
        let ok = answer(
            r#"{"answer": "Roll back.", "sources": ["S1"]}"#,
            &ids(),
            SYS,
        )
        .unwrap();
        assert_eq!(ok.0, "Roll back.");
        assert!(answer(r#"{"answer": "x", "sources": ["S5"]}"#, &ids(), SYS).is_err());
    }
}

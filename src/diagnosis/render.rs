//! Slack rendering (pure): the placeholder, the LLM diagnosis, the runbook-based fallback,
//! answers and search results, as text plus Block Kit within Slack's limits.
//!
//! Facts (what the runbooks and the alert say) and hypotheses (likely causes, with their
//! confidence) look different. All model and runbook text is escaped, so it can neither
//! ping (`<!channel>`) nor forge links.

use once_cell::sync::Lazy;
use regex::Regex;
use serde_json::{json, Value};

use super::{Diagnosis, Draft, Fallback, SlackMessage, Source};
use crate::knowledge::Hit;
use crate::redact::Redactor;
use crate::text::truncate_chars;

pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION: usize = 3_000;
pub const MAX_HEADER: usize = 150;
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
/// The notification text: Slack accepts more, but a preview never needs it.
pub const MAX_TEXT: usize = 3_000;

/// Escapes Slack's control characters (`&`, `<`, `>`).
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

static MD_LINK: Lazy<Regex> =
    Lazy::new(|| Regex::new(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)").expect("static regex"));
static MD_BOLD: Lazy<Regex> = Lazy::new(|| Regex::new(r"\*\*([^*\n]+)\*\*").expect("static regex"));

/// Runbook Markdown as Slack mrkdwn: escaped, `**bold**` to `*bold*`, links to `<url|text>`.
pub fn markdown(s: &str) -> String {
    let e = escape(s);
    let e = MD_BOLD.replace_all(&e, "*$1*");
    MD_LINK
        .replace_all(&e, |c: &regex::Captures| {
            format!("<{}|{}>", &c[2], c[1].replace('|', "/"))
        })
        .into_owned()
}

fn link(url: Option<&str>, label: &str) -> String {
    let label = escape(label).replace('|', "/");
    match url {
        Some(u) if !u.contains(['<', '>', '|', ' ']) => format!("<{u}|{label}>"),
        _ => label,
    }
}

fn header(text: &str) -> Value {
    json!({"type": "header", "text": {"type": "plain_text", "text": truncate_chars(text, MAX_HEADER), "emoji": true}})
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate_chars(text, MAX_SECTION)}})
}

fn context(items: &[String]) -> Value {
    let elements: Vec<Value> = items
        .iter()
        .take(MAX_CONTEXT_ELEMENTS)
        .map(|t| json!({"type": "mrkdwn", "text": truncate_chars(t, MAX_SECTION)}))
        .collect();
    json!({"type": "context", "elements": elements})
}

/// `text` is shown in notifications and parsed as mrkdwn too: it is escaped here.
fn finish(text: String, mut blocks: Vec<Value>) -> SlackMessage {
    if blocks.len() > MAX_BLOCKS {
        blocks.truncate(MAX_BLOCKS - 1);
        blocks.push(context(&[
            "_…more was cut to fit Slack's limits_".to_string()
        ]));
    }
    SlackMessage {
        text: truncate_chars(&escape(&text), MAX_TEXT),
        blocks: Value::Array(blocks),
    }
}

fn cites(ids: &[String]) -> String {
    if ids.is_empty() {
        return String::new();
    }
    let refs: Vec<String> = ids.iter().map(|i| format!("`{}`", escape(i))).collect();
    format!("  {}", refs.join(" "))
}

/// The message posted at once, then edited in place.
pub fn placeholder(alert_name: &str) -> SlackMessage {
    let t = format!("⏳ Investigating {alert_name}… searching runbooks and drafting a diagnosis.");
    let b = section(&escape(&t));
    finish(t, vec![b])
}

/// The diagnosis message for a draft.
pub fn draft(alert_name: &str, d: &Draft, sources: &[Source]) -> SlackMessage {
    match d {
        Draft::Llm(x) => diagnosis(alert_name, x, sources),
        Draft::Fallback(f) => fallback(alert_name, f),
    }
}

/// The LLM diagnosis: summary (facts), hypotheses with confidence, checks, actions, sources.
pub fn diagnosis(alert_name: &str, d: &Diagnosis, sources: &[Source]) -> SlackMessage {
    let mut blocks = vec![
        header(&format!("🔎 Diagnosis draft: {alert_name}")),
        context(&[
            "🤖 Drafted by an LLM from the runbook sections cited below. Facts cite their source; hypotheses show a confidence. Verify before acting.".to_string(),
        ]),
        section(&format!(
            "*✅ What the runbooks and alert say*\n{}{}",
            escape(&d.summary.text),
            cites(&d.summary.sources)
        )),
    ];
    if !d.causes.is_empty() {
        let lines: Vec<String> = d
            .causes
            .iter()
            .map(|c| {
                format!(
                    "• _{}_ — *{}% likely*{}",
                    escape(&c.text).replace('_', " "),
                    (c.confidence * 100.0).round() as u32,
                    cites(&c.sources)
                )
            })
            .collect();
        blocks.push(section(&format!(
            "*🤔 Hypotheses (unverified)*\n{}",
            lines.join("\n")
        )));
    }
    if !d.next_checks.is_empty() {
        let lines: Vec<String> = d
            .next_checks
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}. {}{}", i + 1, escape(&c.text), cites(&c.sources)))
            .collect();
        blocks.push(section(&format!("*📋 Next checks*\n{}", lines.join("\n"))));
    }
    if !d.actions.is_empty() {
        let lines: Vec<String> = d
            .actions
            .iter()
            .map(|a| {
                format!(
                    "• *{}* (`{}`) — {}{}\n   `{}`",
                    escape(&a.title),
                    escape(&a.action_id),
                    escape(&a.reason),
                    cites(&a.sources),
                    escape(&a.argv.join(" ")).replace('`', "'")
                )
            })
            .collect();
        blocks.push(section(&format!(
            "*🛠 Proposed actions* (from the runbook catalog; not run)\n{}",
            lines.join("\n")
        )));
    }
    let mut cited: Vec<&str> = d.summary.sources.iter().map(String::as_str).collect();
    for ids in d
        .causes
        .iter()
        .map(|c| &c.sources)
        .chain(d.next_checks.iter().map(|c| &c.sources))
        .chain(d.actions.iter().map(|a| &a.sources))
    {
        cited.extend(ids.iter().map(String::as_str));
    }
    blocks.push(json!({"type": "divider"}));
    blocks.push(sources_block(sources, &cited));
    let text = format!(
        "Diagnosis draft for {alert_name}: {}",
        truncate_chars(&d.summary.text, 300)
    );
    finish(text, blocks)
}

/// The cited sources (all of them when nothing was cited), as links to their sections.
fn sources_block(sources: &[Source], cited: &[&str]) -> Value {
    let listed: Vec<&Source> = sources
        .iter()
        .filter(|s| cited.is_empty() || cited.contains(&s.id.as_str()))
        .collect();
    let lines: Vec<String> = listed
        .iter()
        .map(|s| {
            let label = format!("{} › {}", s.runbook_title, s.heading);
            let mut line = format!("`{}` {}", s.id, link(s.url.as_deref(), &label));
            if s.url.is_none() {
                line.push_str(&format!(
                    " (`{}#{}`)",
                    escape(&s.runbook_path),
                    escape(&s.anchor)
                ));
            }
            line
        })
        .collect();
    let body = if lines.is_empty() {
        "No runbook section was cited.".to_string()
    } else {
        lines.join("\n")
    };
    section(&format!("*📚 Sources*\n{body}"))
}

/// The runbook-based diagnosis, clearly labelled as not an LLM draft.
pub fn fallback(alert_name: &str, f: &Fallback) -> SlackMessage {
    let mut blocks = vec![
        header(&format!("📖 Runbook-based diagnosis: {alert_name}")),
        context(&[format!(
            "Not an LLM draft ({}). These are the best-matching runbook's own sections.",
            f.reason.explain()
        )]),
    ];
    let Some(rb) = &f.runbook else {
        blocks.push(section(&format!(
            "No runbook matches *{}* yet. Add one whose front matter lists `alerts: [{}]`, then run `sentinel ingest`.",
            escape(alert_name),
            escape(alert_name)
        )));
        let text = format!("No runbook matches {alert_name} yet.");
        return finish(text, blocks);
    };
    let from = link(rb.url.as_deref(), &rb.runbook_title);
    blocks.push(section(&format!(
        "*Runbook:* {from} (`{}`)",
        escape(&rb.runbook_path)
    )));
    for (title, body) in [
        ("📌 Meaning", &rb.meaning),
        ("🔍 Diagnosis", &rb.diagnosis),
        ("🩹 Mitigation", &rb.mitigation),
    ] {
        if let Some(b) = body {
            blocks.push(section(&format!("*{title}*\n{}", markdown(b))));
        }
    }
    if !f.actions.is_empty() {
        let lines: Vec<String> = f
            .actions
            .iter()
            .map(|(id, title)| format!("• {} (`{}`)", escape(title), escape(id)))
            .collect();
        blocks.push(section(&format!(
            "*🛠 Actions this runbook declares* (none proposed without an LLM)\n{}",
            lines.join("\n")
        )));
    }
    let text = format!(
        "Runbook-based diagnosis for {alert_name}: {} ({})",
        rb.runbook_title,
        f.reason.explain()
    );
    finish(text, blocks)
}

/// An answer to a question, with its sources (`/sentinel ask` posts it ephemerally).
pub fn answer(
    question: &str,
    answer: &str,
    cited: &[String],
    sources: &[Source],
    drafted_by_llm: bool,
) -> SlackMessage {
    let mut blocks = vec![
        context(&[format!("❓ {}", escape(&truncate_chars(question, 300)))]),
        section(&markdown(answer)),
    ];
    if !drafted_by_llm {
        blocks.insert(
            1,
            context(&[
                "📖 No LLM answer available: these are the most relevant runbook sections."
                    .to_string(),
            ]),
        );
    }
    let ids: Vec<&str> = cited.iter().map(String::as_str).collect();
    if !sources.is_empty() {
        blocks.push(sources_block(sources, &ids));
    }
    finish(truncate_chars(answer, 500), blocks)
}

/// `/sentinel search TEXT`: the matching runbook sections, as links with an excerpt.
pub fn search(query: &str, hits: &[Hit], sources: &[Source]) -> SlackMessage {
    let mut blocks = vec![context(&[format!(
        "🔎 Runbook sections for “{}”",
        escape(&truncate_chars(query, 200))
    )])];
    if hits.is_empty() {
        blocks.push(section("No runbook section matches. Try other words, or ingest runbooks with `sentinel ingest`."));
    }
    for (h, s) in hits.iter().zip(sources) {
        let label = format!("{} › {}", h.runbook_title, h.heading());
        blocks.push(section(&format!(
            "*{}.* {}\n> {}",
            h.rank,
            link(s.url.as_deref(), &label),
            escape(&crate::text::excerpt(&h.body, 280))
        )));
    }
    finish(
        format!("{} runbook sections for {query}", hits.len()),
        blocks,
    )
}

/// Redacts every string in a message (the last line of defence before Slack).
pub fn redact_message(r: &Redactor, m: SlackMessage) -> SlackMessage {
    fn walk(r: &Redactor, v: &mut Value) {
        match v {
            Value::String(s) => *s = r.redact(s),
            Value::Array(a) => a.iter_mut().for_each(|x| walk(r, x)),
            Value::Object(o) => o.values_mut().for_each(|x| walk(r, x)),
            _ => {}
        }
    }
    let mut blocks = m.blocks;
    walk(r, &mut blocks);
    SlackMessage {
        text: r.redact(&m.text),
        blocks,
    }
}

/// Everything a user sees in a message: its text and every text inside its blocks.
pub fn visible_text(m: &SlackMessage) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(t)) = o.get("text") {
                    out.push_str(t);
                    out.push('\n');
                }
                for (k, x) in o {
                    if k != "text" || !x.is_string() {
                        walk(x, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = m.text.clone();
    out.push('\n');
    walk(&m.blocks, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Cause, Claim, FallbackReason, FallbackRunbook, ProposedAction};
    use super::*;

    fn src(id: &str) -> Source {
        Source {
            id: id.into(),
            chunk_id: format!("c-{id}"),
            runbook_path: "checkout/crash.md".into(),
            runbook_title: "Checkout crash".into(),
            heading: "Checkout crash > Diagnosis".into(),
            anchor: "diagnosis".into(),
            body: "…".into(),
            url: Some("https://wiki.example/crash#diagnosis".into()),
        }
    }

    fn diag() -> Diagnosis {
        Diagnosis {
            summary: Claim {
                text: "Pods crash <!channel> after a deploy".into(),
                sources: vec!["S1".into()],
            },
            causes: vec![Cause {
                text: "bad release".into(),
                confidence: 0.72,
                sources: vec!["S1".into()],
            }],
            next_checks: vec![Claim {
                text: "read previous logs".into(),
                sources: vec!["S1".into()],
            }],
            actions: vec![ProposedAction {
                action_id: "rollback-checkout".into(),
                title: "Roll back".into(),
                runbook_path: "checkout/crash.md".into(),
                params: Default::default(),
                argv: vec!["kubectl".into(), "rollout".into(), "undo".into()],
                reason: "crash began with the deploy".into(),
                sources: vec![],
            }],
        }
    }

    #[test]
    fn diagnosis_shows_facts_hypotheses_actions_and_linked_sources() {
        let m = diagnosis("KubePodCrashLooping", &diag(), &[src("S1"), src("S2")]);
        let t = visible_text(&m);
        assert!(t.contains("What the runbooks and alert say"));
        assert!(t.contains("Hypotheses (unverified)"));
        assert!(t.contains("_bad release_ — *72% likely*"));
        assert!(t.contains("kubectl rollout undo"));
        assert!(t.contains(
            "<https://wiki.example/crash#diagnosis|Checkout crash › Checkout crash &gt; Diagnosis>"
        ));
        assert!(!t.contains("`S2`"), "uncited sources are not listed");
        assert!(!t.contains("<!channel>"), "model text cannot ping");
    }

    #[test]
    fn limits_hold_for_huge_input() {
        let mut d = diag();
        d.summary.text = "é".repeat(10_000);
        d.next_checks = (0..200)
            .map(|i| Claim {
                text: format!("check {i}"),
                sources: vec!["S1".into()],
            })
            .collect();
        let m = diagnosis(&"A".repeat(400), &d, &[src("S1")]);
        let blocks = m.blocks.as_array().unwrap();
        assert!(blocks.len() <= MAX_BLOCKS);
        for b in blocks {
            if let Some(t) = b["text"]["text"].as_str() {
                let max = if b["type"] == "header" {
                    MAX_HEADER
                } else {
                    MAX_SECTION
                };
                assert!(t.chars().count() <= max, "{}", b["type"]);
            }
        }
        assert!(m.text.chars().count() <= MAX_TEXT);
    }

    #[test]
    fn fallback_is_labelled_and_shows_runbook_parts() {
        let f = Fallback {
            reason: FallbackReason::Timeout,
            runbook: Some(FallbackRunbook {
                runbook_title: "Checkout crash".into(),
                runbook_path: "checkout/crash.md".into(),
                url: None,
                meaning: Some("Pods **restart** see [docs](https://docs.example/x)".into()),
                diagnosis: Some("Read logs".into()),
                mitigation: None,
            }),
            actions: vec![("rollback-checkout".into(), "Roll back".into())],
        };
        let t = visible_text(&fallback("KubePodCrashLooping", &f));
        assert!(t.contains("Runbook-based diagnosis"));
        assert!(t.contains("Not an LLM draft (the LLM did not answer in time)"));
        assert!(t.contains("Pods *restart* see <https://docs.example/x|docs>"));
        assert!(t.contains("🔍 Diagnosis"));
        assert!(!t.contains("Mitigation"));
        assert!(t.contains("Roll back (`rollback-checkout`)"));
    }

    #[test]
    fn fallback_without_runbook_says_how_to_add_one() {
        let f = Fallback {
            reason: FallbackReason::NoLlm,
            runbook: None,
            actions: vec![],
        };
        let t = visible_text(&fallback("DiskFull", &f));
        assert!(t.contains("No runbook matches *DiskFull* yet"));
    }

    #[test]
    fn redaction_reaches_every_string() {
        let m = placeholder("Leak password=hunter2");
        let m = redact_message(&Redactor::default(), m);
        assert!(!visible_text(&m).contains("hunter2"));
    }
}

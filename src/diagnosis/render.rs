//! Slack rendering (pure): the LLM diagnosis, the runbook-based fallback, answers and
//! search results, built from the Slack message vocabulary (`slack::message`).
//!
//! Facts (what the runbooks and the alert say) and hypotheses (likely causes, with their
//! confidence) look different. All model and runbook text enters as outside text, so it
//! is redacted and escaped and can neither ping (`<!channel>`) nor forge links.

use super::{Diagnosis, Draft, Fallback, Source};
use crate::mrkdwn;
use crate::slack::blocks::{context, divider, header, section, Block};
use crate::slack::message::{section_link, SectionRef};
use crate::slack::{Message, Mrkdwn, Plain};
use crate::text::truncate_chars;

/// `  `S1` `S2``: the source ids a claim cites.
fn cites(ids: &[String]) -> Mrkdwn {
    if ids.is_empty() {
        return Mrkdwn::default();
    }
    let refs = ids.iter().map(|i| Mrkdwn::code(i));
    mrkdwn!("  {}", Mrkdwn::join(refs, " "))
}

/// A source as a linked runbook section.
fn source_link(s: &Source) -> Mrkdwn {
    section_link(&SectionRef {
        runbook_title: &s.runbook_title,
        heading: &s.heading,
        runbook_path: &s.runbook_path,
        anchor: &s.anchor,
        url: s.url.as_deref(),
    })
}

/// The diagnosis message for a draft.
pub fn draft(alert_name: &str, d: &Draft, sources: &[Source]) -> Message {
    match d {
        Draft::Llm(x) => diagnosis(alert_name, x, sources),
        Draft::Fallback(f) => fallback(alert_name, f),
    }
}

/// The LLM diagnosis: summary (facts), hypotheses with confidence, checks, actions, sources.
pub fn diagnosis(alert_name: &str, d: &Diagnosis, sources: &[Source]) -> Message {
    let mut blocks = vec![
        header(&Plain::untrusted(&format!("🔎 Diagnosis draft: {alert_name}"))),
        context(&[Mrkdwn::own(
            "🤖 Drafted by an LLM from the runbook sections cited below. Facts cite their source; hypotheses show a confidence. Verify before acting.",
        )]),
        section(&mrkdwn!(
            "*✅ What the runbooks and alert say*\n{}{}",
            Mrkdwn::untrusted(&d.summary.text),
            cites(&d.summary.sources)
        )),
    ];
    if !d.causes.is_empty() {
        let lines = d.causes.iter().map(|c| {
            mrkdwn!(
                "• _{}_ — *{}% likely*{}",
                Mrkdwn::untrusted(&c.text.replace('_', " ")),
                (c.confidence * 100.0).round() as u32,
                cites(&c.sources)
            )
        });
        blocks.push(section(&mrkdwn!(
            "*🤔 Hypotheses (unverified)*\n{}",
            Mrkdwn::join(lines, "\n")
        )));
    }
    if !d.next_checks.is_empty() {
        let lines = d.next_checks.iter().enumerate().map(|(i, c)| {
            mrkdwn!(
                "{}. {}{}",
                i + 1,
                Mrkdwn::untrusted(&c.text),
                cites(&c.sources)
            )
        });
        blocks.push(section(&mrkdwn!(
            "*📋 Next checks*\n{}",
            Mrkdwn::join(lines, "\n")
        )));
    }
    if !d.actions.is_empty() {
        let lines = d.actions.iter().map(|a| {
            mrkdwn!(
                "• {} ({}) — {}{}\n   {}",
                Mrkdwn::bold(&Mrkdwn::untrusted(&a.title)),
                Mrkdwn::code(&a.action_id),
                Mrkdwn::untrusted(&a.reason),
                cites(&a.sources),
                Mrkdwn::code(&a.argv.join(" "))
            )
        });
        blocks.push(section(&mrkdwn!(
            "*🛠 Proposed actions* (from the runbook catalog; not run)\n{}",
            Mrkdwn::join(lines, "\n")
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
    blocks.push(divider());
    blocks.push(sources_block(sources, &cited));
    let text = mrkdwn!(
        "Diagnosis draft for {}: {}",
        Mrkdwn::untrusted(alert_name),
        Mrkdwn::untrusted(&truncate_chars(&d.summary.text, 300))
    );
    Message::new(&text, blocks)
}

/// The cited sources (all of them when nothing was cited), as links to their sections.
fn sources_block(sources: &[Source], cited: &[&str]) -> Block {
    let lines: Vec<Mrkdwn> = sources
        .iter()
        .filter(|s| cited.is_empty() || cited.contains(&s.id.as_str()))
        .map(|s| mrkdwn!("{} {}", Mrkdwn::code(&s.id), source_link(s)))
        .collect();
    let body = if lines.is_empty() {
        Mrkdwn::own("No runbook section was cited.")
    } else {
        Mrkdwn::join(lines, "\n")
    };
    section(&mrkdwn!("*📚 Sources*\n{}", body))
}

/// The runbook-based diagnosis, clearly labelled as not an LLM draft.
pub fn fallback(alert_name: &str, f: &Fallback) -> Message {
    let name = Mrkdwn::untrusted(alert_name);
    let mut blocks = vec![
        header(&Plain::untrusted(&format!(
            "📖 Runbook-based diagnosis: {alert_name}"
        ))),
        context(&[mrkdwn!(
            "Not an LLM draft ({}). These are the best-matching runbook's own sections.",
            Mrkdwn::own(f.reason.explain())
        )]),
    ];
    let Some(rb) = &f.runbook else {
        blocks.push(section(&mrkdwn!(
            "No runbook matches {} yet. Add one whose front matter lists `alerts: [{}]`, then run `sentinel ingest`.",
            Mrkdwn::bold(&name),
            name
        )));
        return Message::new(&mrkdwn!("No runbook matches {} yet.", name), blocks);
    };
    let title = Mrkdwn::untrusted(&rb.runbook_title);
    let from = match &rb.url {
        Some(u) => Mrkdwn::link(u, &title),
        None => title.clone(),
    };
    blocks.push(section(&mrkdwn!(
        "*Runbook:* {} ({})",
        from,
        Mrkdwn::code(&rb.runbook_path)
    )));
    for (part, body) in [
        ("📌 Meaning", &rb.meaning),
        ("🔍 Diagnosis", &rb.diagnosis),
        ("🩹 Mitigation", &rb.mitigation),
    ] {
        if let Some(b) = body {
            blocks.push(section(&mrkdwn!(
                "*{}*\n{}",
                Mrkdwn::own(part),
                Mrkdwn::markdown(b)
            )));
        }
    }
    if !f.actions.is_empty() {
        let lines = f
            .actions
            .iter()
            .map(|(id, title)| mrkdwn!("• {} ({})", Mrkdwn::untrusted(title), Mrkdwn::code(id)));
        blocks.push(section(&mrkdwn!(
            "*🛠 Actions this runbook declares* (when actions are on, each is offered below with Approve and Reject)\n{}",
            Mrkdwn::join(lines, "\n")
        )));
    }
    let text = mrkdwn!(
        "Runbook-based diagnosis for {}: {} ({})",
        name,
        title,
        Mrkdwn::own(f.reason.explain())
    );
    Message::new(&text, blocks)
}

/// An answer to a question, with its sources (`/sentinel ask` posts it ephemerally).
pub fn answer(
    question: &str,
    answer: &str,
    cited: &[String],
    sources: &[Source],
    drafted_by_llm: bool,
) -> Message {
    let mut blocks = vec![
        context(&[mrkdwn!(
            "❓ {}",
            Mrkdwn::untrusted(&truncate_chars(question, 300))
        )]),
        section(&Mrkdwn::markdown(answer)),
    ];
    if !drafted_by_llm {
        blocks.insert(
            1,
            context(&[Mrkdwn::own(
                "📖 No LLM answer available: these are the most relevant runbook sections.",
            )]),
        );
    }
    let ids: Vec<&str> = cited.iter().map(String::as_str).collect();
    if !sources.is_empty() {
        blocks.push(sources_block(sources, &ids));
    }
    Message::new(&Mrkdwn::untrusted(&truncate_chars(answer, 500)), blocks)
}

#[cfg(test)]
mod tests {
    use super::super::{Cause, Claim, FallbackReason, FallbackRunbook, ProposedAction};
    use super::*;
    use crate::redact::Redactor;
    use crate::slack::blocks::{
        MAX_HEADER_TEXT, MAX_MESSAGE_BLOCKS, MAX_MESSAGE_TEXT, MAX_SECTION_TEXT,
    };

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
        let t = m.visible_text();
        assert!(t.contains("What the runbooks and alert say"));
        assert!(t.contains("Hypotheses (unverified)"));
        assert!(t.contains("_bad release_ — *72% likely*"));
        assert!(t.contains("kubectl rollout undo"));
        assert!(t.contains(
            "<https://wiki.example/crash#diagnosis|Checkout crash &gt; Diagnosis (wiki.example)>"
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
        let blocks = m.blocks();
        assert!(blocks.len() <= MAX_MESSAGE_BLOCKS);
        for b in blocks {
            if let Some(t) = b["text"]["text"].as_str() {
                let max = if b["type"] == "header" {
                    MAX_HEADER_TEXT
                } else {
                    MAX_SECTION_TEXT
                };
                assert!(t.chars().count() <= max, "{}", b["type"]);
            }
        }
        assert!(m.text().chars().count() <= MAX_MESSAGE_TEXT);
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
        let t = fallback("KubePodCrashLooping", &f).visible_text();
        assert!(t.contains("Runbook-based diagnosis"));
        assert!(t.contains("Not an LLM draft (the LLM did not answer in time)"));
        assert!(t.contains("Pods *restart* see <https://docs.example/x|docs (docs.example)>"));
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
        let t = fallback("DiskFull", &f).visible_text();
        assert!(t.contains("No runbook matches *DiskFull* yet"));
    }

    #[test]
    fn redaction_reaches_every_string() {
        let mut r = Redactor::new(["customer"]);
        r.learn(&[("customer".to_string(), "acme-corp".to_string())].into());
        let f = Fallback {
            reason: FallbackReason::NoLlm,
            runbook: None,
            actions: vec![],
        };
        let m = fallback("Leak password=hunter2 for acme-corp", &f);
        assert!(!m.visible_text().contains("hunter2"));
        assert!(m.visible_text().contains("acme-corp"));
        assert!(!m.redacted(&r).visible_text().contains("acme-corp"));
    }
}

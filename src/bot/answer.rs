//! How runbook search results read in Slack: title, heading, excerpt and link per section,
//! with feedback and search-again buttons. Pure.

use serde_json::Value;

use super::command::ButtonAction;
use crate::incidents::render::hit_link;
use crate::knowledge::Hit;
use crate::mrkdwn;
use crate::slack::blocks;
use crate::slack::{Message, Mrkdwn, Plain};
use crate::text::excerpt;

/// Callback id of the search modal.
pub const VIEW_SEARCH: &str = "kb_search";

/// The message answering `question` with `hits` (with feedback buttons when `buttons`).
pub fn runbook_answer(question: &str, hits: &[Hit], base: Option<&str>, buttons: bool) -> Message {
    if hits.is_empty() {
        let text = mrkdwn!(
            "I found no runbook section for “{}”. Is anything ingested? (`sentinel ingest runbooks`)",
            Mrkdwn::untrusted(&excerpt(question, 200))
        );
        return Message::new(&text, vec![blocks::section(&text)]);
    }
    let q = Mrkdwn::untrusted(&excerpt(question, 300));
    let mut out = vec![blocks::section(&mrkdwn!(
        "*Best runbook sections for:* _{}_",
        q
    ))];
    let mut text = vec![mrkdwn!("Best runbook sections for: {}", q)];
    for h in hits {
        out.push(blocks::section(&mrkdwn!(
            "{}\n{}",
            hit_link(h, base),
            Mrkdwn::untrusted(&excerpt(&h.body, 400))
        )));
        text.push(mrkdwn!(
            "• {} — {} ({})",
            Mrkdwn::untrusted(&h.runbook_title),
            Mrkdwn::untrusted(&h.heading()),
            Mrkdwn::untrusted(&format!("{}#{}", h.runbook_path, h.anchor))
        ));
    }
    if buttons {
        let helpful = ButtonAction::Helpful {
            chunk_id: hits[0].chunk_id.clone(),
        };
        let again = ButtonAction::SearchAgain {
            query: question.to_string(),
        };
        out.push(blocks::actions(
            "kb_feedback",
            vec![
                blocks::button(
                    &Plain::own("👍 Helpful"),
                    helpful.action_id(),
                    helpful.value(),
                ),
                blocks::button(
                    &Plain::own("🔎 Search again"),
                    again.action_id(),
                    again.value(),
                ),
            ],
        ));
    }
    Message::new(&Mrkdwn::join(text, "\n"), out)
}

/// The runbook search modal; `metadata` says where to post the answer.
pub fn search_modal(initial: &str, metadata: &str) -> Value {
    blocks::modal(
        VIEW_SEARCH,
        "Search runbooks",
        "Search",
        vec![blocks::text_input(
            "query",
            "query",
            "What is going on?",
            initial,
        )],
        metadata,
    )
}

/// Removes `<@U…>` mentions and folds whitespace.
pub fn strip_mentions(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("<@") {
        out.push_str(&rest[..i]);
        match rest[i..].find('>') {
            Some(j) => rest = &rest[i + j + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::MatchKind;

    fn hit(title: &str, body: &str) -> Hit {
        Hit {
            rank: 1,
            chunk_id: "c1".into(),
            runbook_path: "kubernetes/crashloop.md".into(),
            runbook_title: title.into(),
            heading_path: vec![title.into(), "Mitigation".into()],
            anchor: "mitigation".into(),
            body: body.into(),
            score: 1.0,
            matched_by: MatchKind::Hybrid,
        }
    }

    #[test]
    fn strips_mentions() {
        assert_eq!(
            strip_mentions("<@U0SENTINEL>  why is <@U1|bob> sad?"),
            "why is sad?"
        );
        assert_eq!(strip_mentions("<@U0 broken"), "");
        assert_eq!(strip_mentions("plain"), "plain");
    }

    #[test]
    fn answer_has_title_heading_excerpt_link_and_buttons() {
        let m = runbook_answer(
            "pod restarting",
            &[hit("Crash loop", &"restart it. ".repeat(100))],
            Some("https://rb.example/"),
            true,
        );
        assert!(m.text().contains("Crash loop — Crash loop &gt; Mitigation"));
        let b = m.blocks();
        let s = b[1]["text"]["text"].as_str().unwrap();
        assert!(s.starts_with("<https://rb.example/kubernetes/crashloop.md#mitigation|Crash loop &gt; Mitigation (rb.example)>\nrestart it."), "{s}");
        assert!(s.chars().count() < 3000);
        let clicked = ButtonAction::parse(
            b[2]["elements"][0]["action_id"].as_str().unwrap(),
            b[2]["elements"][0]["value"].as_str(),
        );
        assert_eq!(
            clicked,
            Some(ButtonAction::Helpful {
                chunk_id: "c1".into()
            })
        );
        assert_eq!(b[2]["elements"][1]["value"], "pod restarting");
    }

    #[test]
    fn no_hits_says_so() {
        let m = runbook_answer("x", &[], None, true);
        assert!(m.text().contains("no runbook section"));
        assert_eq!(m.blocks().len(), 1);
    }
}

//! How runbook search results read in Slack: title, heading, excerpt and link per section,
//! with feedback and search-again buttons. Pure.

use serde_json::Value;

use crate::knowledge::Hit;
use crate::slack::blocks;
use crate::text::excerpt;

/// Action ids of the answer's buttons.
pub const ACTION_HELPFUL: &str = "kb_helpful";
pub const ACTION_SEARCH_AGAIN: &str = "kb_search_open";
/// Callback id of the search modal.
pub const VIEW_SEARCH: &str = "kb_search";

/// The link to a runbook section (mrkdwn).
pub fn link(hit: &Hit, base: Option<&str>) -> String {
    let target = format!("{}#{}", hit.runbook_path, hit.anchor);
    match base {
        Some(b) => format!("<{}/{}|{}>", b.trim_end_matches('/'), target, target),
        None => format!("`{target}`"),
    }
}

/// (fallback text, blocks) answering `question` with `hits`.
pub fn runbook_answer(
    question: &str,
    hits: &[Hit],
    base: Option<&str>,
    buttons: bool,
) -> (String, Vec<Value>) {
    if hits.is_empty() {
        let text = format!(
            "I found no runbook section for “{}”. Is anything ingested? (`sentinel ingest runbooks`)",
            excerpt(question, 200)
        );
        return (text.clone(), vec![blocks::section(&text)]);
    }
    let mut out = vec![blocks::section(&format!(
        "*Best runbook sections for:* _{}_",
        excerpt(question, 300)
    ))];
    let mut text = format!("Best runbook sections for: {}\n", excerpt(question, 300));
    for h in hits {
        let heading = h.heading();
        out.push(blocks::section(&format!(
            "*{}* — {}\n{}\n{}",
            h.runbook_title,
            heading,
            excerpt(&h.body, 400),
            link(h, base)
        )));
        text.push_str(&format!(
            "• {} — {} ({}#{})\n",
            h.runbook_title, heading, h.runbook_path, h.anchor
        ));
    }
    if buttons {
        out.push(blocks::actions(
            "kb_feedback",
            vec![
                blocks::button("👍 Helpful", ACTION_HELPFUL, &hits[0].chunk_id),
                blocks::button("🔎 Search again", ACTION_SEARCH_AGAIN, question),
            ],
        ));
    }
    (text, blocks::cap_message(out))
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
        let (text, b) = runbook_answer(
            "pod restarting",
            &[hit("Crash loop", &"restart it. ".repeat(100))],
            Some("https://rb.example/"),
            true,
        );
        assert!(text.contains("Crash loop — Crash loop > Mitigation"));
        let s = b[1]["text"]["text"].as_str().unwrap();
        assert!(s.starts_with("*Crash loop* — Crash loop > Mitigation\nrestart it."));
        assert!(s.contains("<https://rb.example/kubernetes/crashloop.md#mitigation|kubernetes/crashloop.md#mitigation>"));
        assert!(s.chars().count() < 3000);
        assert_eq!(b[2]["elements"][0]["action_id"], ACTION_HELPFUL);
        assert_eq!(b[2]["elements"][1]["value"], "pod restarting");
    }

    #[test]
    fn no_hits_says_so() {
        let (text, b) = runbook_answer("x", &[], None, true);
        assert!(text.contains("no runbook section"));
        assert_eq!(b.len(), 1);
    }
}

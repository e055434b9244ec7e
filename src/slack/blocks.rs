//! Block Kit builder that stays within Slack's limits: long text is cut on a character
//! boundary with a visible marker and lists are capped. Every block is built here, from
//! [`Mrkdwn`] and [`Plain`] text, so outside text cannot reach a block unescaped.

use serde_json::{json, Value};

use super::mrkdwn::{Mrkdwn, Plain};
use crate::text::truncate_chars;

/// Blocks in one message (modals allow 100).
pub const MAX_MESSAGE_BLOCKS: usize = 50;
pub const MAX_MODAL_BLOCKS: usize = 100;
pub const MAX_SECTION_TEXT: usize = 3000;
pub const MAX_SECTION_FIELDS: usize = 10;
pub const MAX_FIELD_TEXT: usize = 2000;
pub const MAX_HEADER_TEXT: usize = 150;
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
pub const MAX_ACTIONS_ELEMENTS: usize = 25;
pub const MAX_BUTTON_TEXT: usize = 75;
pub const MAX_BUTTON_VALUE: usize = 2000;
pub const MAX_URL: usize = 3000;
pub const MAX_ID: usize = 255;
pub const MAX_MODAL_TITLE: usize = 24;
pub const MAX_PRIVATE_METADATA: usize = 3000;
/// Slack truncates message text past 40,000 characters and recommends about 4,000.
pub const MAX_MESSAGE_TEXT: usize = 4000;

/// One Block Kit block; only the builders below make them.
#[derive(Debug, Clone, PartialEq)]
pub struct Block(Value);

impl Block {
    pub fn as_value(&self) -> &Value {
        &self.0
    }

    pub fn into_value(self) -> Value {
        self.0
    }
}

/// Cuts `s` to `max` characters; the cut is marked with `…` (never mid-character).
pub fn cut(s: &str, max: usize) -> String {
    truncate_chars(s, max)
}

/// A `mrkdwn` section, text cut to 3000 characters.
pub fn section(text: &Mrkdwn) -> Block {
    Block(
        json!({"type": "section", "text": {"type": "mrkdwn", "text": non_empty(cut(text.as_str(), MAX_SECTION_TEXT))}}),
    )
}

/// A section made of up to 10 two-column fields.
pub fn fields(items: &[Mrkdwn]) -> Block {
    let fields: Vec<Value> = items
        .iter()
        .take(MAX_SECTION_FIELDS)
        .map(|t| json!({"type": "mrkdwn", "text": non_empty(cut(t.as_str(), MAX_FIELD_TEXT))}))
        .collect();
    Block(json!({"type": "section", "fields": fields}))
}

pub fn header(text: &Plain) -> Block {
    Block(
        json!({"type": "header", "text": {"type": "plain_text", "text": non_empty(cut(text.as_str(), MAX_HEADER_TEXT)), "emoji": true}}),
    )
}

pub fn divider() -> Block {
    Block(json!({"type": "divider"}))
}

/// A context block of `mrkdwn` elements (at most 10, each cut like a section).
pub fn context(items: &[Mrkdwn]) -> Block {
    let elements: Vec<Value> = items
        .iter()
        .take(MAX_CONTEXT_ELEMENTS)
        .map(|t| json!({"type": "mrkdwn", "text": non_empty(cut(t.as_str(), MAX_SECTION_TEXT))}))
        .collect();
    Block(json!({"type": "context", "elements": elements}))
}

/// A button; `value` longer than 2000 characters is cut (keep values short ids). Ids and
/// values come from `bot::command::ButtonAction`, which parses them back.
pub fn button(text: &Plain, action_id: &str, value: &str) -> Value {
    json!({
        "type": "button",
        "text": {"type": "plain_text", "text": non_empty(cut(text.as_str(), MAX_BUTTON_TEXT)), "emoji": true},
        "action_id": cut(action_id, MAX_ID),
        "value": cut(value, MAX_BUTTON_VALUE),
    })
}

/// A button's emphasis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Primary,
    Danger,
}

/// Slack's confirmation dialog, shown before a click is sent.
#[derive(Debug, Clone)]
pub struct Confirm {
    pub title: Plain,
    pub text: Plain,
    pub confirm: Plain,
    pub deny: Plain,
}

/// A button with a style and, optionally, a confirmation dialog (title 100, text 300,
/// buttons 30 characters).
pub fn styled_button(
    text: &Plain,
    action_id: &str,
    value: &str,
    style: Option<Style>,
    confirm: Option<&Confirm>,
) -> Value {
    let mut b = button(text, action_id, value);
    if let Some(s) = style {
        b["style"] = json!(match s {
            Style::Primary => "primary",
            Style::Danger => "danger",
        });
    }
    if let Some(c) = confirm {
        let plain =
            |p: &Plain, max| json!({"type": "plain_text", "text": non_empty(cut(p.as_str(), max))});
        b["confirm"] = json!({
            "title": plain(&c.title, 100),
            "text": plain(&c.text, 300),
            "confirm": plain(&c.confirm, 30),
            "deny": plain(&c.deny, 30),
        });
    }
    b
}

/// An actions block of at most 25 elements.
pub fn actions(block_id: &str, elements: Vec<Value>) -> Block {
    let elements: Vec<Value> = elements.into_iter().take(MAX_ACTIONS_ELEMENTS).collect();
    Block(json!({"type": "actions", "block_id": cut(block_id, MAX_ID), "elements": elements}))
}

/// Caps a message at 50 blocks; the last kept block says how many were left out.
pub fn cap_message(mut blocks: Vec<Block>) -> Vec<Block> {
    cap(&mut blocks, MAX_MESSAGE_BLOCKS);
    blocks
}

fn cap(blocks: &mut Vec<Block>, max: usize) {
    if blocks.len() > max {
        let dropped = blocks.len() - (max - 1);
        blocks.truncate(max - 1);
        blocks.push(context(&[crate::mrkdwn!(
            "_{} more blocks not shown_",
            dropped
        )]));
    }
}

/// A modal view: title/submit/close cut to 24, private metadata to 3000, blocks to 100.
pub fn modal(
    callback_id: &str,
    title: &str,
    submit: &str,
    mut blocks: Vec<Block>,
    private_metadata: &str,
) -> Value {
    cap(&mut blocks, MAX_MODAL_BLOCKS);
    let blocks: Vec<Value> = blocks.into_iter().map(Block::into_value).collect();
    json!({
        "type": "modal",
        "callback_id": cut(callback_id, MAX_ID),
        "title": {"type": "plain_text", "text": non_empty(cut(title, MAX_MODAL_TITLE))},
        "submit": {"type": "plain_text", "text": non_empty(cut(submit, MAX_MODAL_TITLE))},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": cut(private_metadata, MAX_PRIVATE_METADATA),
        "blocks": blocks,
    })
}

/// A single-line plain-text input block.
pub fn text_input(block_id: &str, action_id: &str, label: &str, initial: &str) -> Block {
    Block(json!({
        "type": "input",
        "block_id": cut(block_id, MAX_ID),
        "label": {"type": "plain_text", "text": non_empty(cut(label, 2000))},
        "element": {"type": "plain_text_input", "action_id": cut(action_id, MAX_ID), "initial_value": cut(initial, 3000)},
    }))
}

/// Message text (the notification and fallback), cut to the recommended 4000 characters.
pub fn message_text(text: &str) -> String {
    cut(text, MAX_MESSAGE_TEXT)
}

/// The readable text of blocks, for the plain-text fallback when Slack rejects them.
pub fn plain_text(blocks: &[Value]) -> String {
    let mut lines = Vec::new();
    for b in blocks {
        if let Some(t) = b["text"]["text"].as_str() {
            lines.push(t.to_string());
        }
        for key in ["fields", "elements"] {
            if let Some(items) = b[key].as_array() {
                let parts: Vec<&str> = items
                    .iter()
                    .filter_map(|e| e["text"].as_str().or(e["text"]["text"].as_str()))
                    .collect();
                if !parts.is_empty() && b["type"] != "actions" {
                    lines.push(parts.join("  "));
                }
            }
        }
    }
    message_text(&lines.join("\n"))
}

/// Slack rejects empty text objects; a single space keeps the block valid.
fn non_empty(s: String) -> String {
    if s.trim().is_empty() {
        " ".to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Mrkdwn {
        Mrkdwn::own(s)
    }

    fn v(b: Block) -> Value {
        b.into_value()
    }

    #[test]
    fn long_section_is_cut_on_a_char_boundary_with_a_marker() {
        let long = "é".repeat(5000);
        let b = v(section(&m(&long)));
        let t = b["text"]["text"].as_str().unwrap();
        assert_eq!(t.chars().count(), MAX_SECTION_TEXT);
        assert!(t.ends_with('…'));
        let emoji = "🔥".repeat(200);
        let h = v(header(&Plain::own(emoji)));
        let t = h["text"]["text"].as_str().unwrap();
        assert_eq!(t.chars().count(), MAX_HEADER_TEXT);
        assert!(t.starts_with("🔥🔥"));
    }

    #[test]
    fn short_text_is_untouched() {
        assert_eq!(v(section(&m("hello")))["text"]["text"], "hello");
        assert_eq!(v(section(&m("")))["text"]["text"], " ");
    }

    #[test]
    fn button_and_lists_respect_limits() {
        let b = button(&Plain::own("x".repeat(200)), "act", &"v".repeat(5000));
        assert_eq!(b["text"]["text"].as_str().unwrap().chars().count(), 75);
        assert_eq!(b["value"].as_str().unwrap().chars().count(), 2000);
        let a = v(actions(
            "blk",
            (0..40)
                .map(|i| button(&Plain::own("b"), &format!("a{i}"), "v"))
                .collect(),
        ));
        assert_eq!(a["elements"].as_array().unwrap().len(), 25);
        let c = v(context(
            &(0..20).map(|i| m(&i.to_string())).collect::<Vec<_>>(),
        ));
        assert_eq!(c["elements"].as_array().unwrap().len(), 10);
        let f = v(fields(&vec![m("f"); 12]));
        assert_eq!(f["fields"].as_array().unwrap().len(), 10);
    }

    #[test]
    fn message_is_capped_at_50_blocks_with_a_note() {
        let blocks: Vec<Value> =
            cap_message((0..70).map(|i| section(&m(&format!("s{i}")))).collect())
                .into_iter()
                .map(v)
                .collect();
        assert_eq!(blocks.len(), 50);
        assert_eq!(blocks[48]["text"]["text"], "s48");
        assert_eq!(
            blocks[49]["elements"][0]["text"],
            "_21 more blocks not shown_"
        );
        assert_eq!(cap_message(vec![divider()]).len(), 1);
    }

    #[test]
    fn modal_fields_are_cut() {
        let m = modal(
            "cb",
            "A very long modal title that Slack rejects",
            "Search",
            vec![],
            &"m".repeat(4000),
        );
        assert_eq!(m["title"]["text"].as_str().unwrap().chars().count(), 24);
        assert_eq!(
            m["private_metadata"].as_str().unwrap().chars().count(),
            3000
        );
    }

    #[test]
    fn plain_text_reads_sections_headers_and_context() {
        let blocks: Vec<Value> = vec![
            header(&Plain::own("Title")),
            section(&m("body *bold*")),
            context(&[m("a"), m("b")]),
            actions("x", vec![button(&Plain::own("Click"), "c", "v")]),
        ]
        .into_iter()
        .map(v)
        .collect();
        assert_eq!(plain_text(&blocks), "Title\nbody *bold*\na  b");
    }
}

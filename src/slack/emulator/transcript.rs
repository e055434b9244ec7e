//! A channel as a person would read it: top-level messages with their threads indented,
//! reactions, edits and the ephemerals only one user saw.

use super::state::{State, BOT_USER_ID};

/// Renders `channel` as plain text.
pub fn render(st: &State, channel: &str) -> String {
    let name = |u: &Option<String>, bot: &Option<String>| -> String {
        match u {
            Some(id) if id == BOT_USER_ID => "Sentinel (bot)".into(),
            Some(id) => st
                .users
                .get(id)
                .map(|u| u.name.clone())
                .unwrap_or_else(|| id.clone()),
            None => bot
                .clone()
                .map(|b| format!("app {b}"))
                .unwrap_or_else(|| "?".into()),
        }
    };
    let title = st
        .channels
        .get(channel)
        .map(|c| c.name.clone())
        .unwrap_or_else(|| channel.into());
    let mut out = format!("#{title}\n");
    let body = |m: &super::state::Message| -> String {
        let text = if m.text.trim().is_empty() {
            m.blocks
                .as_ref()
                .and_then(|b| b.as_array())
                .map(|b| crate::slack::blocks::plain_text(b))
                .unwrap_or_default()
        } else if let Some(blocks) = m.blocks.as_ref().and_then(|b| b.as_array()) {
            crate::slack::blocks::plain_text(blocks)
        } else {
            m.text.clone()
        };
        let buttons: Vec<String> = m
            .blocks
            .iter()
            .flat_map(|b| b.as_array().cloned().unwrap_or_default())
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["text"]["text"].as_str().map(|t| format!("[{t}]")))
            .collect();
        let mut t = text;
        if !buttons.is_empty() {
            t.push('\n');
            t.push_str(&buttons.join(" "));
        }
        t
    };
    let indent = |s: &str, pad: &str| {
        s.lines()
            .map(|l| format!("{pad}{l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for m in st
        .messages
        .iter()
        .filter(|m| m.channel == channel && m.thread_ts.as_ref().is_none_or(|t| t == &m.ts))
    {
        out.push_str(&format!(
            "\n[{}] {}:\n{}\n",
            m.ts,
            name(&m.user, &m.bot_id),
            indent(&body(m), "  ")
        ));
        let reactions: Vec<String> = st
            .reactions
            .iter()
            .filter(|r| r.channel == channel && r.ts == m.ts)
            .map(|r| format!(":{}:", r.name))
            .collect();
        if !reactions.is_empty() {
            out.push_str(&format!("  reactions: {}\n", reactions.join(" ")));
        }
        for r in st.messages.iter().filter(|r| {
            r.channel == channel && r.thread_ts.as_deref() == Some(&m.ts) && r.ts != m.ts
        }) {
            let edited = if r.edits > 0 { " (edited)" } else { "" };
            out.push_str(&format!(
                "    ↳ [{}] {}{}:\n{}\n",
                r.ts,
                name(&r.user, &r.bot_id),
                edited,
                indent(&body(r), "      ")
            ));
        }
    }
    for e in st.ephemerals.iter().filter(|e| e.channel == channel) {
        let who = st
            .users
            .get(&e.user)
            .map(|u| u.name.clone())
            .unwrap_or_else(|| e.user.clone());
        let text = if e.text.is_empty() {
            e.blocks
                .as_ref()
                .and_then(|b| b.as_array())
                .map(|b| crate::slack::blocks::plain_text(b))
                .unwrap_or_default()
        } else {
            e.text.clone()
        };
        out.push_str(&format!(
            "\n(only visible to {who}, via {}):\n{}\n",
            e.via,
            indent(&text, "  ")
        ));
    }
    out
}

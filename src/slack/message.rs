//! The one Slack message type every renderer builds: notification text plus Block Kit
//! blocks, both made of [`Mrkdwn`] and [`Block`]s, so neither can carry unescaped outside
//! text. Also the one way a runbook section is linked.

use serde::Serialize;
use serde_json::Value;

use super::blocks::{self, Block};
use super::mrkdwn::Mrkdwn;
use crate::redact::Redactor;

/// One Slack message: `text` is what notifications and screen readers show (Slack parses
/// it as mrkdwn too); `blocks` what the channel shows. Empty `blocks`: a text message.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Message {
    text: String,
    blocks: Vec<Value>,
    /// Slack message metadata marking what this message is (`Marker`), so a post that
    /// Slack accepted but whose `ts` was never recorded can be found again.
    #[serde(skip_serializing_if = "Option::is_none")]
    marker: Option<Marker>,
}

/// What a message is, for finding it again in the channel (`conversations.history` with
/// `include_all_metadata`): an event type and a key, e.g. `sentinel_incident_root` / `42`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Marker {
    pub event_type: String,
    pub key: String,
}

impl Marker {
    pub fn new(event_type: &str, key: impl ToString) -> Self {
        Self {
            event_type: event_type.to_string(),
            key: key.to_string(),
        }
    }

    /// Slack's `metadata` argument.
    pub fn to_metadata(&self) -> Value {
        serde_json::json!({"event_type": self.event_type, "event_payload": {"key": self.key}})
    }

    /// Whether a message from the Web API (with its metadata) carries this marker.
    pub fn matches(&self, message: &Value) -> bool {
        message["metadata"]["event_type"] == self.event_type.as_str()
            && message["metadata"]["event_payload"]["key"] == self.key.as_str()
    }
}

impl Message {
    /// A message with blocks; text is cut to Slack's recommended length, blocks are capped.
    pub fn new(text: &Mrkdwn, blocks: Vec<Block>) -> Self {
        Self {
            text: blocks::message_text(text.as_str()),
            blocks: blocks::cap_message(blocks)
                .into_iter()
                .map(Block::into_value)
                .collect(),
            marker: None,
        }
    }

    /// Raw text and blocks, sent exactly as given (no escaping, no limits): only for tests
    /// of the Web API client and the emulator, which must be able to send what Slack refuses.
    #[doc(hidden)]
    pub fn unchecked(text: &str, blocks: Vec<Value>) -> Self {
        Self {
            text: text.to_string(),
            blocks,
            marker: None,
        }
    }

    /// A text-only message.
    pub fn text_only(text: &Mrkdwn) -> Self {
        Self::new(text, Vec::new())
    }

    /// This message, marked so it can be found again (see [`Marker`]).
    pub fn marked(mut self, marker: Marker) -> Self {
        self.marker = Some(marker);
        self
    }

    pub fn marker(&self) -> Option<&Marker> {
        self.marker.as_ref()
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn blocks(&self) -> &[Value] {
        &self.blocks
    }

    /// Blocks as the Web API takes them: `None` for a text-only message.
    pub fn api_blocks(&self) -> Option<Vec<Value>> {
        (!self.blocks.is_empty()).then(|| self.blocks.clone())
    }

    /// Adds a block at the end (still within the 50-block cap).
    pub fn push(&mut self, block: Block) {
        if self.blocks.len() < blocks::MAX_MESSAGE_BLOCKS {
            self.blocks.push(block.into_value());
        }
    }

    /// Adds a line of Sentinel's own to the notification text.
    pub fn push_text_line(&mut self, line: &Mrkdwn) {
        self.text.push('\n');
        self.text.push_str(line.as_str());
        self.text = blocks::message_text(&self.text);
    }

    /// Every string redacted again with `r` (configured sensitive labels' values): the
    /// last line of defence before Slack.
    pub fn redacted(self, r: &Redactor) -> Self {
        fn walk(r: &Redactor, v: &mut Value) {
            match v {
                Value::String(s) => *s = r.redact(s),
                Value::Array(a) => a.iter_mut().for_each(|x| walk(r, x)),
                Value::Object(o) => o.values_mut().for_each(|x| walk(r, x)),
                _ => {}
            }
        }
        let mut blocks = Value::Array(self.blocks);
        walk(r, &mut blocks);
        Self {
            text: r.redact(&self.text),
            blocks: match blocks {
                Value::Array(b) => b,
                _ => Vec::new(),
            },
            marker: self.marker,
        }
    }

    /// Everything a user sees: the text and every text inside the blocks.
    pub fn visible_text(&self) -> String {
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
        let mut out = self.text.clone();
        out.push('\n');
        self.blocks.iter().for_each(|b| walk(b, &mut out));
        out
    }
}

/// A runbook section as users see it linked, wherever it appears (runbook reply,
/// diagnosis, answer, search result).
#[derive(Debug, Clone, Copy)]
pub struct SectionRef<'a> {
    pub runbook_title: &'a str,
    /// The heading path, `Title > Section`.
    pub heading: &'a str,
    pub runbook_path: &'a str,
    pub anchor: &'a str,
    /// A browsable URL of the section, when one is known ([`section_url`]).
    pub url: Option<&'a str>,
}

/// `<base>/<path>#<anchor>` when a base URL for runbook sources is configured.
pub fn section_url(base: Option<&str>, path: &str, anchor: &str) -> Option<String> {
    let base = base.map(str::trim).filter(|b| !b.is_empty())?;
    let frag = if anchor.is_empty() {
        String::new()
    } else {
        format!("#{anchor}")
    };
    Some(format!("{}/{path}{frag}", base.trim_end_matches('/')))
}

/// `Title › Section` linked to the section, or with its `path#anchor` when no URL is known.
pub fn section_link(s: &SectionRef) -> Mrkdwn {
    let heading = if s.heading.starts_with(s.runbook_title) || s.runbook_title.is_empty() {
        s.heading.to_string()
    } else {
        format!("{} › {}", s.runbook_title, s.heading)
    };
    let label = Mrkdwn::untrusted(&heading);
    match s.url {
        Some(u) => Mrkdwn::link(u, &label),
        None => crate::mrkdwn!(
            "{} ({})",
            Mrkdwn::bold(&label),
            Mrkdwn::code(&format!("{}#{}", s.runbook_path, s.anchor))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slack::blocks::{context, section};

    fn sref(url: Option<&str>) -> SectionRef<'_> {
        SectionRef {
            runbook_title: "Crash loop",
            heading: "Crash loop > Mitigation",
            runbook_path: "k8s/crash.md",
            anchor: "mitigation",
            url,
        }
    }

    #[test]
    fn a_section_is_linked_one_way() {
        assert_eq!(
            section_link(&sref(Some("https://rb.example/k8s/crash.md#mitigation"))).as_str(),
            "<https://rb.example/k8s/crash.md#mitigation|Crash loop &gt; Mitigation (rb.example)>"
        );
        assert_eq!(
            section_link(&sref(None)).as_str(),
            "*Crash loop &gt; Mitigation* (`k8s/crash.md#mitigation`)"
        );
        let mut other = sref(None);
        other.heading = "Mitigation";
        assert!(section_link(&other)
            .as_str()
            .starts_with("*Crash loop › Mitigation*"));
    }

    #[test]
    fn section_urls_join_base_path_and_anchor() {
        assert_eq!(
            section_url(Some("https://git/x/"), "a/b.md", "c").as_deref(),
            Some("https://git/x/a/b.md#c")
        );
        assert_eq!(section_url(Some(" "), "a.md", "c"), None);
        assert_eq!(section_url(None, "a.md", "c"), None);
    }

    #[test]
    fn messages_are_capped_and_read_back() {
        let blocks = (0..60)
            .map(|i| section(&crate::mrkdwn!("s{}", i)))
            .collect();
        let mut m = Message::new(&Mrkdwn::own("hi"), blocks);
        assert_eq!(m.blocks().len(), 50);
        m.push(context(&[Mrkdwn::own("x")]));
        assert_eq!(m.blocks().len(), 50);
        assert!(m.visible_text().starts_with("hi\ns0\n"));
        assert_eq!(Message::text_only(&Mrkdwn::own("t")).api_blocks(), None);
    }

    #[test]
    fn redacted_scrubs_configured_label_values_everywhere() {
        let mut r = Redactor::new(["customer"]);
        r.learn(&[("customer".to_string(), "acme-corp".to_string())].into());
        let m = Message::new(
            &Mrkdwn::untrusted("for acme-corp"),
            vec![section(&Mrkdwn::untrusted("acme-corp is down"))],
        )
        .redacted(&r);
        assert!(!m.visible_text().contains("acme-corp"));
    }
}

//! Inbound Slack payloads turned into Sentinel's own types, without I/O.
//!
//! Input is the JSON `payload` of a Socket Mode envelope (what an HTTP request URL would
//! receive). Anything unexpected becomes `Inbound::Ignored` with a reason; nothing panics.

use serde_json::Value;

/// One thing Slack told the bot, reduced to what the handlers use.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Mention(MessageEvent),
    Message(MessageEvent),
    Command(SlashCommand),
    BlockAction(BlockAction),
    ViewSubmission(ViewSubmission),
    /// Parsed but not for us (unknown type, missing fields, a subtype we skip).
    Ignored {
        reason: String,
    },
}

/// An `app_mention` or `message` event.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageEvent {
    pub event_id: String,
    pub channel: String,
    pub user: Option<String>,
    pub bot_id: Option<String>,
    pub subtype: Option<String>,
    pub text: String,
    pub ts: String,
    /// The thread the event is in, if any (a reply goes there).
    pub thread_ts: Option<String>,
    /// The whole event JSON, for handlers that need attachments (alert posts).
    pub raw: Value,
}

impl MessageEvent {
    /// Where a reply belongs: the existing thread, or a new thread under this message.
    pub fn reply_thread(&self) -> &str {
        self.thread_ts.as_deref().unwrap_or(&self.ts)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SlashCommand {
    pub command: String,
    pub text: String,
    pub user_id: String,
    pub channel_id: String,
    pub response_url: String,
    pub trigger_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BlockAction {
    pub user_id: String,
    pub action_id: String,
    pub block_id: Option<String>,
    pub value: Option<String>,
    pub action_ts: Option<String>,
    pub trigger_id: String,
    pub channel_id: Option<String>,
    /// The message holding the button (`container.message_ts`).
    pub message_ts: Option<String>,
    pub thread_ts: Option<String>,
    pub response_url: Option<String>,
    /// The button was on an ephemeral message: its `ts` is no thread anyone can post in.
    pub is_ephemeral: bool,
}

impl BlockAction {
    /// Where a reply to this click goes: the thread the button's message is in, else that
    /// message's own thread; `None` (the channel) for a top-level ephemeral message.
    pub fn reply_thread(&self) -> Option<&str> {
        self.thread_ts.as_deref().or(if self.is_ephemeral {
            None
        } else {
            self.message_ts.as_deref()
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ViewSubmission {
    pub user_id: String,
    pub view_id: String,
    pub callback_id: String,
    pub private_metadata: String,
    pub trigger_id: Option<String>,
    pub hash: Option<String>,
    /// `view.state.values`: block_id -> action_id -> `{type, value, ...}`.
    pub values: Value,
}

impl ViewSubmission {
    /// The text value of a plain-text input.
    pub fn text_value(&self, block_id: &str, action_id: &str) -> Option<String> {
        self.values[block_id][action_id]["value"]
            .as_str()
            .map(str::to_string)
    }
}

impl Inbound {
    /// The idempotency key of this delivery's *effect*: the same key on a redelivery, on
    /// another connection or another replica. `None` for ignored payloads.
    pub fn dedupe_key(&self) -> Option<String> {
        match self {
            Inbound::Mention(m) | Inbound::Message(m) => Some(format!("event:{}", m.event_id)),
            Inbound::Command(c) => Some(format!("command:{}", c.trigger_id)),
            Inbound::BlockAction(a) => Some(match &a.action_ts {
                Some(ts) => format!("action:{}:{}:{}", a.user_id, a.action_id, ts),
                None => format!("action:{}:{}", a.trigger_id, a.action_id),
            }),
            Inbound::ViewSubmission(v) => Some(format!(
                "view:{}:{}",
                v.view_id,
                v.trigger_id.as_deref().or(v.hash.as_deref()).unwrap_or("")
            )),
            Inbound::Ignored { .. } => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Inbound::Mention(_) => "app_mention",
            Inbound::Message(_) => "message",
            Inbound::Command(_) => "slash_command",
            Inbound::BlockAction(_) => "block_actions",
            Inbound::ViewSubmission(_) => "view_submission",
            Inbound::Ignored { .. } => "ignored",
        }
    }
}

fn ignored(reason: impl Into<String>) -> Inbound {
    Inbound::Ignored {
        reason: reason.into(),
    }
}

fn s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// Parses an envelope by its `type` (`events_api`, `slash_commands`, `interactive`).
pub fn parse_envelope_payload(envelope_type: &str, payload: &Value) -> Inbound {
    match envelope_type {
        "events_api" => parse_events_api(payload),
        "slash_commands" => parse_slash_command(payload),
        "interactive" => parse_interactive(payload),
        other => ignored(format!("envelope type `{other}`")),
    }
}

/// An `event_callback` payload: `{event_id, event: {type, ...}}`.
pub fn parse_events_api(p: &Value) -> Inbound {
    let Some(event_id) = s(&p["event_id"]) else {
        return ignored("event without event_id");
    };
    let e = &p["event"];
    let kind = e["type"].as_str().unwrap_or_default();
    if kind != "app_mention" && kind != "message" {
        return ignored(format!("event type `{kind}`"));
    }
    let Some(channel) = s(&e["channel"]) else {
        return ignored(format!("{kind} without channel"));
    };
    let Some(ts) = s(&e["ts"]) else {
        return ignored(format!("{kind} without ts"));
    };
    let subtype = s(&e["subtype"]);
    // Edits, deletions and joins are not new messages; bot posts (alerts) are.
    if let Some(st) = subtype.as_deref() {
        if st != "bot_message" && st != "thread_broadcast" {
            return ignored(format!("message subtype `{st}`"));
        }
    }
    let m = MessageEvent {
        event_id,
        channel,
        user: s(&e["user"]),
        bot_id: s(&e["bot_id"]),
        subtype,
        text: e["text"].as_str().unwrap_or_default().to_string(),
        ts,
        thread_ts: s(&e["thread_ts"]),
        raw: e.clone(),
    };
    if kind == "app_mention" {
        Inbound::Mention(m)
    } else {
        Inbound::Message(m)
    }
}

pub fn parse_slash_command(p: &Value) -> Inbound {
    let field = |k: &str| s(&p[k]);
    match (
        field("command"),
        field("user_id"),
        field("channel_id"),
        field("response_url"),
        field("trigger_id"),
    ) {
        (Some(command), Some(user_id), Some(channel_id), Some(response_url), Some(trigger_id)) => {
            Inbound::Command(SlashCommand {
                command,
                text: field("text").unwrap_or_default(),
                user_id,
                channel_id,
                response_url,
                trigger_id,
            })
        }
        _ => ignored(
            "slash command missing command, user_id, channel_id, response_url or trigger_id",
        ),
    }
}

pub fn parse_interactive(p: &Value) -> Inbound {
    match p["type"].as_str().unwrap_or_default() {
        "block_actions" => {
            let a = &p["actions"][0];
            let (Some(user_id), Some(action_id), Some(trigger_id)) =
                (s(&p["user"]["id"]), s(&a["action_id"]), s(&p["trigger_id"]))
            else {
                return ignored("block_actions missing user, action or trigger_id");
            };
            Inbound::BlockAction(BlockAction {
                user_id,
                action_id,
                block_id: s(&a["block_id"]),
                value: s(&a["value"]),
                action_ts: s(&a["action_ts"]),
                trigger_id,
                channel_id: s(&p["channel"]["id"]).or_else(|| s(&p["container"]["channel_id"])),
                message_ts: s(&p["container"]["message_ts"]).or_else(|| s(&p["message"]["ts"])),
                // An ephemeral message comes without `message`: its container says where.
                thread_ts: s(&p["message"]["thread_ts"])
                    .or_else(|| s(&p["container"]["thread_ts"])),
                is_ephemeral: p["container"]["is_ephemeral"] == true,
                response_url: s(&p["response_url"]),
            })
        }
        "view_submission" => {
            let v = &p["view"];
            let (Some(user_id), Some(view_id)) = (s(&p["user"]["id"]), s(&v["id"])) else {
                return ignored("view_submission missing user or view id");
            };
            Inbound::ViewSubmission(ViewSubmission {
                user_id,
                view_id,
                callback_id: s(&v["callback_id"]).unwrap_or_default(),
                private_metadata: s(&v["private_metadata"]).unwrap_or_default(),
                trigger_id: s(&p["trigger_id"]),
                hash: s(&v["hash"]),
                values: v["state"]["values"].clone(),
            })
        }
        other => ignored(format!("interaction type `{other}`")),
    }
}

#[cfg(test)]
mod tests;

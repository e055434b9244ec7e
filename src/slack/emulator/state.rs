//! The emulator's workspace and its records: channels, users, messages, edits, reactions,
//! ephemerals, modals, responses, acks.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub const TEAM_ID: &str = "T0SENTINEL";
pub const APP_ID: &str = "A0SENTINEL";
pub const BOT_USER_ID: &str = "U0SENTINEL";
pub const BOT_ID: &str = "B0SENTINEL";

#[derive(Debug, Clone)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub bot_is_member: bool,
    pub archived: bool,
    pub created: i64,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    pub real_name: String,
    pub is_bot: bool,
}

/// A message in a channel, as the emulator stores it.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub user: Option<String>,
    pub bot_id: Option<String>,
    pub text: String,
    pub blocks: Option<Value>,
    /// How many times chat.update changed it.
    pub edits: u32,
    /// Message metadata (`{event_type, event_payload}`), as `chat.postMessage` set it.
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Edit {
    pub channel: String,
    pub ts: String,
    pub text: String,
    pub blocks: Option<Value>,
    /// What the message showed before this edit.
    pub before_text: String,
    pub before_blocks: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reaction {
    pub channel: String,
    pub ts: String,
    pub name: String,
    pub user: String,
}

/// Seen by one user only: chat.postEphemeral, a command ack payload, an ephemeral response.
#[derive(Debug, Clone, Serialize)]
pub struct Ephemeral {
    pub channel: String,
    pub user: String,
    /// Where it sits in the channel (`chat.postEphemeral` answers it as `message_ts`).
    pub ts: String,
    /// Shown in this thread (`chat.postEphemeral`'s `thread_ts`, or the thread of the
    /// message whose button's `response_url` answered).
    pub thread_ts: Option<String>,
    pub text: String,
    pub blocks: Option<Value>,
    /// `chat.postEphemeral`, `command_ack` or `response_url`.
    pub via: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub id: String,
    pub hash: String,
    pub user: String,
    pub view: Value,
    /// Set by views.update.
    pub updates: u32,
    /// Submitted (and not kept open by `response_action`) or cancelled.
    pub closed: bool,
    /// The `response_action: "errors"` of the last submission: block_id -> message.
    pub errors: Option<Value>,
    /// Goes up on every change (update, submission's answer, close): watchers compare it.
    pub revision: u32,
}

impl View {
    /// Shows `view` instead (`views.update`, or `response_action: update`): a new hash.
    pub fn set_view(&mut self, view: Value) {
        self.view = view;
        self.updates += 1;
        self.hash = format!("{}.u{}", self.hash, self.updates);
        self.errors = None;
        self.revision += 1;
    }
}

/// A `trigger_id` handed to the app: who acted, and when (it lives about 3 s).
#[derive(Debug, Clone)]
pub struct Trigger {
    pub at: Instant,
    pub user: String,
}

/// One acknowledgement received over Socket Mode.
#[derive(Debug, Clone, Serialize)]
pub struct Ack {
    pub envelope_id: String,
    pub envelope_type: String,
    /// Which delivery this ack answered (0 = first).
    pub retry_attempt: u32,
    pub latency: Duration,
    pub payload: Option<Value>,
}

/// Where a `response_url` posts.
#[derive(Debug, Clone)]
pub struct ResponseTarget {
    pub channel: String,
    pub user: String,
    /// The message a button was on (for `replace_original`).
    pub message_ts: Option<String>,
}

/// An envelope not yet acked.
#[derive(Debug, Clone)]
pub struct Pending {
    pub envelope_id: String,
    pub envelope_type: String,
    pub payload: Value,
    pub accepts_response_payload: bool,
    /// Deliveries made so far (0 = never delivered: no connection was up).
    pub deliveries: u32,
    pub last_sent: Option<Instant>,
    /// Slack context for command ack payloads: (channel, user).
    pub reply_to: Option<(String, String)>,
}

/// A live Socket Mode connection: frames to send go through `tx`.
pub struct Connection {
    pub id: u64,
    pub tx: mpsc::UnboundedSender<Outgoing>,
}

pub enum Outgoing {
    Text(String),
    Close,
}

/// Faults the tests switch on.
#[derive(Debug, Default)]
pub struct Faults {
    /// method -> (remaining count, HTTP status) answered instead of working.
    pub http_errors: HashMap<String, (u32, u16)>,
    /// method -> (remaining count, Retry-After seconds): forced 429s.
    pub rate_limits: HashMap<String, (u32, u64)>,
    /// When false, connections are closed and apps.connections.open fails.
    pub offline: bool,
    /// Posts stored at once but answered late: a crash window (`Emulator::hold_posts`).
    pub held_posts: Option<HeldPosts>,
}

/// The next `remaining` `chat.postMessage` calls in `channel` store their message, then
/// wait `delay` before answering. Slack never does this on purpose; it reproduces the
/// moment a caller dies after Slack accepted a post but before it read the `ts`.
#[derive(Debug, Clone)]
pub struct HeldPosts {
    pub channel: String,
    pub remaining: u32,
    pub delay: Duration,
}

#[derive(Default)]
pub struct State {
    pub channels: HashMap<String, Channel>,
    pub users: HashMap<String, User>,
    /// User groups by id: their members.
    pub usergroups: HashMap<String, Vec<String>>,
    /// User groups by id: their handles (`oncall` for `@oncall`).
    pub usergroup_handles: HashMap<String, String>,
    pub messages: Vec<Message>,
    pub edits: Vec<Edit>,
    pub reactions: Vec<Reaction>,
    pub ephemerals: Vec<Ephemeral>,
    pub views: Vec<View>,
    pub acks: Vec<Ack>,
    /// Raw frames the clients sent that were not acks of a pending envelope.
    pub stray_frames: Vec<String>,
    /// Envelopes dropped after Slack's retries ran out.
    pub expired: Vec<String>,
    pub pending: HashMap<String, Pending>,
    /// Every envelope ever queued, for `Emulator::resend`.
    pub sent: HashMap<String, Pending>,
    /// Envelopes waiting for a connection, in order.
    pub undelivered: VecDeque<String>,
    pub connections: Vec<Connection>,
    pub connections_opened: u64,
    pub tickets: HashMap<String, Instant>,
    pub triggers: HashMap<String, Trigger>,
    pub responses: HashMap<String, ResponseTarget>,
    /// Per channel: theoretical arrival time of the next allowed post (GCRA).
    pub post_tat: HashMap<String, Instant>,
    pub faults: Faults,
    pub web_calls: Vec<String>,
    /// The `ts` of each post whose answer `Faults::held_posts` held back, in order.
    pub held: Vec<String>,
    seq: u64,
    ts_clock: i64,
    round_robin: usize,
}

impl State {
    /// A fresh id. Like Slack's, ids are unique across runs too (the sequence starts at a
    /// random point), so a database that outlives one emulator never sees an id twice.
    pub fn next_id(&mut self, prefix: &str) -> String {
        if self.seq == 0 {
            self.seq = rand::random::<u32>() as u64 * 1_000;
        }
        self.seq += 1;
        format!("{prefix}{:013}", self.seq)
    }

    /// An app's answer to an interaction (a command's ack payload, a `response_url` post):
    /// a message everyone sees with `response_type: in_channel`, else an ephemeral for the
    /// person, in the thread of the message they clicked on.
    pub fn answer(&mut self, to: &ResponseTarget, reply: &Value, via: &str) {
        let text = reply["text"].as_str().unwrap_or_default().to_string();
        let blocks = reply.get("blocks").cloned().filter(|b| !b.is_null());
        let ts = self.next_ts();
        if reply["response_type"] == "in_channel" {
            self.messages.push(Message {
                channel: to.channel.clone(),
                ts,
                thread_ts: None,
                user: Some(BOT_USER_ID.into()),
                bot_id: Some(BOT_ID.into()),
                text,
                blocks,
                edits: 0,
                metadata: None,
            });
        } else {
            let thread_ts = to
                .message_ts
                .as_deref()
                .and_then(|t| self.thread_of(&to.channel, t));
            self.ephemerals.push(Ephemeral {
                channel: to.channel.clone(),
                user: to.user.clone(),
                ts,
                thread_ts,
                text,
                blocks,
                via: via.into(),
            });
        }
    }

    /// A fresh `trigger_id` for an interaction of `user` (it lives about 3 s).
    pub fn new_trigger(&mut self, user: &str) -> String {
        let id = format!("{}.{}.emulator", self.next_id(""), self.next_id(""));
        let at = Instant::now();
        let user = user.to_string();
        self.triggers.insert(id.clone(), Trigger { at, user });
        id
    }

    /// A fresh, increasing message ts like `1700000000.000100`.
    pub fn next_ts(&mut self) -> String {
        if self.ts_clock == 0 {
            // Wall-clock based like Slack's, so runs never reuse a ts.
            self.ts_clock = chrono::Utc::now().timestamp_micros();
        }
        self.ts_clock += 100;
        format!(
            "{}.{:06}",
            self.ts_clock / 1_000_000,
            self.ts_clock % 1_000_000
        )
    }

    /// The next connection to deliver to (round robin), if any.
    pub fn pick_connection(&mut self) -> Option<&Connection> {
        if self.connections.is_empty() {
            return None;
        }
        self.round_robin = (self.round_robin + 1) % self.connections.len();
        self.connections.get(self.round_robin)
    }

    pub fn message_mut(&mut self, channel: &str, ts: &str) -> Option<&mut Message> {
        self.messages
            .iter_mut()
            .find(|m| m.channel == channel && m.ts == ts)
    }

    /// The thread a message or ephemeral sits in (`None` at the channel's top level; a
    /// thread's root counts as top level).
    pub fn thread_of(&self, channel: &str, ts: &str) -> Option<String> {
        let in_thread = |t: &Option<String>| t.clone().filter(|t| t != ts);
        self.messages
            .iter()
            .find(|m| m.channel == channel && m.ts == ts)
            .map(|m| in_thread(&m.thread_ts))
            .or_else(|| {
                self.ephemerals
                    .iter()
                    .find(|e| e.channel == channel && e.ts == ts)
                    .map(|e| e.thread_ts.clone())
            })
            .flatten()
    }

    pub fn seed() -> Self {
        let mut s = State::default();
        for (id, name, member) in [
            ("C0GENERAL", "general", true),
            ("C0ALERTS", "alerts", true),
            ("C0OPS", "ops", true),
            ("C0RANDOM", "random", false),
        ] {
            s.channels.insert(
                id.into(),
                Channel {
                    id: id.into(),
                    name: name.into(),
                    bot_is_member: member,
                    archived: false,
                    created: 1_600_000_000,
                },
            );
        }
        for (id, name, real, bot) in [
            ("U0ALICE", "alice", "Alice Oncall", false),
            ("U0BOB", "bob", "Bob Builder", false),
            ("U0CAROL", "carol", "Carol Lead", false),
            ("U0MALLORY", "mallory", "Mallory Intern", false),
            (BOT_USER_ID, "sentinel", "Sentinel", true),
        ] {
            s.users.insert(
                id.into(),
                User {
                    id: id.into(),
                    name: name.into(),
                    real_name: real.into(),
                    is_bot: bot,
                },
            );
        }
        s.usergroups
            .insert("S0ONCALL".into(), vec!["U0ALICE".into(), "U0BOB".into()]);
        s.usergroup_handles
            .insert("S0ONCALL".into(), "oncall".into());
        s
    }
}

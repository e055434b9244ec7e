//! The Slack emulator's side of the tests: starting it, the bot's Slack settings against
//! it, and waiting for what Slack would show.

use std::time::Duration;

use secrecy::SecretString;
use sentinel::config::SlackConfig;
use sentinel::slack::emulator::{Emulator, EmulatorConfig, Ephemeral, Message, BOT_USER_ID};
use sentinel::slack::socket::ListenerOptions;
use serde_json::Value;

/// How long any test waits for Slack to show something.
pub const WAIT: Duration = Duration::from_secs(20);

/// Where the bot's answers link runbooks to.
pub const RUNBOOKS_URL: &str = "https://runbooks.example.com";

pub async fn emulator() -> Emulator {
    sentinel::net::install_crypto();
    Emulator::start(EmulatorConfig::default()).await.unwrap()
}

/// An emulator whose channels take any burst of posts (Slack paces 1 per second per
/// channel): for tests of many threads at once, where Slack's pace would only add minutes.
pub async fn unpaced_emulator() -> Emulator {
    sentinel::net::install_crypto();
    Emulator::start(EmulatorConfig {
        post_burst: 100_000,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

/// The bot's Slack settings against `emu`: one Socket Mode connection, watching `watch`.
pub fn slack_config(emu: &Emulator, watch: &[&str]) -> SlackConfig {
    SlackConfig {
        app_token: SecretString::from(emu.shared.cfg.app_token.clone()),
        bot_token: SecretString::from(emu.shared.cfg.bot_token.clone()),
        api_url: emu.api_url(),
        connections: 1,
        watch_channels: watch.iter().map(|s| s.to_string()).collect(),
        handler_concurrency: 64,
        timeout_secs: 5,
        runbook_base_url: Some(RUNBOOKS_URL.into()),
    }
}

/// One connection that reconnects fast and starts at once.
pub fn test_listener() -> ListenerOptions {
    ListenerOptions {
        connections: 1,
        reconnect_secs: 1,
        ping_secs: 5,
        stagger_secs: 0,
        concurrency: 64,
        ..ListenerOptions::default()
    }
}

/// `text` addressed to the bot.
pub fn mention(text: &str) -> String {
    format!("<@{BOT_USER_ID}> {text}")
}

/// What a person reads: the blocks' text when there are blocks, else the text.
pub trait Shown {
    fn shown(&self) -> String;
}

fn shown(text: &str, blocks: Option<&Value>) -> String {
    match blocks.and_then(Value::as_array) {
        Some(b) if !b.is_empty() => sentinel::slack::blocks::plain_text(b),
        _ => text.to_string(),
    }
}

impl Shown for Message {
    fn shown(&self) -> String {
        shown(&self.text, self.blocks.as_ref())
    }
}

impl Shown for Ephemeral {
    fn shown(&self) -> String {
        shown(&self.text, self.blocks.as_ref())
    }
}

/// The messages in thread `ts` of `channel` (anyone's) once there are at least `n`, or
/// what there is after `WAIT`.
pub async fn wait_replies(emu: &Emulator, channel: &str, ts: &str, n: usize) -> Vec<Message> {
    emu.wait_for(WAIT, |s| {
        let r: Vec<_> = s
            .messages
            .iter()
            .filter(|m| m.channel == channel && m.thread_ts.as_deref() == Some(ts))
            .cloned()
            .collect();
        (r.len() >= n).then_some(r)
    })
    .await
    .unwrap_or_else(|| emu.thread(channel, ts))
}

/// Waits until the bot acked envelope `id`.
pub async fn acked(emu: &Emulator, id: &str) {
    emu.wait_for(WAIT, |s| {
        s.acks.iter().any(|a| a.envelope_id == id).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("envelope {id} was not acked"));
}

/// Runs `/sentinel TEXT` as `user` in `channel` and returns the first private answer
/// shown with `needle` in it. Only answers that arrive after the command count: an
/// earlier answer may contain the needle too (a thread link's timestamp can hold "999").
pub async fn slash_answer(
    emu: &Emulator,
    channel: &str,
    user: &str,
    text: &str,
    needle: &str,
) -> Ephemeral {
    let before = emu.state().ephemerals.len();
    emu.slash_command(channel, user, "/sentinel", text);
    emu.wait_for(WAIT, |st| {
        st.ephemerals
            .iter()
            .skip(before)
            .find(|e| e.shown().contains(needle))
            .cloned()
    })
    .await
    .unwrap_or_else(|| panic!("`/sentinel {text}` was not answered with {needle:?}"))
}

/// `slash_answer` for the commands answered after their ack: the answer must come through
/// response_url, in blocks. Returns it as shown.
pub async fn slash_response(
    emu: &Emulator,
    channel: &str,
    user: &str,
    text: &str,
    needle: &str,
) -> String {
    let answer = slash_answer(emu, channel, user, text, needle).await;
    assert_eq!(
        answer.via, "response_url",
        "`/sentinel {text}` answered through response_url after its ack"
    );
    assert!(answer.blocks.is_some(), "{answer:?}");
    answer.shown()
}

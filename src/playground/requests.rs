//! What the playground page may ask, checked without I/O: who speaks where, which command,
//! which button.

use serde::Deserialize;

use crate::slack::emulator::BOT_USER_ID;

/// A message longer than this is refused (Slack cuts messages at 40,000 characters).
const MAX_TEXT: usize = 40_000;

/// The people and channels of the emulated workspace, as the checks need them.
pub struct Workspace {
    /// Human users by id and handle (`U0ALICE`, `alice`).
    pub users: Vec<(String, String)>,
    pub channels: Vec<String>,
}

impl Workspace {
    fn user(&self, id: &str) -> Result<(), String> {
        if self.users.iter().any(|(u, _)| u == id) {
            Ok(())
        } else {
            Err(format!("`{id}` is not a person in this workspace"))
        }
    }

    fn channel(&self, id: &str) -> Result<(), String> {
        if self.channels.iter().any(|c| c == id) {
            Ok(())
        } else {
            Err(format!("there is no channel `{id}`"))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Say {
    pub user: String,
    pub channel: String,
    pub text: String,
    /// Reply in this thread.
    pub thread_ts: Option<String>,
}

impl Say {
    /// Checks the request; returns the text as Slack would carry it: `@sentinel` and
    /// `@handle` become mentions (`<@U0SENTINEL>`), and `& < >` are escaped as Slack does.
    pub fn check(&self, ws: &Workspace) -> Result<String, String> {
        ws.user(&self.user)?;
        ws.channel(&self.channel)?;
        if let Some(t) = &self.thread_ts {
            check_ts(t)?;
        }
        let text = self.text.trim();
        if text.is_empty() {
            return Err("say something first".into());
        }
        if text.chars().count() > MAX_TEXT {
            return Err(format!("messages are limited to {MAX_TEXT} characters"));
        }
        Ok(mentions(&slack_escape(text), ws))
    }
}

/// Slack's own escaping of message text: `&`, `<` and `>` never reach an app raw.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `@sentinel` and `@handle` (a known person) as Slack mentions.
fn mentions(text: &str, ws: &Workspace) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let word_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .unwrap_or(after.len());
        let word = after[..word_len].trim_end_matches('.');
        let id = if word.eq_ignore_ascii_case("sentinel") {
            Some(BOT_USER_ID.to_string())
        } else {
            ws.users
                .iter()
                .find(|(_, handle)| handle.eq_ignore_ascii_case(word))
                .map(|(id, _)| id.clone())
        };
        match id {
            Some(id) if !word.is_empty() => {
                out.push_str(&format!("<@{id}>"));
                rest = &after[word.len()..];
            }
            _ => {
                out.push('@');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn check_ts(ts: &str) -> Result<(), String> {
    let ok = ts.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && (a.to_owned() + b).bytes().all(|c| c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!("`{ts}` is not a message timestamp"))
    }
}

#[derive(Debug, Deserialize)]
pub struct Command {
    pub user: String,
    pub channel: String,
    /// `/sentinel incidents`, or just `incidents`.
    pub text: String,
}

impl Command {
    /// Checks the request; returns the command's text after `/sentinel`.
    pub fn check(&self, ws: &Workspace) -> Result<String, String> {
        ws.user(&self.user)?;
        ws.channel(&self.channel)?;
        command_text(&self.text)
    }
}

/// `"/sentinel help"` or `"help"` to `"help"`; other slash commands are refused.
pub fn command_text(input: &str) -> Result<String, String> {
    let t = input.trim();
    let rest = match t.strip_prefix('/') {
        None => t,
        Some(cmd) => {
            let (name, rest) = cmd.split_once(char::is_whitespace).unwrap_or((cmd, ""));
            if name != "sentinel" {
                return Err(format!(
                    "only /sentinel is installed in this workspace, not /{name}"
                ));
            }
            rest
        }
    };
    if rest.chars().count() > MAX_TEXT {
        return Err(format!("commands are limited to {MAX_TEXT} characters"));
    }
    Ok(rest.trim().to_string())
}

#[derive(Debug, Deserialize)]
pub struct Click {
    pub user: String,
    pub channel: String,
    /// The message the button is on.
    pub ts: String,
    pub action_id: String,
}

impl Click {
    pub fn check(&self, ws: &Workspace) -> Result<(), String> {
        ws.user(&self.user)?;
        ws.channel(&self.channel)?;
        check_ts(&self.ts)?;
        if self.action_id.is_empty() || self.action_id.len() > 255 {
            return Err("a button's action_id is 1 to 255 characters".into());
        }
        Ok(())
    }
}

/// A plain-text input holds at most this (Slack's `max_length` ceiling).
const MAX_INPUT: usize = 3_000;

/// Submitting or cancelling a modal.
#[derive(Debug, Deserialize)]
pub struct ViewAction {
    pub user: String,
    pub view_id: String,
    /// For a submission: what was typed, as `{block_id: {action_id: text}}`.
    #[serde(default)]
    pub values: serde_json::Map<String, serde_json::Value>,
}

impl ViewAction {
    /// Checks the request; returns the values as the emulator submits them.
    pub fn check(&self, ws: &Workspace) -> Result<serde_json::Value, String> {
        ws.user(&self.user)?;
        let id_ok = !self.view_id.is_empty()
            && self.view_id.len() <= 255
            && self.view_id.bytes().all(|c| c.is_ascii_alphanumeric());
        if !id_ok {
            return Err(format!(
                "`{}` is not a modal's id",
                crate::text::truncate_chars(&self.view_id, 40)
            ));
        }
        for (block, actions) in &self.values {
            let Some(actions) = actions.as_object() else {
                return Err(format!("the values of block `{block}` are not an object"));
            };
            for (action, text) in actions {
                let Some(text) = text.as_str() else {
                    return Err(format!("the value of `{block}.{action}` is not text"));
                };
                if text.chars().count() > MAX_INPUT {
                    return Err(format!("inputs are limited to {MAX_INPUT} characters"));
                }
            }
        }
        Ok(serde_json::Value::Object(self.values.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> Workspace {
        Workspace {
            users: vec![
                ("U0ALICE".into(), "alice".into()),
                ("U0MALLORY".into(), "mallory".into()),
            ],
            channels: vec!["C0ALERTS".into()],
        }
    }

    fn say(user: &str, channel: &str, text: &str, thread: Option<&str>) -> Say {
        Say {
            user: user.into(),
            channel: channel.into(),
            text: text.into(),
            thread_ts: thread.map(str::to_string),
        }
    }

    #[test]
    fn a_message_becomes_slack_text_with_mentions_and_escapes() {
        let t = say(
            "U0ALICE",
            "C0ALERTS",
            "@Sentinel is <b>web</b> & @mallory ok? mail@x",
            None,
        )
        .check(&ws())
        .unwrap();
        assert_eq!(
            t,
            "<@U0SENTINEL> is &lt;b&gt;web&lt;/b&gt; &amp; <@U0MALLORY> ok? mail@x"
        );
        let t = say("U0ALICE", "C0ALERTS", "ask @sentinel.", None)
            .check(&ws())
            .unwrap();
        assert_eq!(t, "ask <@U0SENTINEL>.");
    }

    #[test]
    fn a_message_from_a_stranger_elsewhere_or_empty_is_refused() {
        assert!(say("U0EVE", "C0ALERTS", "hi", None)
            .check(&ws())
            .unwrap_err()
            .contains("U0EVE"));
        assert!(say("U0ALICE", "C0NOPE", "hi", None)
            .check(&ws())
            .unwrap_err()
            .contains("C0NOPE"));
        assert_eq!(
            say("U0ALICE", "C0ALERTS", "  ", None)
                .check(&ws())
                .unwrap_err(),
            "say something first"
        );
        assert!(say("U0ALICE", "C0ALERTS", "hi", Some("12; DROP"))
            .check(&ws())
            .unwrap_err()
            .contains("timestamp"));
        assert!(say("U0ALICE", "C0ALERTS", "hi", Some("1700000000.000100"))
            .check(&ws())
            .is_ok());
        let long = "x".repeat(MAX_TEXT + 1);
        assert!(say("U0ALICE", "C0ALERTS", &long, None)
            .check(&ws())
            .is_err());
    }

    #[test]
    fn commands_take_sentinel_only() {
        assert_eq!(command_text("/sentinel  help ").unwrap(), "help");
        assert_eq!(command_text("incidents").unwrap(), "incidents");
        assert_eq!(command_text("/sentinel").unwrap(), "");
        assert_eq!(
            command_text("/giphy cat").unwrap_err(),
            "only /sentinel is installed in this workspace, not /giphy"
        );
    }

    #[test]
    fn clicks_name_a_person_a_message_and_a_button() {
        let c = |ts: &str, a: &str| Click {
            user: "U0MALLORY".into(),
            channel: "C0ALERTS".into(),
            ts: ts.into(),
            action_id: a.into(),
        };
        assert!(c("1700000000.000100", "act_approve").check(&ws()).is_ok());
        assert!(c("nope", "act_approve").check(&ws()).is_err());
        assert!(c("1700000000.000100", "").check(&ws()).is_err());
    }

    #[test]
    fn a_modal_action_names_a_person_a_modal_and_text_values() {
        let v = |user: &str, id: &str, values: serde_json::Value| ViewAction {
            user: user.into(),
            view_id: id.into(),
            values: values.as_object().cloned().unwrap_or_default(),
        };
        let ok = v(
            "U0ALICE",
            "V0000000001",
            serde_json::json!({"query": {"query": "disk full"}}),
        );
        assert_eq!(
            ok.check(&ws()).unwrap(),
            serde_json::json!({"query": {"query": "disk full"}})
        );
        assert!(v("U0ALICE", "V0000000001", serde_json::json!({}))
            .check(&ws())
            .is_ok());
        assert!(v("U0EVE", "V0000000001", serde_json::json!({}))
            .check(&ws())
            .unwrap_err()
            .contains("U0EVE"));
        assert!(v("U0ALICE", "V0/../x", serde_json::json!({}))
            .check(&ws())
            .unwrap_err()
            .contains("not a modal"));
        assert!(v("U0ALICE", "V01", serde_json::json!({"query": "flat"}))
            .check(&ws())
            .unwrap_err()
            .contains("not an object"));
        assert!(
            v("U0ALICE", "V01", serde_json::json!({"query": {"query": 7}}))
                .check(&ws())
                .unwrap_err()
                .contains("not text")
        );
        let long = "x".repeat(MAX_INPUT + 1);
        assert!(v("U0ALICE", "V01", serde_json::json!({"q": {"q": long}}))
            .check(&ws())
            .unwrap_err()
            .contains("3000"));
    }
}

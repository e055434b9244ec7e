//! The Slack app manifest (`manifest.yaml`, compiled in): its typed, strict parse (unknown
//! keys rejected at every level, as Slack's schema does), its field rules, and the table of
//! which bot scope each Web API method and event needs (Slack's method and event docs).

use std::collections::BTreeSet;

use serde::Deserialize;

/// `manifest.yaml` as shipped with this binary.
pub const MANIFEST_YAML: &str = include_str!("../../manifest.yaml");

/// Sentinel works in public (`channels:*`) and private (`groups:*`) channels, never in DMs,
/// so a conversation method needs both kinds' scope.
const HISTORY: &[&str] = &["channels:history", "groups:history"];
const CONVERSATION_READ: &[&str] = &["channels:read", "groups:read"];

/// Every Web API method Sentinel calls with its bot token, and the bot scopes it needs
/// (empty: the method needs none). `apps.connections.open` uses the app-level token
/// (`connections:write`, set where that token is created), so it needs no bot scope.
pub const METHOD_SCOPES: &[(&str, &[&str])] = &[
    ("apps.connections.open", &[]),
    ("auth.test", &[]),
    ("chat.getPermalink", &[]),
    ("chat.postEphemeral", &["chat:write"]),
    ("chat.postMessage", &["chat:write"]),
    ("chat.update", &["chat:write"]),
    ("conversations.history", HISTORY),
    ("conversations.info", CONVERSATION_READ),
    ("conversations.replies", HISTORY),
    ("reactions.add", &["reactions:write"]),
    ("usergroups.list", &["usergroups:read"]),
    ("usergroups.users.list", &["usergroups:read"]),
    ("users.info", &["users:read"]),
    ("views.open", &[]),
];

/// The bot events Sentinel subscribes to and the scope each needs.
pub const EVENT_SCOPES: &[(&str, &str)] = &[
    ("app_mention", "app_mentions:read"),
    ("message.channels", "channels:history"),
    ("message.groups", "groups:history"),
];

/// The scope a slash command needs.
pub const COMMANDS_SCOPE: &str = "commands";

/// The scopes `method` needs, or `None` when the table does not know it.
pub fn method_scopes(method: &str) -> Option<&'static [&'static str]> {
    METHOD_SCOPES
        .iter()
        .find(|(m, _)| *m == method)
        .map(|(_, s)| *s)
}

/// The scope `event` needs, or `None` when the table does not know it.
pub fn event_scope(event: &str) -> Option<&'static str> {
    EVENT_SCOPES
        .iter()
        .find(|(e, _)| *e == event)
        .map(|(_, s)| *s)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(rename = "_metadata")]
    pub metadata: Option<Metadata>,
    pub display_information: DisplayInformation,
    pub features: Features,
    pub oauth_config: OauthConfig,
    pub settings: Settings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub major_version: Option<u32>,
    pub minor_version: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisplayInformation {
    pub name: String,
    pub description: Option<String>,
    pub long_description: Option<String>,
    pub background_color: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    pub bot_user: Option<BotUser>,
    #[serde(default)]
    pub slash_commands: Vec<SlashCommand>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotUser {
    pub display_name: String,
    pub always_online: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlashCommand {
    pub command: String,
    pub description: String,
    pub usage_hint: Option<String>,
    pub should_escape: Option<bool>,
    /// HTTP mode only; a Socket Mode app has none.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OauthConfig {
    pub scopes: Scopes,
    pub redirect_urls: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scopes {
    #[serde(default)]
    pub bot: Vec<String>,
    #[serde(default)]
    pub user: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub event_subscriptions: Option<EventSubscriptions>,
    pub interactivity: Option<Interactivity>,
    pub org_deploy_enabled: Option<bool>,
    pub socket_mode_enabled: Option<bool>,
    pub token_rotation_enabled: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSubscriptions {
    #[serde(default)]
    pub bot_events: Vec<String>,
    #[serde(default)]
    pub user_events: Vec<String>,
    pub request_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interactivity {
    pub is_enabled: bool,
    pub request_url: Option<String>,
    pub message_menu_options_url: Option<String>,
}

impl Manifest {
    /// Parses a manifest; unknown keys and missing required fields are errors.
    pub fn parse(yaml: &str) -> Result<Self, String> {
        serde_yaml::from_str(yaml).map_err(|e| format!("manifest.yaml: {e}"))
    }

    /// The manifest compiled into this binary.
    pub fn shipped() -> Result<Self, String> {
        Self::parse(MANIFEST_YAML)
    }

    /// The bot scopes it declares, sorted.
    pub fn bot_scopes(&self) -> BTreeSet<String> {
        self.oauth_config.scopes.bot.iter().cloned().collect()
    }

    /// The bot user's display name (`Sentinel`): what people type after `/invite @`.
    pub fn bot_name(&self) -> &str {
        self.features
            .bot_user
            .as_ref()
            .map_or(self.display_information.name.as_str(), |b| {
                b.display_name.as_str()
            })
    }

    /// The bot events it subscribes to.
    pub fn bot_events(&self) -> &[String] {
        self.settings
            .event_subscriptions
            .as_ref()
            .map_or(&[], |e| e.bot_events.as_slice())
    }

    /// Slack's field rules (community manifest schema) and a Socket Mode app's settings;
    /// one sentence per broken rule.
    pub fn rule_violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let d = &self.display_information;
        if d.name.trim().is_empty() {
            out.push("display_information.name is empty".into());
        }
        out.extend(too_long("display_information.name", &d.name, 35));
        out.extend(too_long(
            "display_information.description",
            d.description.as_deref().unwrap_or(""),
            140,
        ));
        out.extend(too_long(
            "display_information.long_description",
            d.long_description.as_deref().unwrap_or(""),
            4000,
        ));
        if let Some(c) = &d.background_color {
            let hex = c.strip_prefix('#').unwrap_or("");
            if !matches!(hex.len(), 3 | 6) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                out.push(format!(
                    "display_information.background_color `{c}` is not a #hex colour"
                ));
            }
        }
        match &self.features.bot_user {
            None => out.push("features.bot_user is missing (Sentinel is a bot)".into()),
            Some(b) => {
                out.extend(too_long(
                    "features.bot_user.display_name",
                    &b.display_name,
                    80,
                ));
                let ok = !b.display_name.is_empty()
                    && b.display_name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !ok {
                    out.push(format!(
                        "features.bot_user.display_name `{}` may hold only letters, digits, -, _ and .",
                        b.display_name
                    ));
                }
            }
        }
        for c in &self.features.slash_commands {
            if !c.command.starts_with('/') {
                out.push(format!("slash command `{}` must start with /", c.command));
            }
            out.extend(too_long("a slash command's command", &c.command, 32));
            if c.description.trim().is_empty() {
                out.push(format!("slash command `{}` needs a description", c.command));
            }
            out.extend(too_long(
                "a slash command's usage_hint",
                c.usage_hint.as_deref().unwrap_or(""),
                1000,
            ));
            if c.url.is_some() && self.settings.socket_mode_enabled == Some(true) {
                out.push(format!(
                    "slash command `{}` has a url, which Socket Mode does not use",
                    c.command
                ));
            }
        }
        if self.bot_events().len() > 100 {
            out.push(format!(
                "{} bot_events, at most 100",
                self.bot_events().len()
            ));
        }
        if self.settings.socket_mode_enabled != Some(true) {
            out.push("settings.socket_mode_enabled must be true".into());
        }
        if !self
            .settings
            .interactivity
            .as_ref()
            .is_some_and(|i| i.is_enabled)
        {
            out.push("settings.interactivity.is_enabled must be true (buttons, modals)".into());
        }
        out
    }

    /// The scopes its events and slash commands need (the methods' come from the code).
    pub fn scopes_for_events_and_commands(&self) -> Result<BTreeSet<String>, String> {
        let mut s = BTreeSet::new();
        for e in self.bot_events() {
            let scope = event_scope(e).ok_or_else(|| {
                format!("bot event `{e}` is not in EVENT_SCOPES (src/slack/manifest.rs)")
            })?;
            s.insert(scope.to_string());
        }
        if !self.features.slash_commands.is_empty() {
            s.insert(COMMANDS_SCOPE.to_string());
        }
        Ok(s)
    }
}

/// `what is N characters, at most LIMIT` when `value` is longer than `limit`.
fn too_long(what: &str, value: &str, limit: usize) -> Option<String> {
    let n = value.chars().count();
    (n > limit).then(|| format!("{what} is {n} characters, at most {limit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_manifest_parses_and_keeps_the_rules() {
        let m = Manifest::shipped().unwrap();
        assert_eq!(m.rule_violations(), Vec::<String>::new());
        assert_eq!(m.bot_name(), "Sentinel");
        assert_eq!(m.features.slash_commands[0].command, "/sentinel");
    }

    #[test]
    fn unknown_keys_are_rejected_at_every_level() {
        let good = MANIFEST_YAML;
        for (from, to) in [
            ("display_information:", "display_informations:"),
            ("  name: Sentinel", "  name: Sentinel\n  colour: red"),
            (
                "    always_online: true",
                "    always_online: true\n    avatar: x",
            ),
            ("  socket_mode_enabled: true", "  socket_mode: true"),
            (
                "    is_enabled: true",
                "    is_enabled: true\n    enabled: true",
            ),
        ] {
            assert!(good.contains(from), "{from}");
            let bad = good.replacen(from, to, 1);
            let e = Manifest::parse(&bad).unwrap_err();
            assert!(e.contains("unknown field"), "{from} -> {to}: {e}");
        }
    }

    #[test]
    fn field_rules_name_the_field() {
        let mut m = Manifest::shipped().unwrap();
        m.display_information.name = "S".repeat(36);
        m.display_information.background_color = Some("blue".into());
        m.features.bot_user.as_mut().unwrap().display_name = "Sentinel Bot".into();
        m.features.slash_commands[0].command = "sentinel".into();
        m.features.slash_commands[0].description = " ".into();
        m.features.slash_commands[0].usage_hint = Some("x".repeat(1001));
        m.settings.socket_mode_enabled = Some(false);
        m.settings.event_subscriptions.as_mut().unwrap().bot_events =
            vec!["app_mention".into(); 101];
        let v = m.rule_violations().join("\n");
        for want in [
            "display_information.name is 36 characters, at most 35",
            "background_color `blue`",
            "display_name `Sentinel Bot`",
            "`sentinel` must start with /",
            "needs a description",
            "usage_hint is 1001 characters, at most 1000",
            "101 bot_events",
            "socket_mode_enabled must be true",
        ] {
            assert!(v.contains(want), "{want} missing from:\n{v}");
        }
    }

    #[test]
    fn events_and_the_command_need_their_scopes() {
        let m = Manifest::shipped().unwrap();
        let s = m.scopes_for_events_and_commands().unwrap();
        let want = [
            "app_mentions:read",
            "channels:history",
            "commands",
            "groups:history",
        ];
        assert_eq!(s.iter().map(String::as_str).collect::<Vec<_>>(), want);
        let mut m = m;
        m.settings.event_subscriptions.as_mut().unwrap().bot_events = vec!["message.im".into()];
        assert!(m
            .scopes_for_events_and_commands()
            .unwrap_err()
            .contains("message.im"));
    }
}

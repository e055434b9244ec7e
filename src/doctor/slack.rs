//! The doctor's Slack checks: the bot token (`auth.test`), its granted scopes against
//! `manifest.yaml` (`x-oauth-scopes`), a Socket Mode connection up to Slack's `hello`, and
//! the bot's membership of every configured channel (`conversations.info`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use secrecy::SecretString;
use serde_json::{json, Value};

use super::Check;
use crate::config::{Config, SlackConfig};
use crate::slack::auth::explain;
use crate::slack::manifest::Manifest;
use crate::slack::{ClientOptions, SlackClient, SlackError};

/// Longest wait for Slack's `hello` on a new socket.
const HELLO_WITHIN: Duration = Duration::from_secs(10);

pub async fn checks(config: &Config) -> Vec<Check> {
    let Some(s) = &config.slack else {
        return vec![
            Check::fail(
                "slack_bot_token",
                "SLACK_BOT_TOKEN and SLACK_APP_TOKEN are not set",
                "Create the Slack app from manifest.yaml and install it (README, \"Install in Slack\"), then set SLACK_BOT_TOKEN (xoxb-...) and SLACK_APP_TOKEN (xapp-...).",
            ),
            Check::skip("slack_scopes", "needs the bot token"),
            Check::skip("slack_socket_mode", "needs the app-level token"),
            Check::skip("slack_channels", "needs the bot token"),
        ];
    };
    let manifest = match Manifest::shipped() {
        Ok(m) => m,
        Err(e) => {
            return vec![Check::fail(
                "slack_bot_token",
                e,
                "This build's manifest.yaml is broken: rebuild from a released version.",
            )]
        }
    };
    let opts = ClientOptions {
        timeout: Duration::from_secs(s.timeout_secs.min(10)),
        ..ClientOptions::default()
    };
    let client = match SlackClient::new(&s.api_url, s.bot_token.clone(), opts) {
        Ok(c) => c,
        Err(e) => {
            return vec![Check::fail(
                "slack_bot_token",
                format!("cannot build an HTTP client: {e}"),
                "Check SLACK_API_URL.",
            )]
        }
    };
    let no_args = json!({});
    let (auth, socket) = tokio::join!(
        client.call_once_scoped("auth.test", &s.bot_token, &no_args),
        socket_mode(&client, s),
    );
    let mut out = Vec::new();
    match auth {
        Ok((me, scopes)) => {
            let t = |k: &str| me[k].as_str().unwrap_or("?").to_string();
            out.push(Check::ok(
                "slack_bot_token",
                format!(
                    "bot @{} ({}) in workspace {} ({})",
                    t("user"),
                    t("user_id"),
                    t("team"),
                    t("team_id")
                ),
            ));
            out.push(scopes_check(&manifest, scopes.as_deref()));
            out.push(socket);
            out.push(channels(&client, config, s, manifest.bot_name()).await);
        }
        Err(e) => {
            out.push(Check::fail(
                "slack_bot_token",
                token_detail("SLACK_BOT_TOKEN", &s.bot_token, "xoxb-", &e),
                token_fix(&e, "the Bot User OAuth Token (xoxb-...) from OAuth & Permissions into SLACK_BOT_TOKEN", &s.api_url),
            ));
            out.push(Check::skip(
                "slack_scopes",
                "needs a valid bot token (slack_bot_token failed)",
            ));
            out.push(socket);
            out.push(Check::skip(
                "slack_channels",
                "needs a valid bot token (slack_bot_token failed)",
            ));
        }
    }
    out
}

/// Slack's verdict on a token, or why Slack could not be asked.
fn token_detail(var: &str, token: &SecretString, prefix: &str, e: &SlackError) -> String {
    match e {
        SlackError::Api { .. } => explain(var, token, prefix, e).0,
        other => format!("cannot reach Slack to check {var}: {other}"),
    }
}

fn token_fix(e: &SlackError, what: &str, api_url: &str) -> String {
    match e {
        SlackError::Transport { .. } | SlackError::Timeout { .. } | SlackError::Server { .. } => {
            format!("Slack could not be asked: check that this host reaches {api_url} over HTTPS (proxy, firewall, SLACK_API_URL).")
        }
        _ => format!("Copy {what}, and restart Sentinel."),
    }
}

/// Granted (`x-oauth-scopes`) against declared (manifest.yaml): missing fails, extra warns.
pub fn scopes_check(manifest: &Manifest, header: Option<&str>) -> Check {
    let declared = manifest.bot_scopes();
    let Some(header) = header else {
        return Check::warn(
            "slack_scopes",
            "Slack sent no x-oauth-scopes header, so the granted scopes are unknown",
            format!(
                "Compare OAuth & Permissions -> Bot Token Scopes with manifest.yaml by hand: {}.",
                join(&declared)
            ),
        );
    };
    let granted: BTreeSet<String> = header
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let missing: BTreeSet<_> = declared.difference(&granted).cloned().collect();
    let extra: BTreeSet<_> = granted.difference(&declared).cloned().collect();
    if !missing.is_empty() {
        return Check::fail(
            "slack_scopes",
            format!(
                "the installed app lacks {} of the {} bot scopes in manifest.yaml: {}",
                missing.len(),
                declared.len(),
                join(&missing)
            ),
            format!(
                "Add {} under OAuth & Permissions -> Bot Token Scopes (or update the app from manifest.yaml), then reinstall the app to the workspace.",
                join(&missing)
            ),
        );
    }
    if !extra.is_empty() {
        return Check::warn(
            "slack_scopes",
            format!(
                "all {} bot scopes granted, and {} more than Sentinel uses: {}",
                declared.len(),
                extra.len(),
                join(&extra)
            ),
            format!(
                "Remove {} from the app's Bot Token Scopes and reinstall (least privilege).",
                join(&extra)
            ),
        );
    }
    Check::ok(
        "slack_scopes",
        format!("all {} bot scopes of manifest.yaml granted", declared.len()),
    )
}

fn join(s: &BTreeSet<String>) -> String {
    s.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// `apps.connections.open` with the app-level token, then the socket up to `hello`; the
/// socket is closed without acking anything (Slack redelivers to the running bot).
async fn socket_mode(client: &SlackClient, s: &SlackConfig) -> Check {
    const NAME: &str = "slack_socket_mode";
    let started = Instant::now();
    let url = match client
        .call_once_with("apps.connections.open", &s.app_token, &json!({}))
        .await
    {
        Ok(v) => v["url"].as_str().unwrap_or_default().to_string(),
        Err(e) => {
            return Check::fail(
                NAME,
                token_detail("SLACK_APP_TOKEN", &s.app_token, "xapp-", &e),
                token_fix(
                    &e,
                    "an app-level token with connections:write (Basic Information -> App-Level Tokens) into SLACK_APP_TOKEN; Socket Mode must be on (manifest.yaml turns it on)",
                    &s.api_url,
                ),
            )
        }
    };
    let fix = "Allow outbound WebSocket connections (wss://, port 443) from this host to Slack; check that Socket Mode is enabled in the app's settings.";
    // The URL carries a one-time ticket: never in a message.
    let scrub = |e: String| e.replace(&url, "<socket url>");
    let hello = async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| scrub(format!("the socket did not open: {e}")))?;
        while let Some(frame) = ws.next().await {
            let frame = frame.map_err(|e| scrub(format!("the socket failed: {e}")))?;
            if let tokio_tungstenite::tungstenite::Message::Text(t) = frame {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                if v["type"] == "hello" {
                    let _ = ws.close(None).await;
                    return Ok(v);
                }
            }
        }
        Err("the socket closed before Slack said hello".to_string())
    };
    match tokio::time::timeout(HELLO_WITHIN, hello).await {
        Ok(Ok(v)) => Check::ok(
            NAME,
            format!(
                "connected, Slack said hello (app {}) in {} ms",
                v["connection_info"]["app_id"].as_str().unwrap_or("?"),
                started.elapsed().as_millis()
            ),
        ),
        Ok(Err(e)) => Check::fail(NAME, e, fix),
        Err(_) => Check::fail(
            NAME,
            format!("no hello from Slack within {} s", HELLO_WITHIN.as_secs()),
            fix,
        ),
    }
}

/// Every channel the configuration names, with what it is for.
fn configured_channels(config: &Config, s: &SlackConfig) -> Vec<(String, Vec<&'static str>)> {
    let mut out: Vec<(String, Vec<&'static str>)> = Vec::new();
    let mut add = |id: &str, role: &'static str| match out.iter_mut().find(|(c, _)| c == id) {
        Some((_, roles)) => {
            if !roles.contains(&role) {
                roles.push(role)
            }
        }
        None => out.push((id.to_string(), vec![role])),
    };
    if let Some(r) = &config.alerts.routes {
        add(&r.default_channel, "alert channel");
        for route in &r.routes {
            add(&route.channel, "alert route");
        }
    }
    for c in &s.watch_channels {
        add(c, "watched");
    }
    if let Some(c) = &config.audit.channel {
        add(c, "audit channel");
    }
    out
}

async fn channels(client: &SlackClient, config: &Config, s: &SlackConfig, bot: &str) -> Check {
    const NAME: &str = "slack_channels";
    let wanted = configured_channels(config, s);
    if wanted.is_empty() {
        return Check::warn(
            NAME,
            "no channel is configured: webhook alerts are refused (422) and no alert posts are read",
            "Set SENTINEL_ALERT_CHANNEL (where incidents go) and/or SENTINEL_WATCH_CHANNELS (channels whose alert messages Sentinel reads), as channel ids (C...).",
        );
    }
    let (mut good, mut bad, mut fixes) = (Vec::new(), Vec::new(), Vec::new());
    for (id, roles) in &wanted {
        let roles = roles.join(", ");
        match client
            .call_once_with(
                "conversations.info",
                &s.bot_token,
                &json!({ "channel": id }),
            )
            .await
        {
            Ok(v) => {
                let c = &v["channel"];
                let name = c["name"].as_str().unwrap_or(id);
                if c["is_archived"] == true {
                    bad.push(format!("#{name} ({id}, {roles}) is archived"));
                    fixes.push(format!(
                        "Unarchive #{name} or configure another channel instead of {id}."
                    ));
                } else if c["is_member"] != true {
                    bad.push(format!("the bot is not in #{name} ({id}, {roles})"));
                    fixes.push(format!("Type `/invite @{bot}` in #{name}."));
                } else {
                    good.push(format!("#{name} ({id}, {roles})"));
                }
            }
            Err(e) if e.code() == Some("channel_not_found") => {
                bad.push(format!("channel {id} ({roles}) was not found"));
                fixes.push(format!("Use the channel's id (C..., at the bottom of its details), not its name, for {id}; for a private channel type `/invite @{bot}` in it first."));
            }
            Err(e) if e.code() == Some("missing_scope") => {
                bad.push(format!("cannot look up {id} ({roles}): missing_scope"));
                fixes.push(
                    "Grant channels:read and groups:read (see slack_scopes) and reinstall the app."
                        .to_string(),
                );
            }
            Err(e) => {
                bad.push(format!("cannot look up {id} ({roles}): {e}"));
                fixes.push(format!(
                    "Check that this host reaches {} over HTTPS.",
                    s.api_url
                ));
            }
        }
    }
    if bad.is_empty() {
        Check::ok(NAME, format!("the bot is in {}", good.join(", ")))
    } else {
        fixes.dedup();
        Check::fail(NAME, bad.join("; "), fixes.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_missing_fail_naming_them_and_extra_warn() {
        let m = Manifest::shipped().unwrap();
        let all = m.bot_scopes().into_iter().collect::<Vec<_>>();
        let c = scopes_check(&m, Some(&all.join(",")));
        assert_eq!(c.status, super::super::Status::Ok, "{c:?}");
        let fewer: Vec<_> = all
            .iter()
            .filter(|s| *s != "reactions:write")
            .cloned()
            .collect();
        let c = scopes_check(&m, Some(&fewer.join(",")));
        assert_eq!(c.status, super::super::Status::Fail);
        assert!(
            c.detail
                .contains("lacks 1 of the 10 bot scopes in manifest.yaml: reactions:write"),
            "{}",
            c.detail
        );
        assert!(c
            .fix
            .unwrap()
            .starts_with("Add reactions:write under OAuth & Permissions"));
        let c = scopes_check(&m, Some(&format!("{},chat:write.public", all.join(","))));
        assert_eq!(c.status, super::super::Status::Warn);
        assert!(c.detail.contains("chat:write.public"), "{}", c.detail);
        let c = scopes_check(&m, None);
        assert_eq!(c.status, super::super::Status::Warn);
    }
}

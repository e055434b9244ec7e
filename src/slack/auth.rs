//! Start-up token checks: `auth.test` for the bot token, `apps.connections.open` for the
//! app-level token, each failure a sentence naming the variable and the fix.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::error::UserError;
use crate::slack::client::{SlackClient, SlackError};

/// Who the bot is in this workspace (to ignore its own messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    pub user_id: String,
    pub bot_id: String,
    pub team_id: String,
}

/// Checks both tokens against `client`'s API; the error names the wrong one and why.
pub async fn check_tokens(
    client: &SlackClient,
    app_token: &SecretString,
    bot_token: &SecretString,
) -> Result<BotIdentity, UserError> {
    let me = client
        .call_once_with("auth.test", bot_token, &json!({}))
        .await
        .map_err(|e| explain("SLACK_BOT_TOKEN", bot_token, "xoxb-", &e))?;
    client
        .call_once_with("apps.connections.open", app_token, &json!({}))
        .await
        .map_err(|e| explain("SLACK_APP_TOKEN", app_token, "xapp-", &e))?;
    let s = |k: &str| me[k].as_str().unwrap_or_default().to_string();
    Ok(BotIdentity {
        user_id: s("user_id"),
        bot_id: s("bot_id"),
        team_id: s("team_id"),
    })
}

/// A sentence saying why Slack rejected `token` (held in `var`) and which token to use.
pub fn explain(var: &str, token: &SecretString, prefix: &str, e: &SlackError) -> UserError {
    let t = token.expose_secret();
    let kind = if prefix == "xoxb-" {
        "the Bot User OAuth Token (xoxb-...) from OAuth & Permissions"
    } else {
        "an app-level token (xapp-...) with the connections:write scope, from Basic Information"
    };
    let hint = if t.starts_with(prefix) {
        String::new()
    } else {
        let looks = t.split('-').next().unwrap_or_default();
        format!(" It starts with `{looks}-`, not `{prefix}`: are SLACK_APP_TOKEN and SLACK_BOT_TOKEN swapped?")
    };
    let why = match e.code() {
        Some("invalid_auth") => "Slack does not recognise it (invalid_auth): it is mistyped, revoked or from another workspace.".to_string(),
        Some("not_allowed_token_type") => "Slack says it is the wrong kind of token (not_allowed_token_type).".to_string(),
        Some("token_revoked") => "it has been revoked (token_revoked).".to_string(),
        Some("not_authed") => "it is empty (not_authed).".to_string(),
        Some(other) => format!("Slack answered `{other}`."),
        None => format!("Slack could not be asked: {e}."),
    };
    UserError::new(format!("{var} was rejected: {why} Use {kind}.{hint}"))
}

//! Handlers: one function per kind of inbound traffic, all taking the shared `Context`.
//!
//! Mentions answer in thread (with the incident's alerts and thread when asked in an
//! incident thread; with the LLM when one is configured, runbook sections otherwise).
//! Alert messages in watched channels become incidents; `/sentinel` runs its subcommands.

use anyhow::Context as _;
use serde_json::json;

use super::answer::{self, VIEW_SEARCH};
use std::sync::Arc;

use super::command::{self, ActionsCommand, ButtonAction, Command};
use super::{BotSettings, Context};
use crate::actions::{ClickError, Clicker};
use crate::diagnosis::ask::IncidentContext;
use crate::knowledge::SearchRequest;
use crate::mrkdwn;
use crate::slack::events::{BlockAction, Inbound, MessageEvent, SlashCommand, ViewSubmission};
use crate::slack::SlackPort;
use crate::slack::{Message, Mrkdwn};

/// Why a handler failed: a sentence the user can act on, or an internal failure (the user
/// gets a reference to the log line instead).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("{0}")]
    User(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::slack::SlackError> for HandlerError {
    fn from(e: crate::slack::SlackError) -> Self {
        HandlerError::Internal(e.into())
    }
}

type Handled = Result<(), HandlerError>;

/// Sections shown per answer.
const ANSWER_SECTIONS: usize = 3;
/// Thread messages given as context to a question asked in an incident thread.
const THREAD_CONTEXT: usize = 20;

/// Messages the bot itself sent (by bot id or user id) are never handled.
pub fn is_own(s: &BotSettings, inbound: &Inbound) -> bool {
    match inbound {
        Inbound::Mention(m) | Inbound::Message(m) => {
            (!s.bot_id.is_empty() && m.bot_id.as_deref() == Some(s.bot_id.as_str()))
                || (!s.bot_user_id.is_empty() && m.user.as_deref() == Some(s.bot_user_id.as_str()))
        }
        _ => false,
    }
}

/// The immediate, ephemeral answer carried in a slash command's ack (no I/O). The user's
/// own words are echoed as outside text: redacted and escaped like any other.
pub fn command_ack(cmd: &SlashCommand) -> Option<Mrkdwn> {
    let help = || command::help_text(&Mrkdwn::untrusted(&cmd.command));
    match command::parse(&cmd.text) {
        Ok(Command::Help) => Some(help()),
        Ok(Command::Status) => Some(mrkdwn!(
            "Sentinel {} is running and connected to Slack.",
            Mrkdwn::own(env!("CARGO_PKG_VERSION"))
        )),
        Ok(Command::Search { query }) => Some(mrkdwn!(
            "Searching the runbooks for “{}”…",
            Mrkdwn::untrusted(&crate::text::excerpt(&query, 200))
        )),
        Ok(Command::Ask { question }) => Some(mrkdwn!(
            "Looking into “{}”…",
            Mrkdwn::untrusted(&crate::text::excerpt(&question, 200))
        )),
        Ok(
            Command::Find
            | Command::Incidents
            | Command::Incident { .. }
            | Command::Run { .. }
            | Command::Actions(_)
            | Command::Audit { .. },
        ) => None,
        Err(e) => Some(mrkdwn!("{}\n\n{}", e.sentence(), help())),
    }
}

pub async fn route(ctx: &Context, inbound: Inbound) -> Handled {
    match inbound {
        Inbound::Mention(m) => on_mention(ctx, &m).await,
        Inbound::Message(m) => on_message(ctx, &m).await,
        Inbound::Command(c) => on_command(ctx, &c).await,
        Inbound::BlockAction(a) => on_block_action(ctx, &a).await,
        Inbound::ViewSubmission(v) => on_view_submission(ctx, &v).await,
        Inbound::Ignored { .. } => Ok(()),
    }
}

#[tracing::instrument(skip_all, fields(slack.channel = %m.channel, slack.ts = %m.ts))]
async fn on_mention(ctx: &Context, m: &MessageEvent) -> Handled {
    let question = answer::strip_mentions(&m.text);
    let thread = Some(m.reply_thread());
    if question.is_empty() {
        let hint = Mrkdwn::own(
            "Ask me a question after the mention, e.g. “@Sentinel why is checkout crash looping?”",
        );
        ctx.slack
            .post_message(&m.channel, thread, &Message::text_only(&hint))
            .await?;
        return Ok(());
    }
    let incident = match &m.thread_ts {
        Some(t) => incident_context(ctx, &m.channel, t).await.unwrap_or_else(|e| {
            tracing::warn!(error = %format!("{e:#}"), "cannot read the incident for this thread");
            None
        }),
        None => None,
    };
    if incident.is_none() && ctx.diagnoser.llm.is_none() {
        return post_answer(ctx, &m.channel, thread, &question).await;
    }
    let a = ctx
        .diagnoser
        .answer_question(&question, incident.as_ref())
        .await;
    ctx.slack
        .post_message(&m.channel, thread, &a.message)
        .await
        .context("Failed to post the answer")?;
    Ok(())
}

/// The incident whose thread `thread_ts` is: its alert, the diagnosis, the thread so far.
async fn incident_context(
    ctx: &Context,
    channel: &str,
    thread_ts: &str,
) -> anyhow::Result<Option<IncidentContext>> {
    use crate::incidents::{diagnose, view};
    let Some(id) = diagnose::incident_for_thread(&ctx.pool, channel, thread_ts).await? else {
        return Ok(None);
    };
    let Some((row, v)) = view::load_row(&ctx.pool, id).await? else {
        return Ok(None);
    };
    let mut subject = diagnose::subject(&ctx.pool, id, &v).await?;
    let replies = ctx
        .slack
        .call(
            "conversations.replies",
            json!({"channel": channel, "ts": thread_ts, "limit": THREAD_CONTEXT}),
        )
        .await;
    let mut diagnosis = None;
    match replies {
        Ok(r) => {
            for msg in r["messages"].as_array().into_iter().flatten() {
                let text = msg["text"].as_str().unwrap_or_default();
                if msg["ts"].as_str() == row.runbook_reply_ts.as_deref() {
                    diagnosis = Some(crate::text::excerpt(text, 2_000));
                } else if !text.is_empty() {
                    subject.thread_context.push(crate::text::excerpt(text, 500));
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the thread; answering without it"),
    }
    let keep = subject.thread_context.len().saturating_sub(THREAD_CONTEXT);
    subject.thread_context.drain(..keep);
    Ok(Some(IncidentContext { subject, diagnosis }))
}

async fn post_answer(
    ctx: &Context,
    channel: &str,
    thread: Option<&str>,
    question: &str,
) -> Handled {
    let hits = ctx
        .kb
        .search(&SearchRequest {
            text: question.to_string(),
            alert: None,
            runbook_url: None,
            k: ANSWER_SECTIONS,
        })
        .await;
    let msg = match hits {
        Ok(h) => {
            answer::runbook_answer(question, &h, ctx.settings.runbook_base_url.as_deref(), true)
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "runbook search failed");
            Message::text_only(&Mrkdwn::own(
                "Sorry, I cannot search the runbooks right now. Try again in a minute.",
            ))
        }
    };
    ctx.slack
        .post_message(channel, thread, &msg)
        .await
        .context("Failed to post runbook answer")?;
    Ok(())
}

/// Alert messages (Alertmanager's or Grafana's Slack integration, or plain `[FIRING] ...`
/// text) in watched channels are stored as alerts; the incident engine replies in their
/// thread. Other chat is left alone.
async fn on_message(ctx: &Context, m: &MessageEvent) -> Handled {
    if !ctx.settings.watch_channels.iter().any(|c| c == &m.channel) {
        return Ok(());
    }
    let mut alerts = match crate::alerts::parse::slack_message(&m.raw) {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => return Ok(()),
        Err(e) => {
            tracing::debug!(reason = %e, "message in a watched channel is not an alert");
            return Ok(());
        }
    };
    // The Slack event id is this path's request id in the logs.
    for a in &mut alerts {
        a.request_id = Some(m.event_id.clone());
    }
    let n = alerts.len();
    let source = crate::alerts::Source::Slack.as_str();
    ctx.metrics.alerts_received(source, n);
    ctx.alerts
        .store(alerts)
        .await
        .map_err(|e| anyhow::anyhow!("cannot store the alert message: {e}"))?;
    ctx.metrics.alerts_stored(source, n);
    tracing::info!(alerts = n, slack.channel = %m.channel, request_id = %m.event_id, "alert message stored");
    Ok(())
}

async fn on_command(ctx: &Context, c: &SlashCommand) -> Handled {
    match command::parse(&c.text) {
        Ok(Command::Search { query }) => {
            let hits = ctx
                .kb
                .search(&SearchRequest {
                    text: query.clone(),
                    alert: None,
                    runbook_url: None,
                    k: ANSWER_SECTIONS,
                })
                .await?;
            let msg = answer::runbook_answer(
                &query,
                &hits,
                ctx.settings.runbook_base_url.as_deref(),
                false,
            );
            ctx.slack.respond(&c.response_url, &msg, false).await?;
        }
        Ok(Command::Find) => {
            let meta = json!({"channel": c.channel_id}).to_string();
            ctx.slack
                .open_view(&c.trigger_id, answer::search_modal("", &meta))
                .await?;
        }
        Ok(Command::Ask { question }) => {
            let a = ctx.diagnoser.answer_question(&question, None).await;
            ctx.slack
                .respond(&c.response_url, &a.message, false)
                .await?;
        }
        Ok(Command::Incidents) => {
            let m = crate::incidents::commands::list(&ctx.pool, chrono::Utc::now()).await?;
            ctx.slack.respond(&c.response_url, &m, false).await?;
        }
        Ok(Command::Incident { id }) => {
            match crate::incidents::commands::show(&ctx.pool, id).await? {
                Ok(m) => ctx.slack.respond(&c.response_url, &m, false).await?,
                Err(user) => return Err(HandlerError::User(user.0)),
            }
        }
        Ok(Command::Run {
            action_id,
            params,
            incident,
        }) => {
            let a = actions_on(ctx)?;
            let port: Arc<dyn SlackPort> = Arc::new(ctx.slack.clone());
            let m = a
                .run_command(
                    port,
                    &c.user_id,
                    &c.channel_id,
                    &action_id,
                    params,
                    incident,
                )
                .await
                .map_err(from_click)?;
            ctx.slack.respond(&c.response_url, &m, false).await?;
        }
        Ok(Command::Actions(sub)) => {
            let a = actions_on(ctx)?;
            let m = match sub {
                ActionsCommand::List => a.list_command().await,
                ActionsCommand::Pause => a.switch_command(&c.user_id, true, None).await,
                ActionsCommand::Resume { action_id } => {
                    a.switch_command(&c.user_id, false, action_id.as_deref())
                        .await
                }
            }
            .map_err(from_click)?;
            ctx.slack.respond(&c.response_url, &m, false).await?;
        }
        Ok(Command::Audit { incident }) => {
            let m = crate::actions::commands::audit_command(&ctx.pool, incident).await?;
            ctx.slack.respond(&c.response_url, &m, false).await?;
        }
        // Answered in the ack.
        Ok(Command::Help | Command::Status) | Err(_) => {}
    }
    Ok(())
}

/// The actions service, or a sentence saying actions are off here.
fn actions_on(ctx: &Context) -> Result<&Arc<crate::actions::Actions>, HandlerError> {
    ctx.actions.as_ref().ok_or_else(|| {
        HandlerError::User(
            "Actions are off in this workspace (SENTINEL_ACTIONS=off); Sentinel only advises."
                .into(),
        )
    })
}

fn from_click(e: ClickError) -> HandlerError {
    match e {
        ClickError::User(s) => HandlerError::User(s),
        ClickError::Internal(e) => HandlerError::Internal(e),
    }
}

async fn on_block_action(ctx: &Context, a: &BlockAction) -> Handled {
    match ButtonAction::parse(&a.action_id, a.value.as_deref()) {
        Some(ButtonAction::Helpful { .. }) => {
            let Some(channel) = &a.channel_id else {
                return Ok(());
            };
            let thanks = mrkdwn!(
                "<@{}> found this answer helpful. Thanks!",
                Mrkdwn::untrusted(&a.user_id)
            );
            ctx.slack
                .post_message(channel, a.reply_thread(), &Message::text_only(&thanks))
                .await?;
        }
        Some(ButtonAction::SearchAgain { query }) => {
            let meta = json!({
                "channel": a.channel_id,
                "thread_ts": a.reply_thread(),
            })
            .to_string();
            ctx.slack
                .open_view(&a.trigger_id, answer::search_modal(&query, &meta))
                .await?;
        }
        Some(ButtonAction::Action { kind, value }) => {
            let actions = actions_on(ctx)?;
            let who = Clicker {
                user: a.user_id.clone(),
                channel: a.channel_id.clone(),
                message_ts: a.message_ts.clone(),
            };
            let port: Arc<dyn SlackPort> = Arc::new(ctx.slack.clone());
            actions
                .click(port, &who, kind, &value)
                .await
                .map_err(from_click)?;
        }
        None => tracing::info!(action_id = %a.action_id, "no handler for this button"),
    }
    Ok(())
}

async fn on_view_submission(ctx: &Context, v: &ViewSubmission) -> Handled {
    if v.callback_id != VIEW_SEARCH {
        tracing::info!(callback_id = %v.callback_id, "no handler for this view");
        return Ok(());
    }
    let query = v.text_value("query", "query").unwrap_or_default();
    let meta: serde_json::Value = serde_json::from_str(&v.private_metadata).unwrap_or_default();
    let Some(channel) = meta["channel"].as_str() else {
        return Ok(());
    };
    if query.trim().is_empty() {
        return Ok(());
    }
    post_answer(ctx, channel, meta["thread_ts"].as_str(), query.trim()).await
}

//! The playground's HTTP API: the page, the emulated workspace as JSON, a change feed
//! (server-sent events), acting as a person (say, command, click), alerts into the real
//! webhook endpoint, and the "what Sentinel is doing" panel.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use serde_json::{json, Value};
use sqlx::PgPool;

use super::alerts::{self, AlertRequest, Hook};
use super::requests::{Click, Command, Say, ViewAction, Workspace};
use crate::audit::AuditKey;
use crate::slack::emulator::state::State as EmuState;
use crate::slack::emulator::web::message_json;
use crate::slack::emulator::{Emulator, BOT_USER_ID};

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");
/// Nothing but the page's own files: no CDN, and no inline script an injected message
/// could smuggle in.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// The people of the emulated workspace and what they may do (as `demo::start_on_emulator`
/// configures actions: `@oncall` is Alice and Bob).
const PEOPLE: [(&str, &str); 4] = [
    ("U0ALICE", "on call: approver (@oncall)"),
    ("U0BOB", "second approver (@oncall)"),
    ("U0CAROL", "team lead: approver, actions admin"),
    ("U0MALLORY", "intern: may not approve"),
];

/// What the handlers share.
#[derive(Clone)]
pub struct Ctx {
    pub emu: Arc<Emulator>,
    pub pool: PgPool,
    pub audit_key: AuditKey,
    /// The real webhook server of the stack.
    pub webhook: SocketAddr,
    pub token: String,
    pub channel: String,
    pub samples: Value,
    /// Turns true on shutdown: event streams end, so the server can stop.
    pub stop: tokio::sync::watch::Receiver<bool>,
}

/// The page's routes; `loopback_only` when it is served on a loopback address
/// (`guard` then refuses other host names).
pub fn router(ctx: Ctx, loopback_only: bool) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/static/app.js", get(script))
        .route("/static/style.css", get(style))
        .route("/api/state", get(state))
        .route("/api/events", get(events))
        .route("/api/samples", get(samples))
        .route("/api/panel", get(panel))
        .route("/api/say", post(say))
        .route("/api/command", post(command))
        .route("/api/click", post(click))
        .route("/api/view/submit", post(view_submit))
        .route("/api/view/close", post(view_close))
        .route("/api/alerts", post(alerts))
        .layer(axum::middleware::from_fn_with_state(
            loopback_only,
            super::guard::guard,
        ))
        .with_state(ctx)
}

/// A refusal the page shows next to what was tried.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

fn bad(msg: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg)
}

fn internal(e: anyhow::Error) -> ApiError {
    tracing::warn!(error = %format!("{e:#}"), "playground request failed");
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the playground could not do that; see its log".into(),
    )
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn workspace(st: &EmuState) -> Workspace {
    Workspace {
        users: st
            .users
            .values()
            .filter(|u| !u.is_bot)
            .map(|u| (u.id.clone(), u.name.clone()))
            .collect(),
        channels: st.channels.keys().cloned().collect(),
    }
}

/// The workspace as the emulator holds it.
pub fn state_json(st: &EmuState) -> Value {
    let mut channels: Vec<Value> = st
        .channels
        .values()
        .map(|c| json!({"id": c.id, "name": c.name, "member": c.bot_is_member}))
        .collect();
    channels.sort_by_key(|c| c["name"].as_str().unwrap_or_default().to_string());
    let mut users: Vec<Value> = st
        .users
        .values()
        .map(|u| {
            let role = PEOPLE.iter().find(|(id, _)| *id == u.id).map(|(_, r)| *r);
            json!({"id": u.id, "name": u.name, "real_name": u.real_name, "is_bot": u.is_bot, "role": role})
        })
        .collect();
    users.sort_by_key(|u| u["id"].as_str().unwrap_or_default().to_string());
    let messages: Vec<Value> = st
        .messages
        .iter()
        .map(|m| {
            let mut v = message_json(m);
            v["channel"] = json!(m.channel);
            v["edited"] = json!(m.edits > 0);
            let mut reactions: Vec<(String, Vec<String>)> = Vec::new();
            for r in st
                .reactions
                .iter()
                .filter(|r| r.channel == m.channel && r.ts == m.ts)
            {
                match reactions.iter_mut().find(|(n, _)| *n == r.name) {
                    Some((_, us)) => us.push(r.user.clone()),
                    None => reactions.push((r.name.clone(), vec![r.user.clone()])),
                }
            }
            v["reactions"] = json!(reactions
                .into_iter()
                .map(|(name, users)| json!({"name": name, "users": users}))
                .collect::<Vec<_>>());
            v
        })
        .collect();
    // Open modals, each shown only to the person it was opened for.
    let views: Vec<Value> = st
        .views
        .iter()
        .filter(|v| !v.closed)
        .map(|v| json!({"id": v.id, "user": v.user, "view": v.view, "errors": v.errors, "revision": v.revision}))
        .collect();
    json!({
        "bot_user_id": BOT_USER_ID,
        "channels": channels,
        "users": users,
        "messages": messages,
        "ephemerals": st.ephemerals,
        "views": views,
        "connections": st.connections.len(),
    })
}

async fn state(State(ctx): State<Ctx>) -> Json<Value> {
    Json(state_json(&ctx.emu.state()))
}

/// Changes whenever the emulator's record does.
fn version(st: &EmuState) -> String {
    let edits: u64 = st.messages.iter().map(|m| m.edits as u64).sum();
    // Each view's revision only goes up: the sum changes with any of them.
    let view_changes: u64 = st.views.iter().map(|v| 1 + v.revision as u64).sum();
    format!(
        "{}.{}.{}.{}.{}.{}",
        st.messages.len(),
        edits,
        st.reactions.len(),
        st.ephemerals.len(),
        view_changes,
        st.connections.len()
    )
}

/// One `change` event per change of the emulated workspace (the first at once); the page
/// then fetches `/api/state`. Also re-checks every second: some changes wake nobody.
async fn events(State(ctx): State<Ctx>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let shared = ctx.emu.shared.clone();
    let mut stop = ctx.stop.clone();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let stream = futures::stream::unfold((shared, String::new()), |(sh, last)| async move {
        loop {
            let changed = {
                let notified = sh.changed.notified();
                let v = version(&sh.lock());
                if v == last {
                    let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
                    None
                } else {
                    Some(v)
                }
            };
            if let Some(v) = changed {
                let event = Event::default().event("change").data(v.clone());
                return Some((Ok(event), (sh, v)));
            }
        }
    });
    Sse::new(stream.take_until(stopped)).keep_alive(KeepAlive::default())
}

async fn samples(State(ctx): State<Ctx>) -> Json<Value> {
    Json(ctx.samples.clone())
}

async fn panel(State(ctx): State<Ctx>) -> Result<Json<Value>, ApiError> {
    super::panel::panel(&ctx.pool, &ctx.audit_key, &ctx.channel)
        .await
        .map(Json)
        .map_err(internal)
}

/// The body must be JSON of the request's shape; a refusal says what was wrong.
fn parse<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, ApiError> {
    serde_json::from_str(body).map_err(|e| bad(format!("bad request: {e}")))
}

async fn say(State(ctx): State<Ctx>, body: String) -> Result<Json<Value>, ApiError> {
    let req: Say = parse(&body)?;
    let text = req.check(&workspace(&ctx.emu.state())).map_err(bad)?;
    let ts = ctx
        .emu
        .user_says(&req.channel, &req.user, &text, req.thread_ts.as_deref());
    Ok(Json(json!({"ts": ts})))
}

async fn command(State(ctx): State<Ctx>, body: String) -> Result<Json<Value>, ApiError> {
    let req: Command = parse(&body)?;
    let text = req.check(&workspace(&ctx.emu.state())).map_err(bad)?;
    let id = ctx
        .emu
        .slash_command(&req.channel, &req.user, "/sentinel", &text);
    Ok(Json(json!({"envelope_id": id})))
}

/// The click goes to the bot as Slack's real `block_actions` envelope over Socket Mode;
/// whether the person may do this is the bot's decision, as in production.
async fn click(State(ctx): State<Ctx>, body: String) -> Result<Json<Value>, ApiError> {
    let req: Click = parse(&body)?;
    req.check(&workspace(&ctx.emu.state())).map_err(bad)?;
    let id = ctx
        .emu
        .click_button_with(&req.channel, &req.ts, &req.user, &req.action_id, None)
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("no button `{}` on that message", req.action_id),
            )
        })?;
    Ok(Json(json!({"envelope_id": id})))
}

/// Submits a modal as Slack's real `view_submission` envelope; the bot's ack closes it,
/// or keeps it open with errors.
async fn view_submit(State(ctx): State<Ctx>, body: String) -> Result<Json<Value>, ApiError> {
    let req: ViewAction = parse(&body)?;
    let values = req.check(&workspace(&ctx.emu.state())).map_err(bad)?;
    let id = ctx
        .emu
        .submit_view(&req.view_id, &req.user, values)
        .ok_or_else(no_modal)?;
    Ok(Json(json!({"envelope_id": id})))
}

/// Cancels a modal (Slack tells the app only when the view asked `notify_on_close`;
/// Sentinel's do not).
async fn view_close(State(ctx): State<Ctx>, body: String) -> Result<Json<Value>, ApiError> {
    let req: ViewAction = parse(&body)?;
    req.check(&workspace(&ctx.emu.state())).map_err(bad)?;
    if !ctx.emu.close_view(&req.view_id, &req.user) {
        return Err(no_modal());
    }
    Ok(Json(json!({"closed": true})))
}

fn no_modal() -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "that modal is not open for this person".into(),
    )
}

/// Alerts go through the real webhook endpoint with its token; each answer comes back as
/// the webhook gave it (a malformed body's 400 included).
async fn alerts(State(ctx): State<Ctx>, body: String) -> Result<Json<Value>, ApiError> {
    let req: AlertRequest = parse(&body)?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let bodies: Vec<(Hook, String)> = match req {
        AlertRequest::Raw { hook, body } => vec![(hook, body)],
        AlertRequest::Form(form) => {
            vec![(Hook::Alertmanager, form.webhook_body(&now).map_err(bad)?)]
        }
        AlertRequest::Storm { count } => {
            let run = chrono::Utc::now().format("%H%M%S").to_string();
            alerts::storm(count, &now, &run)
                .map_err(bad)?
                .into_iter()
                .map(|b| (Hook::Alertmanager, b))
                .collect()
        }
    };
    let client = crate::net::client();
    let mut results = Vec::new();
    for (hook, body) in bodies {
        let resp = client
            .post(format!("http://{}{}", ctx.webhook, hook.path()))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", ctx.token))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                internal(anyhow::Error::new(e).context("the webhook server did not answer"))
            })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        results.push(json!({"hook": hook.path(), "status": status, "body": text}));
    }
    Ok(Json(json!({"results": results})))
}

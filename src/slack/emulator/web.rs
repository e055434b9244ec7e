//! The emulator's Web API (`/api/<method>`) and `response_url` endpoints, with Slack's
//! token checks, errors and limits.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::state::*;
use super::{validate, Shared};

/// Slack's chat.postMessage pace: one per second per channel, with bursts.
const POST_INTERVAL: Duration = Duration::from_secs(1);

fn reply(v: Value) -> Response {
    Json(v).into_response()
}

fn err(code: &str) -> Response {
    reply(json!({"ok": false, "error": code}))
}

/// Query string, then a JSON or form body, merged into one object.
fn params(query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Map<String, Value> {
    let mut out = Map::new();
    let form = |s: &str, out: &mut Map<String, Value>| {
        for (k, v) in url::form_urlencoded::parse(s.as_bytes()) {
            // Form-encoded `blocks`/`view` arrive as JSON strings.
            let val = if matches!(k.as_ref(), "blocks" | "view" | "attachments") {
                serde_json::from_str(&v).unwrap_or(Value::String(v.to_string()))
            } else {
                Value::String(v.to_string())
            };
            out.insert(k.to_string(), val);
        }
    };
    if let Some(q) = query {
        form(&q, &mut out);
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if ct.starts_with("application/json") {
        if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) {
            out.extend(m);
        }
    } else if let Ok(s) = std::str::from_utf8(body) {
        form(s, &mut out);
    }
    out
}

fn bearer(headers: &HeaderMap, p: &Map<String, Value>) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .or_else(|| p.get("token").and_then(|t| t.as_str()).map(str::to_string))
}

pub async fn api(
    AxState(sh): AxState<Shared>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut hold = None;
    let mut r = answer(&sh, &method, query, &headers, &body, &mut hold);
    if let Some(delay) = hold {
        tokio::time::sleep(delay).await;
    }
    // Slack names the token's scopes on every call it authenticated.
    let scopes = match bearer(&headers, &Map::new()) {
        Some(t) if t == sh.cfg.bot_token => Some(sh.cfg.granted_scopes.join(",")),
        Some(t) if t == sh.cfg.app_token => Some("connections:write".to_string()),
        _ => None,
    };
    if let Some(v) = scopes.and_then(|s| s.parse().ok()) {
        r.headers_mut().insert("x-oauth-scopes", v);
    }
    r
}

/// `missing_scope` as Slack answers it when the token lacks every scope `method` accepts.
fn scope_check(sh: &Shared, method: &str) -> Option<Response> {
    let needed = crate::slack::manifest::method_scopes(method)?;
    let granted = &sh.cfg.granted_scopes;
    if needed.is_empty() || needed.iter().any(|n| granted.iter().any(|g| g == n)) {
        return None;
    }
    Some(reply(json!({
        "ok": false, "error": "missing_scope",
        "needed": needed.join(","), "provided": granted.join(","),
    })))
}

/// One Web API call, worked under the state lock; `hold` is set when its answer must wait
/// (`Faults::held_posts`).
fn answer(
    sh: &Shared,
    method: &str,
    query: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
    hold: &mut Option<Duration>,
) -> Response {
    let method = method.to_string();
    let p = params(query, headers, body);
    // Token check: the app-level token only opens connections; the bot token does the rest.
    let token = bearer(headers, &p);
    let needs_app = method == "apps.connections.open";
    match token.as_deref() {
        None => return err("not_authed"),
        Some(t) if t == sh.cfg.app_token => {
            if !needs_app {
                return err("not_allowed_token_type");
            }
        }
        Some(t) if t == sh.cfg.bot_token => {
            if needs_app {
                return err("not_allowed_token_type");
            }
            if let Some(r) = scope_check(sh, &method) {
                return r;
            }
        }
        Some(_) => return err("invalid_auth"),
    }
    let mut st = sh.lock();
    st.web_calls.push(method.clone());
    if let Some((n, status)) = st.faults.http_errors.get_mut(&method) {
        if *n > 0 {
            *n -= 1;
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (
                status,
                Json(json!({"ok": false, "error": "internal_error"})),
            )
                .into_response();
        }
    }
    if let Some((n, secs)) = st.faults.rate_limits.get_mut(&method) {
        if *n > 0 {
            *n -= 1;
            return ratelimited(*secs);
        }
    }
    let s = |k: &str| p.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let r = match method.as_str() {
        "auth.test" => reply(json!({
            "ok": true, "url": format!("{}/", sh.base_url), "team": "Sentinel Test", "user": "sentinel",
            "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID, "is_enterprise_install": false,
        })),
        "apps.connections.open" => {
            if st.faults.offline {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"ok": false, "error": "service_unavailable"})),
                )
                    .into_response();
            }
            let ticket = st.next_id("ticket-");
            st.tickets.insert(ticket.clone(), Instant::now());
            let ws = sh.base_url.replacen("http://", "ws://", 1);
            reply(json!({"ok": true, "url": format!("{ws}/link/?ticket={ticket}&app_id={APP_ID}")}))
        }
        "chat.postMessage" => {
            let before = st.messages.len();
            let r = post_message(sh, &mut st, &p);
            if st.messages.len() > before {
                *hold = held(&mut st, &p);
            }
            r
        }
        "chat.update" => update(&mut st, &p),
        "chat.postEphemeral" => {
            let (Some(channel), Some(user)) = (s("channel"), s("user")) else {
                return err("channel_not_found");
            };
            if let Some(e) = channel_check(&st, &channel) {
                return err(e);
            }
            if let Err(r) = content_check(&p) {
                return r;
            }
            let ts = st.next_ts();
            st.ephemerals.push(Ephemeral {
                channel,
                user,
                ts: ts.clone(),
                thread_ts: s("thread_ts"),
                text: s("text").unwrap_or_default(),
                blocks: p.get("blocks").cloned(),
                via: "chat.postEphemeral".into(),
            });
            reply(json!({"ok": true, "message_ts": ts}))
        }
        "chat.getPermalink" => {
            let (Some(channel), Some(ts)) = (s("channel"), s("message_ts")) else {
                return err("channel_not_found");
            };
            if !st.channels.contains_key(&channel) {
                return err("channel_not_found");
            }
            if !st
                .messages
                .iter()
                .any(|m| m.channel == channel && m.ts == ts)
            {
                return err("message_not_found");
            }
            reply(json!({"ok": true, "channel": channel,
                "permalink": format!("{}/archives/{channel}/p{}", sh.base_url, ts.replace('.', ""))}))
        }
        "reactions.add" => {
            let (Some(channel), Some(ts), Some(name)) = (s("channel"), s("timestamp"), s("name"))
            else {
                return err("invalid_arguments");
            };
            if let Some(e) = channel_check(&st, &channel) {
                return err(e);
            }
            if !st
                .messages
                .iter()
                .any(|m| m.channel == channel && m.ts == ts)
            {
                return err("message_not_found");
            }
            if st
                .reactions
                .iter()
                .any(|r| r.channel == channel && r.ts == ts && r.name == name)
            {
                return err("already_reacted");
            }
            st.reactions.push(Reaction {
                channel,
                ts,
                name,
                user: BOT_USER_ID.into(),
            });
            reply(json!({"ok": true}))
        }
        "views.open" => {
            let Some(trigger) = s("trigger_id") else {
                return err("invalid_trigger_id");
            };
            let user = match st.triggers.get(&trigger) {
                None => return err("invalid_trigger_id"),
                Some(t) if t.at.elapsed() > Duration::from_secs(3) => {
                    return err("expired_trigger_id")
                }
                Some(t) => t.user.clone(),
            };
            let view = p.get("view").cloned().unwrap_or(Value::Null);
            if let Err(e) = validate::view(&view) {
                return reply(
                    json!({"ok": false, "error": "invalid_arguments", "response_metadata": {"messages": e}}),
                );
            }
            let id = st.next_id("V0");
            let hash = format!("{}.{}", st.next_ts(), id.to_lowercase());
            st.views.push(View {
                id: id.clone(),
                hash: hash.clone(),
                user,
                view: view.clone(),
                updates: 0,
                closed: false,
                errors: None,
                revision: 0,
            });
            reply(json!({"ok": true, "view": view_json(&id, &hash, &view)}))
        }
        "views.update" => {
            let view = p.get("view").cloned().unwrap_or(Value::Null);
            if let Err(e) = validate::view(&view) {
                return reply(
                    json!({"ok": false, "error": "invalid_arguments", "response_metadata": {"messages": e}}),
                );
            }
            let id = s("view_id").unwrap_or_default();
            let Some(v) = st.views.iter_mut().find(|v| v.id == id && !v.closed) else {
                return err("not_found");
            };
            if let Some(h) = s("hash") {
                if h != v.hash {
                    return err("hash_conflict");
                }
            }
            v.set_view(view.clone());
            let (id, hash) = (v.id.clone(), v.hash.clone());
            reply(json!({"ok": true, "view": view_json(&id, &hash, &view)}))
        }
        "users.info" => match s("user").and_then(|u| st.users.get(&u).cloned()) {
            Some(u) => reply(json!({"ok": true, "user": {
                "id": u.id, "team_id": TEAM_ID, "name": u.name, "real_name": u.real_name, "is_bot": u.is_bot,
                "deleted": false, "tz": "Europe/Berlin",
                "profile": {"real_name": u.real_name, "display_name": u.name}
            }})),
            None => err("user_not_found"),
        },
        "usergroups.list" => {
            let groups: Vec<serde_json::Value> = st
                .usergroup_handles
                .iter()
                .map(|(id, handle)| json!({
                    "id": id, "team_id": TEAM_ID, "handle": handle, "name": handle,
                    "is_usergroup": true, "user_count": st.usergroups.get(id).map_or(0, Vec::len),
                }))
                .collect();
            reply(json!({"ok": true, "usergroups": groups}))
        }
        "usergroups.users.list" => {
            match s("usergroup").and_then(|g| st.usergroups.get(&g).cloned()) {
                Some(users) => reply(json!({"ok": true, "users": users})),
                None => err("no_such_subteam"),
            }
        }
        "conversations.info" => match s("channel").and_then(|c| st.channels.get(&c).cloned()) {
            Some(c) => reply(json!({"ok": true, "channel": {
                "id": c.id, "name": c.name, "is_channel": true, "is_private": false, "created": c.created,
                "is_archived": c.archived, "is_member": c.bot_is_member, "is_general": c.name == "general"
            }})),
            None => err("channel_not_found"),
        },
        "conversations.history" => {
            let Some(channel) = s("channel") else {
                return err("channel_not_found");
            };
            if let Some(e) = channel_check(&st, &channel) {
                return err(e);
            }
            let with_md = flag(&p, "include_all_metadata");
            let oldest = s("oldest")
                .and_then(|t| t.parse::<f64>().ok())
                .unwrap_or(0.0);
            let limit = p
                .get("limit")
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                .unwrap_or(100)
                .clamp(1, 999) as usize;
            // Top-level messages (and thread broadcasts), newest first.
            let mut msgs: Vec<&Message> = st
                .messages
                .iter()
                .filter(|m| m.channel == channel && m.thread_ts.is_none())
                .filter(|m| m.ts.parse::<f64>().unwrap_or(0.0) > oldest)
                .collect();
            msgs.reverse();
            let has_more = msgs.len() > limit;
            let msgs: Vec<Value> = msgs
                .into_iter()
                .take(limit)
                .map(|m| message_json_with(m, with_md))
                .collect();
            reply(json!({"ok": true, "messages": msgs, "has_more": has_more}))
        }
        "conversations.replies" => {
            let (Some(channel), Some(ts)) = (s("channel"), s("ts")) else {
                return err("channel_not_found");
            };
            if let Some(e) = channel_check(&st, &channel) {
                return err(e);
            }
            let with_md = flag(&p, "include_all_metadata");
            let msgs: Vec<Value> = st
                .messages
                .iter()
                .filter(|m| {
                    m.channel == channel && (m.ts == ts || m.thread_ts.as_deref() == Some(&ts))
                })
                .map(|m| message_json_with(m, with_md))
                .collect();
            if msgs.is_empty() {
                return err("thread_not_found");
            }
            reply(json!({"ok": true, "messages": msgs, "has_more": false}))
        }
        _ => err("unknown_method"),
    };
    drop(st);
    sh.changed.notify_waiters();
    r
}

/// How long to hold the answer to the post just stored, if `Faults::held_posts` says so
/// (the post's `ts` goes to `State::held`).
fn held(st: &mut State, p: &Map<String, Value>) -> Option<Duration> {
    let h = st.faults.held_posts.as_mut()?;
    if h.remaining == 0 || p.get("channel").and_then(Value::as_str) != Some(h.channel.as_str()) {
        return None;
    }
    h.remaining -= 1;
    let delay = h.delay;
    let ts = st.messages.last()?.ts.clone();
    st.held.push(ts);
    Some(delay)
}

/// A boolean argument, as JSON or form-encoded (`true`, `1`).
fn flag(p: &Map<String, Value>, key: &str) -> bool {
    match p.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "1",
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    }
}

fn ratelimited(secs: u64) -> Response {
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({"ok": false, "error": "ratelimited"})),
    )
        .into_response();
    r.headers_mut().insert(
        "retry-after",
        secs.to_string().parse().expect("digits are a valid header"),
    );
    r
}

fn view_json(id: &str, hash: &str, view: &Value) -> Value {
    json!({
        "id": id, "team_id": TEAM_ID, "app_id": APP_ID, "bot_id": BOT_ID, "hash": hash,
        "type": view["type"], "title": view["title"], "blocks": view["blocks"],
        "callback_id": view["callback_id"], "private_metadata": view["private_metadata"],
        "state": {"values": {}},
    })
}

/// `metadata` as Slack checks it: an object with a string `event_type` and an object
/// `event_payload` (JSON-encoded strings are accepted too, as the Web API's form encoding).
fn metadata(p: &Map<String, Value>) -> Result<Option<Value>, &'static str> {
    let m = match p.get("metadata") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|_| "invalid_metadata_format")?,
        Some(v) => v.clone(),
    };
    let ok =
        m["event_type"].as_str().is_some_and(|t| !t.is_empty()) && m["event_payload"].is_object();
    if ok {
        Ok(Some(m))
    } else {
        Err("invalid_metadata_format")
    }
}

/// A message as the Web API shows it; metadata only when asked (`include_all_metadata`).
fn message_json_with(m: &Message, with_metadata: bool) -> Value {
    let mut v = message_json(m);
    if let (true, Some(md)) = (with_metadata, &m.metadata) {
        v["metadata"] = md.clone();
    }
    v
}

pub fn message_json(m: &Message) -> Value {
    let mut v = json!({"type": "message", "ts": m.ts, "text": m.text});
    if let Some(u) = &m.user {
        v["user"] = json!(u);
    }
    if let Some(b) = &m.bot_id {
        v["bot_id"] = json!(b);
    }
    if let Some(t) = &m.thread_ts {
        v["thread_ts"] = json!(t);
    }
    if let Some(b) = &m.blocks {
        v["blocks"] = b.clone();
    }
    v
}

fn channel_check(st: &State, channel: &str) -> Option<&'static str> {
    match st.channels.get(channel) {
        None => Some("channel_not_found"),
        Some(c) if c.archived => Some("is_archived"),
        Some(c) if !c.bot_is_member => Some("not_in_channel"),
        Some(_) => None,
    }
}

/// Text or blocks present, text not too long, blocks valid.
#[expect(
    clippy::result_large_err,
    reason = "the emulator answers with the error response itself"
)]
fn content_check(p: &Map<String, Value>) -> Result<(), Response> {
    let text = p.get("text").and_then(|v| v.as_str()).unwrap_or_default();
    let blocks = p.get("blocks").filter(|b| !b.is_null());
    if text.is_empty() && blocks.is_none() {
        return Err(err("no_text"));
    }
    if text.chars().count() > 40_000 {
        return Err(err("msg_too_long"));
    }
    if let Some(b) = blocks {
        if let Err(e) = validate::blocks(b, 50) {
            return Err(reply(
                json!({"ok": false, "error": "invalid_blocks", "errors": e,
                "response_metadata": {"messages": e}}),
            ));
        }
    }
    Ok(())
}

fn post_message(sh: &Shared, st: &mut State, p: &Map<String, Value>) -> Response {
    let Some(channel) = p
        .get("channel")
        .and_then(|v| v.as_str())
        .map(str::to_string)
    else {
        return err("channel_not_found");
    };
    if let Some(e) = channel_check(st, &channel) {
        return err(e);
    }
    // GCRA per channel: 1/s with a burst allowance; past it, 429 + Retry-After.
    let now = Instant::now();
    let tolerance = POST_INTERVAL * sh.cfg.post_burst.saturating_sub(1);
    let tat = st.post_tat.get(&channel).copied().unwrap_or(now).max(now);
    if tat.checked_sub(tolerance).unwrap_or(now) > now {
        let wait = tat - tolerance - now;
        return ratelimited(wait.as_secs_f64().ceil().max(1.0) as u64);
    }
    st.post_tat.insert(channel.clone(), tat + POST_INTERVAL);
    if let Err(r) = content_check(p) {
        return r;
    }
    let thread_ts = p
        .get("thread_ts")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    if let Some(t) = &thread_ts {
        if !st
            .messages
            .iter()
            .any(|m| m.channel == channel && &m.ts == t)
        {
            return err("thread_not_found");
        }
    }
    let ts = st.next_ts();
    let m = Message {
        channel: channel.clone(),
        ts: ts.clone(),
        thread_ts,
        user: Some(BOT_USER_ID.into()),
        bot_id: Some(BOT_ID.into()),
        text: p
            .get("text")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string(),
        blocks: p.get("blocks").cloned().filter(|b| !b.is_null()),
        edits: 0,
        metadata: match metadata(p) {
            Ok(m) => m,
            Err(e) => return err(e),
        },
    };
    let msg = message_json(&m);
    st.messages.push(m);
    reply(json!({"ok": true, "channel": channel, "ts": ts, "message": msg}))
}

fn update(st: &mut State, p: &Map<String, Value>) -> Response {
    let s = |k: &str| p.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let (Some(channel), Some(ts)) = (s("channel"), s("ts")) else {
        return err("cant_update_message");
    };
    if let Some(e) = channel_check(st, &channel) {
        return err(e);
    }
    if let Err(r) = content_check(p) {
        return r;
    }
    let text = s("text").unwrap_or_default();
    let blocks = p
        .get("blocks")
        .cloned()
        .filter(|b| !b.is_null() && b.as_array().is_none_or(|a| !a.is_empty()));
    let Some(m) = st.message_mut(&channel, &ts) else {
        return err("message_not_found");
    };
    if m.user.as_deref() != Some(BOT_USER_ID) {
        return err("cant_update_message");
    }
    let before = (
        std::mem::replace(&mut m.text, text.clone()),
        m.blocks.take(),
    );
    m.blocks = blocks.clone();
    m.edits += 1;
    let msg = message_json(m);
    st.edits.push(Edit {
        channel: channel.clone(),
        ts: ts.clone(),
        text: text.clone(),
        blocks,
        before_text: before.0,
        before_blocks: before.1,
    });
    reply(json!({"ok": true, "channel": channel, "ts": ts, "text": text, "message": msg}))
}

/// `POST /respond/<id>`: a slash command's or button's `response_url`.
pub async fn respond(
    AxState(sh): AxState<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
    };
    let mut st = sh.lock();
    let Some(target) = st.responses.get(&id).cloned() else {
        return (StatusCode::NOT_FOUND, "used_url").into_response();
    };
    if let Some(b) = v.get("blocks").filter(|b| !b.is_null()) {
        if validate::blocks(b, 50).is_err() {
            return (StatusCode::BAD_REQUEST, "invalid_blocks").into_response();
        }
    }
    st.answer(&target, &v, "response_url");
    drop(st);
    sh.changed.notify_waiters();
    (StatusCode::OK, "ok").into_response()
}

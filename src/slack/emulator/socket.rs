//! The emulator's Socket Mode side: `hello`, envelopes to one connection each, acks with
//! their latency, redelivery with `retry_attempt`/`retry_reason` past the ack deadline,
//! and `disconnect`.

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::state::*;
use super::Shared;

/// Slack retries an unacked envelope this many times, then drops it.
pub const MAX_RETRIES: u32 = 3;

#[derive(serde::Deserialize)]
pub struct LinkQuery {
    ticket: Option<String>,
}

pub async fn link(
    AxState(sh): AxState<Shared>,
    Query(q): Query<LinkQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    {
        let mut st = sh.lock();
        let valid = q
            .ticket
            .as_ref()
            .and_then(|t| st.tickets.remove(t))
            .is_some();
        if !valid || st.faults.offline {
            return (StatusCode::UNAUTHORIZED, "invalid ticket").into_response();
        }
    }
    ws.on_upgrade(move |socket| serve(sh, socket))
}

async fn serve(sh: Shared, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    let id = {
        let mut st = sh.lock();
        st.connections_opened += 1;
        let id = st.connections_opened;
        st.connections.push(Connection { id, tx: tx.clone() });
        let hello = json!({
            "type": "hello", "num_connections": st.connections.len(),
            "debug_info": {"host": "emulator-1", "started": "2026-11-21 00:00:00.000", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP_ID}
        });
        let _ = tx.send(Outgoing::Text(hello.to_string()));
        id
    };
    // Envelopes that arrived while nobody was connected go out now.
    flush_undelivered(&sh);
    sh.changed.notify_waiters();
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Outgoing::Text(t)) => {
                    if sink.send(WsMessage::Text(t.into())).await.is_err() { break; }
                }
                Some(Outgoing::Close) | None => {
                    let _ = sink.send(WsMessage::Close(None)).await;
                    break;
                }
            },
            inc = stream.next() => match inc {
                Some(Ok(WsMessage::Text(t))) => on_frame(&sh, t.as_str()),
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    sh.lock().connections.retain(|c| c.id != id);
    sh.changed.notify_waiters();
}

fn on_frame(sh: &Shared, text: &str) {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let mut st = sh.lock();
    let Some(eid) = v["envelope_id"].as_str() else {
        st.stray_frames.push(text.to_string());
        return;
    };
    let Some(p) = st.pending.remove(eid) else {
        st.stray_frames.push(text.to_string());
        return;
    };
    let latency = p.last_sent.map(|t| t.elapsed()).unwrap_or_default();
    let payload = v.get("payload").cloned().filter(|p| !p.is_null());
    // A slash command's ack payload is the immediate (ephemeral by default) answer.
    if let (Some(pl), Some((channel, user))) = (&payload, &p.reply_to) {
        if p.envelope_type == "slash_commands"
            && (pl["text"].is_string() || pl["blocks"].is_array())
        {
            let to = ResponseTarget {
                channel: channel.clone(),
                user: user.clone(),
                message_ts: None,
            };
            st.answer(&to, pl, "command_ack");
        }
    }
    if p.payload["type"] == "view_submission" {
        if let Some(id) = p.payload["view"]["id"].as_str() {
            view_submitted(&mut st, id, payload.as_ref());
        }
    }
    st.acks.push(Ack {
        envelope_id: eid.to_string(),
        envelope_type: p.envelope_type,
        retry_attempt: p.deliveries.saturating_sub(1),
        latency,
        payload,
    });
    drop(st);
    sh.changed.notify_waiters();
}

/// Slack closes a submitted modal unless the ack's `response_action` keeps it open:
/// `errors` shows messages next to their inputs, `update` (or `push`) shows a new view.
fn view_submitted(st: &mut State, view_id: &str, ack: Option<&Value>) {
    let Some(v) = st.views.iter_mut().find(|v| v.id == view_id) else {
        return;
    };
    let ack = ack.unwrap_or(&Value::Null);
    match ack["response_action"].as_str() {
        Some("errors") => {
            v.errors = Some(ack["errors"].clone());
            v.revision += 1;
        }
        Some("update" | "push") if ack["view"].is_object() => v.set_view(ack["view"].clone()),
        _ => {
            v.closed = true;
            v.errors = None;
            v.revision += 1;
        }
    }
}

/// The wire frame of an envelope for its `n`-th delivery (0-based).
fn frame(p: &Pending, attempt: u32) -> String {
    json!({
        "envelope_id": p.envelope_id,
        "type": p.envelope_type,
        "payload": p.payload,
        "accepts_response_payload": p.accepts_response_payload,
        "retry_attempt": attempt,
        "retry_reason": if attempt == 0 { "" } else { "timeout" },
    })
    .to_string()
}

/// Sends (or re-sends) one pending envelope to one connection. Returns false when no
/// connection is up (it stays queued).
pub fn deliver(st: &mut State, envelope_id: &str) -> bool {
    let Some(p) = st.pending.get(envelope_id).cloned() else {
        return true;
    };
    let text = frame(&p, p.deliveries);
    let Some(conn) = st.pick_connection() else {
        return false;
    };
    if conn.tx.send(Outgoing::Text(text)).is_err() {
        return false;
    }
    if let Some(p) = st.pending.get_mut(envelope_id) {
        p.deliveries += 1;
        p.last_sent = Some(Instant::now());
    }
    true
}

pub fn flush_undelivered(sh: &Shared) {
    let mut st = sh.lock();
    while let Some(id) = st.undelivered.pop_front() {
        if !deliver(&mut st, &id) {
            st.undelivered.push_front(id);
            break;
        }
    }
}

/// Queues an envelope and delivers it if a connection is up.
pub fn enqueue(sh: &Shared, p: Pending) {
    let id = p.envelope_id.clone();
    let mut st = sh.lock();
    st.sent.insert(id.clone(), p.clone());
    st.pending.insert(id.clone(), p);
    if !st.undelivered.is_empty() || !deliver(&mut st, &id) {
        // Slack's first attempt failed for want of a connection: the delivery after a
        // reconnect is a retry (`retry_attempt` 1, `retry_reason` timeout).
        if let Some(p) = st.pending.get_mut(&id) {
            p.deliveries = p.deliveries.max(1);
        }
        st.undelivered.push_back(id);
    }
    drop(st);
    sh.changed.notify_waiters();
}

/// Redelivers envelopes whose ack is overdue; drops them after `MAX_RETRIES`.
pub async fn redelivery_loop(sh: Shared) {
    let mut tick = tokio::time::interval(sh.cfg.ack_timeout / 10);
    loop {
        tick.tick().await;
        let mut st = sh.lock();
        let overdue: Vec<(String, u32)> = st
            .pending
            .values()
            .filter(|p| {
                p.last_sent
                    .is_some_and(|t| t.elapsed() >= sh.cfg.ack_timeout)
            })
            .filter(|p| !st.undelivered.contains(&p.envelope_id))
            .map(|p| (p.envelope_id.clone(), p.deliveries))
            .collect();
        for (id, deliveries) in overdue {
            if deliveries > MAX_RETRIES {
                st.pending.remove(&id);
                st.expired.push(id);
            } else if !deliver(&mut st, &id) {
                st.undelivered.push_back(id);
            }
        }
        drop(st);
        sh.changed.notify_waiters();
    }
}

/// Sends `disconnect` to every connection; the client reconnects.
pub fn disconnect_all(sh: &Shared, reason: &str) {
    let st = sh.lock();
    let frame =
        json!({"type": "disconnect", "reason": reason, "debug_info": {"host": "emulator-1"}})
            .to_string();
    for c in &st.connections {
        let _ = c.tx.send(Outgoing::Text(frame.clone()));
    }
}

/// Closes every socket without a word (a dropped network).
pub fn drop_all(sh: &Shared) {
    let mut st = sh.lock();
    for c in st.connections.drain(..) {
        let _ = c.tx.send(Outgoing::Close);
    }
    // Whatever was in flight on them will be redelivered after the deadline.
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_modal() -> State {
        let mut st = State::seed();
        st.views.push(View {
            id: "V1".into(),
            hash: "h1".into(),
            user: "U0BOB".into(),
            view: json!({"type": "modal", "title": {"type": "plain_text", "text": "Search"}}),
            updates: 0,
            closed: false,
            errors: None,
            revision: 0,
        });
        st
    }

    #[test]
    fn a_submission_acked_without_an_action_closes_the_modal() {
        let mut st = with_modal();
        view_submitted(&mut st, "V1", None);
        assert!(st.views[0].closed);
        let mut st = with_modal();
        view_submitted(&mut st, "V1", Some(&json!({"response_action": "clear"})));
        assert!(st.views[0].closed);
    }

    #[test]
    fn errors_keep_it_open_and_show_them_and_every_answer_is_a_new_revision() {
        let mut st = with_modal();
        let errors = json!({"response_action": "errors", "errors": {"query": "Too short"}});
        view_submitted(&mut st, "V1", Some(&errors));
        let v = &st.views[0];
        assert!(!v.closed);
        assert_eq!(v.errors, Some(json!({"query": "Too short"})));
        assert_eq!(v.revision, 1);
        // The same errors again still count as a change (the page re-enables Submit).
        view_submitted(&mut st, "V1", Some(&errors));
        assert_eq!(st.views[0].revision, 2);
        view_submitted(&mut st, "V1", None);
        assert!(st.views[0].closed);
        assert_eq!(st.views[0].errors, None);
        assert_eq!(st.views[0].revision, 3);
    }

    #[test]
    fn an_update_shows_the_new_view_with_a_new_hash() {
        let mut st = with_modal();
        let new = json!({"type": "modal", "title": {"type": "plain_text", "text": "Results"}});
        view_submitted(
            &mut st,
            "V1",
            Some(&json!({"response_action": "update", "view": new})),
        );
        let v = &st.views[0];
        assert!(!v.closed);
        assert_eq!(v.view, new);
        assert_ne!(v.hash, "h1");
        assert_eq!(v.revision, 1);
        // Another modal's id changes nothing.
        view_submitted(&mut st, "V2", None);
        assert!(!st.views[0].closed);
    }
}

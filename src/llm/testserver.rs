//! An OpenAI-compatible chat-completions server for tests and benchmarks, on 127.0.0.1:0.
//!
//! Scriptable per request (a queue of `Reply`s, then a default): success with given content,
//! any HTTP status (429 with `Retry-After`, 500), a delay, a slow SSE stream, and rejection
//! of `json_schema` output. It records every request body so tests can inspect prompts.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::config::{LlmConfig, StructuredMode};

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this message content (streamed as one SSE chunk if the client streams).
    Content(String),
    /// This status with an OpenAI-style error body; `retry_after` adds the header and the
    /// "try again in Ns" phrase OpenAI uses.
    Status {
        code: u16,
        message: String,
        retry_after: Option<u64>,
    },
    /// Waits, then does the inner reply.
    Delay(Duration, Box<Reply>),
    /// Streams `content` in `pieces` SSE chunks, `every` apart (a plain body after the same
    /// total delay when the client does not stream).
    SlowStream {
        content: String,
        pieces: usize,
        every: Duration,
    },
}

impl Reply {
    pub fn content(c: impl Into<String>) -> Self {
        Reply::Content(c.into())
    }
    pub fn json(v: &Value) -> Self {
        Reply::Content(v.to_string())
    }
    pub fn status(code: u16) -> Self {
        Reply::Status {
            code,
            message: format!("test server says {code}"),
            retry_after: None,
        }
    }
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Reply::Status {
            code: 429,
            message: format!("Rate limit reached. Please try again in {retry_after_secs}s."),
            retry_after: Some(retry_after_secs),
        }
    }
    pub fn delayed(d: Duration, r: Reply) -> Self {
        Reply::Delay(d, Box::new(r))
    }
}

struct Inner {
    requests: Mutex<Vec<Value>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    reject_json_schema: AtomicBool,
}

/// A running test server; stops when dropped.
pub struct TestLlm {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestLlm {
    /// Starts a server whose default reply is `default`.
    pub async fn start(default: Reply) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
            reject_json_schema: AtomicBool::new(false),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/chat/completions", post(chat))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, inner, task })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// A client configuration for this server (no API key, json_schema, no streaming).
    pub fn config(&self, timeout: Duration) -> LlmConfig {
        LlmConfig {
            base_url: self.base_url(),
            api_key: None,
            model: "test-model".into(),
            timeout,
            attempts: 3,
            structured: StructuredMode::JsonSchema,
            stream: false,
            max_output_tokens: 800,
            incident_token_budget: 1_000_000,
        }
    }

    /// Queues replies for the next requests, in order.
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        let mut s = self.inner.script.lock().expect("script lock");
        s.extend(replies);
    }

    pub fn set_default(&self, r: Reply) {
        *self.inner.default.lock().expect("default lock") = r;
    }

    /// Answer 400 to any request asking for `json_schema` output, as older servers do.
    pub fn reject_json_schema(&self, on: bool) {
        self.inner.reject_json_schema.store(on, Ordering::Relaxed);
    }

    /// Every request body received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.inner.requests.lock().expect("requests lock").clone()
    }

    /// All message contents of every request, concatenated: what left the process.
    pub fn all_prompt_text(&self) -> String {
        self.requests()
            .iter()
            .flat_map(|r| {
                r["messages"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| m["content"].as_str().unwrap_or_default().to_string())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

async fn chat(State(inner): State<Arc<Inner>>, Json(body): Json<Value>) -> Response {
    let prompt_chars: usize = body["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| m["content"].as_str().map_or(0, str::len))
                .sum()
        })
        .unwrap_or(0);
    let streaming = body["stream"].as_bool().unwrap_or(false);
    let wants_schema = body["response_format"]["type"] == "json_schema";
    inner.requests.lock().expect("requests lock").push(body);
    if wants_schema && inner.reject_json_schema.load(Ordering::Relaxed) {
        return error(
            400,
            "Invalid parameter: response_format of type json_schema is not supported by this model.",
            None,
        );
    }
    let reply = inner
        .script
        .lock()
        .expect("script lock")
        .pop_front()
        .unwrap_or_else(|| inner.default.lock().expect("default lock").clone());
    respond(reply, streaming, prompt_chars / 4).await
}

async fn respond(mut reply: Reply, streaming: bool, prompt_tokens: usize) -> Response {
    while let Reply::Delay(d, inner) = reply {
        tokio::time::sleep(d).await;
        reply = *inner;
    }
    match reply {
        Reply::Content(c) if streaming => sse(c, 1, Duration::ZERO, prompt_tokens),
        Reply::Content(c) => completion(&c, prompt_tokens),
        Reply::Status {
            code,
            message,
            retry_after,
        } => error(code, &message, retry_after),
        Reply::SlowStream {
            content,
            pieces,
            every,
        } => {
            if streaming {
                sse(content, pieces, every, prompt_tokens)
            } else {
                tokio::time::sleep(every * pieces as u32).await;
                completion(&content, prompt_tokens)
            }
        }
        Reply::Delay(..) => error(500, "unreachable delay", None),
    }
}

fn usage(prompt: usize, content: &str) -> Value {
    let completion = content.len() / 4;
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

fn completion(content: &str, prompt_tokens: usize) -> Response {
    Json(json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_763_700_000u32,
        "model": "test-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }],
        "usage": usage(prompt_tokens, content),
    }))
    .into_response()
}

fn error(code: u16, message: &str, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body =
        json!({"error": {"message": message, "type": "test_error", "param": null, "code": null}});
    let mut resp = (status, Json(body)).into_response();
    if let Some(s) = retry_after {
        if let Ok(v) = header::HeaderValue::from_str(&s.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    resp
}

fn chunk(delta: Value, finish: Option<&str>, usage: Option<Value>) -> String {
    let choices = if delta.is_null() {
        json!([])
    } else {
        json!([{"index": 0, "delta": delta, "finish_reason": finish}])
    };
    let v = json!({
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1_763_700_000u32,
        "model": "test-model",
        "choices": choices,
        "usage": usage,
    });
    format!("data: {v}\n\n")
}

fn sse(content: String, pieces: usize, every: Duration, prompt_tokens: usize) -> Response {
    let chars: Vec<char> = content.chars().collect();
    let per = chars.len().div_ceil(pieces.max(1)).max(1);
    let mut events: Vec<String> = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        None,
        None,
    )];
    events.extend(
        chars
            .chunks(per)
            .map(|p| chunk(json!({"content": p.iter().collect::<String>()}), None, None)),
    );
    events.push(chunk(json!({}), Some("stop"), None));
    events.push(chunk(
        Value::Null,
        None,
        Some(usage(prompt_tokens, &content)),
    ));
    events.push("data: [DONE]\n\n".to_string());
    let stream = futures::stream::unfold(
        (events.into_iter(), 0usize),
        move |(mut it, i)| async move {
            let ev = it.next()?;
            // The first event goes at once; content pieces trickle.
            if i > 0 && !every.is_zero() {
                tokio::time::sleep(every).await;
            }
            Some((Ok::<_, Infallible>(Bytes::from(ev)), (it, i + 1)))
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| error(500, "cannot build stream", None))
}

//! The webhook server: `POST /hooks/{alertmanager,grafana,generic}`, `GET /healthz`,
//! `GET /readyz`, `GET /metrics` (unless it has its own address). Alerts are stored in
//! Postgres before the sender gets its 2xx; every refusal is a JSON body saying what is
//! wrong.

pub mod auth;
mod error;
pub mod probe;
pub mod request_id;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use auth::SourceAuth;
pub use error::ApiError;

use crate::alerts::model::Source;
use crate::alerts::{parse, Alert, ParseError};
use crate::db::health::{DbHealth, UNAVAILABLE};
use crate::incidents::intake::AlertWriter;

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub writer: AlertWriter,
    pub auth: Arc<WebhookAuth>,
    pub max_body_bytes: usize,
    /// Set by the Slack connection when it is up; `None` when Slack is not part of this
    /// process (readiness then ignores it).
    pub slack_connected: Option<Arc<AtomicBool>>,
    /// Whether webhook alerts have a channel to go to (`SENTINEL_ALERT_CHANNEL`); without
    /// one they are refused with 422, before anything is stored.
    pub accepts_alerts: bool,
    /// Set when the process is shutting down: new webhooks get 503 + `Retry-After` (the
    /// sender retries, another replica or this one after restart stores them) and
    /// `/readyz` says not ready, while requests already accepted finish.
    pub draining: Arc<AtomicBool>,
    /// What `/metrics` exposes; webhook outcomes are recorded into it.
    pub metrics: crate::metrics::Metrics,
    /// Serve `/metrics` here (false when `SENTINEL_METRICS_ADDR` gives it its own server).
    pub serve_metrics: bool,
    /// Whether the database answers: while it does not, webhooks get 503 +
    /// `Retry-After` at once (the sender re-sends) and `/readyz` says not ready.
    pub db: DbHealth,
}

/// Credentials per source.
#[derive(Debug, Clone, Default)]
pub struct WebhookAuth {
    pub alertmanager: SourceAuth,
    pub grafana: SourceAuth,
    pub generic: SourceAuth,
    /// Accept sources with no credentials configured (local testing only).
    pub allow_unauthenticated: bool,
}

impl WebhookAuth {
    fn for_source(&self, s: Source) -> &SourceAuth {
        match s {
            Source::Alertmanager => &self.alertmanager,
            Source::Grafana => &self.grafana,
            _ => &self.generic,
        }
    }
}

pub fn router(state: AppState) -> Router {
    let routes = if state.serve_metrics {
        Router::new().route("/metrics", get(metrics))
    } else {
        Router::new()
    };
    routes
        .route("/hooks/alertmanager", post(alertmanager))
        .route("/hooks/grafana", post(grafana))
        .route("/hooks/generic", post(generic))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; webhooks are POST /hooks/alertmanager, /hooks/grafana, /hooks/generic") })
        .layer(
            // Refusals are logged by the handlers (`webhook refused`): no second line for 5xx.
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_failure(()),
        )
        // Outermost: the span above and the handlers read the id it settles.
        .layer(axum::middleware::from_fn(request_id::assign))
        .with_state(state)
}

/// `GET /metrics` alone: no webhook credentials (it carries no secret), for the webhook
/// server or its own address.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// The Prometheus exposition (`Metrics::scrape`).
async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        s.metrics.scrape(&s.pool, &s.db).await,
    )
        .into_response()
}

/// The span a request is handled in: method, path and its request id.
fn request_span(req: &axum::http::Request<Body>) -> tracing::Span {
    let request_id = req
        .headers()
        .get(request_id::HEADER)
        .and_then(|v| v.to_str().ok());
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id
    )
}

/// Serves until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve(listener, router(state), "webhook", shutdown).await
}

/// Serves `/metrics` alone (`SENTINEL_METRICS_ADDR`) until `shutdown` resolves.
pub async fn run_metrics(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve(listener, metrics_router(state), "metrics", shutdown).await
}

async fn serve(
    listener: TcpListener,
    routes: Router,
    what: &'static str,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "{what} server listening");
    axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn alertmanager(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    intake(&s, Source::Alertmanager, &headers, body, |b| {
        parse::alertmanager(b)
    })
    .await
}

async fn grafana(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    intake(&s, Source::Grafana, &headers, body, parse::grafana).await
}

async fn generic(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    intake(&s, Source::Generic, &headers, body, |b| {
        parse::generic(b, chrono::Utc::now())
    })
    .await
}

#[tracing::instrument(skip_all, fields(source = source.as_str()))]
async fn intake(
    s: &AppState,
    source: Source,
    headers: &HeaderMap,
    body: Body,
    parse: impl Fn(&[u8]) -> Result<Vec<Alert>, ParseError>,
) -> Response {
    match intake_inner(s, source, headers, body, parse).await {
        Ok(n) => {
            tracing::info!(alerts = n, "webhook alerts stored");
            (
                StatusCode::OK,
                Json(json!({"status": "stored", "alerts": n})),
            )
                .into_response()
        }
        Err(e) => {
            s.metrics.webhook_rejected(source.as_str(), e.code);
            if e.status.is_server_error() {
                tracing::warn!(code = e.code, "webhook refused");
            } else {
                tracing::info!(code = e.code, status = e.status.as_u16(), "webhook refused");
            }
            e.into_response()
        }
    }
}

async fn intake_inner(
    s: &AppState,
    source: Source,
    headers: &HeaderMap,
    body: Body,
    parse: impl Fn(&[u8]) -> Result<Vec<Alert>, ParseError>,
) -> Result<usize, ApiError> {
    if s.draining.load(Ordering::Relaxed) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "this Sentinel is shutting down; retry shortly",
        ));
    }
    let limit = s.max_body_bytes;
    let too_big = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than the limit of {limit} bytes"),
        )
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(too_big());
        }
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_big())?;
    s.auth
        .for_source(source)
        .verify(headers, &bytes, s.auth.allow_unauthenticated)
        .map_err(ApiError::from)?;
    check_content_type(headers)?;
    if !s.accepts_alerts {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_alert_channel",
            "this Sentinel has no channel for webhook alerts: set SENTINEL_ALERT_CHANNEL (and optionally SENTINEL_ALERT_ROUTES)",
        ));
    }
    let mut alerts = parse(&bytes).map_err(ApiError::from)?;
    let request = request_id::of(headers);
    for a in &mut alerts {
        a.request_id.clone_from(&request);
    }
    let n = alerts.len();
    s.metrics.alerts_received(source.as_str(), n);
    if !s.db.is_up() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            format!("{UNAVAILABLE}; the alerts were not stored"),
        ));
    }
    s.writer.store(alerts).await.map_err(ApiError::from)?;
    s.metrics.alerts_stored(source.as_str(), n);
    Ok(n)
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong_content_type",
            if ct.is_empty() {
                "missing Content-Type; send `Content-Type: application/json`".to_string()
            } else {
                format!("Content-Type `{ct}` is not JSON; send `Content-Type: application/json`")
            },
        ))
    }
}

async fn readyz(State(s): State<AppState>) -> Response {
    // During an outage the probe already knows: answer at once, not after a timeout.
    let db_ok = s.db.is_up()
        && matches!(
            tokio::time::timeout(
                Duration::from_secs(2),
                sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&s.pool),
            )
            .await,
            Ok(Ok(1))
        );
    let slack = s
        .slack_connected
        .as_ref()
        .map(|c| c.load(Ordering::Relaxed));
    let draining = s.draining.load(Ordering::Relaxed);
    let ready = db_ok && slack.unwrap_or(true) && !draining;
    let body = json!({
        "status": if draining { "shutting_down" } else if ready { "ready" } else { "not_ready" },
        "database": if db_ok { "ok" } else { "unreachable" },
        "slack": match slack { None => "not_configured", Some(true) => "connected", Some(false) => "disconnected" },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

//! The webhook server end to end (router in process, real Postgres): what a sender sees
//! for good and bad input, and that alerts are in the database before the 2xx.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use secrecy::SecretString;
use sentinel::http::{auth::sign, router, AppState, SourceAuth, WebhookAuth};
use sentinel::incidents::intake::{AlertWriter, WriterConfig};
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;

use crate::helpers::fixtures::{AM_FIRING, AM_RESOLVED, GRAFANA};

const TOKEN: &str = "am-token";
const SECRET: &str = "grafana-secret";

fn auth() -> WebhookAuth {
    WebhookAuth {
        alertmanager: SourceAuth {
            bearer: Some(SecretString::from(TOKEN)),
            hmac_secret: None,
        },
        grafana: SourceAuth {
            bearer: None,
            hmac_secret: Some(SecretString::from(SECRET)),
        },
        generic: SourceAuth::default(),
        allow_unauthenticated: false,
    }
}

fn state(pool: &PgPool, auth: WebhookAuth, slack: Option<bool>) -> AppState {
    AppState {
        pool: pool.clone(),
        writer: AlertWriter::spawn(pool.clone(), None, WriterConfig::default()),
        auth: Arc::new(auth),
        max_body_bytes: 64 * 1024,
        slack_connected: slack.map(|s| Arc::new(AtomicBool::new(s))),
        accepts_alerts: true,
        draining: Arc::new(AtomicBool::new(false)),
        metrics: Default::default(),
        serve_metrics: true,
        db: sentinel::db::health::DbHealth::always_up(),
    }
}

struct Sent {
    status: StatusCode,
    body: Value,
    retry_after: Option<String>,
}

async fn send(s: &AppState, req: Request<Body>) -> Sent {
    let resp = router(s.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    Sent {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        retry_after,
    }
}

fn am(body: &str) -> Request<Body> {
    Request::post("/hooks/alertmanager")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn stored(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM alerts")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn sample_alerts_are_stored_before_the_2xx_and_duplicates_once(pool: PgPool) {
    let s = state(&pool, auth(), None);
    let r = send(&s, am(AM_FIRING)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "stored");
    assert_eq!(r.body["alerts"], 2);
    assert_eq!(stored(&pool).await, 2, "stored before the response");
    // Alertmanager redelivers the same notification: nothing new is stored.
    let r = send(&s, am(AM_FIRING)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(stored(&pool).await, 2);
    // The resolution is a new state of the same alerts (commonAnnotations: null accepted).
    assert_eq!(send(&s, am(AM_RESOLVED)).await.status, StatusCode::OK);
    assert_eq!(stored(&pool).await, 4);
    let ends: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT ends_at FROM alerts WHERE status = 'firing' LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(ends, None, "0001-01-01T00:00:00Z is stored as not ended");
}

#[sqlx::test]
async fn while_shutting_down_webhooks_get_503_with_retry_after_and_readyz_says_so(pool: PgPool) {
    let s = state(&pool, auth(), None);
    s.draining.store(true, std::sync::atomic::Ordering::Relaxed);
    let r = send(&s, am(AM_FIRING)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["error"], "shutting_down");
    assert_eq!(r.retry_after.as_deref(), Some("5"));
    assert_eq!(stored(&pool).await, 0);
    let ready = send(&s, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["status"], "shutting_down");
}

#[sqlx::test]
async fn without_an_alert_channel_webhook_alerts_get_a_422_and_nothing_is_stored(pool: PgPool) {
    let mut s = state(&pool, auth(), None);
    s.accepts_alerts = false;
    let r = send(&s, am(AM_FIRING)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["error"], "no_alert_channel");
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("set SENTINEL_ALERT_CHANNEL"));
    assert_eq!(stored(&pool).await, 0);
}

#[sqlx::test]
async fn grafana_with_hmac_and_generic(pool: PgPool) {
    let mut a = auth();
    a.generic.bearer = Some(SecretString::from("g"));
    let s = state(&pool, a, None);
    let req = Request::post("/hooks/grafana")
        .header("content-type", "application/json; charset=utf-8")
        .header("x-sentinel-signature", sign(SECRET, GRAFANA.as_bytes()))
        .body(Body::from(GRAFANA))
        .unwrap();
    assert_eq!(send(&s, req).await.status, StatusCode::OK);
    let req = Request::post("/hooks/generic")
        .header("content-type", "application/json")
        .header("authorization", "Bearer g")
        .body(Body::from(
            r#"{"name":"DiskFull","severity":"critical","summary":"disk 97% full"}"#,
        ))
        .unwrap();
    let r = send(&s, req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let names: Vec<String> = sqlx::query_scalar("SELECT alertname FROM alerts ORDER BY alertname")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(names, vec!["DiskFull", "NodeFilesystemSpaceFillingUp"]);
}

#[sqlx::test]
async fn bad_input_gets_a_4xx_that_says_what_is_wrong(pool: PgPool) {
    let s = state(&pool, auth(), None);
    let mut v: Value = serde_json::from_str(AM_FIRING).unwrap();
    let missing = {
        v["alerts"][1].as_object_mut().unwrap().remove("startsAt");
        v.to_string()
    };
    let mut v3: Value = serde_json::from_str(AM_FIRING).unwrap();
    v3["version"] = "3".into();
    let cases: Vec<(Request<Body>, StatusCode, &str, &str)> = vec![
        (
            am("{\"version\": \"4\", "),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "malformed JSON",
        ),
        (
            am(&missing),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_field",
            "missing field `alerts[1].startsAt`",
        ),
        (
            am(&v3.to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_version",
            "unknown webhook version `3`",
        ),
        (
            Request::post("/hooks/alertmanager")
                .header("content-type", "text/plain")
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::from(AM_FIRING))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong_content_type",
            "`text/plain` is not JSON",
        ),
        (
            Request::post("/hooks/alertmanager")
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::from(AM_FIRING))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong_content_type",
            "missing Content-Type",
        ),
        (
            am(&" ".repeat(70 * 1024)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "limit of 65536 bytes",
        ),
        (
            Request::post("/hooks/alertmanager")
                .header("content-type", "application/json")
                .body(Body::from(AM_FIRING))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "missing_credentials",
            "Authorization: Bearer",
        ),
        (
            Request::post("/hooks/alertmanager")
                .header("content-type", "application/json")
                .header("authorization", "Bearer nope")
                .body(Body::from(AM_FIRING))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "invalid credentials",
        ),
        (
            Request::post("/hooks/grafana")
                .header("content-type", "application/json")
                .header(
                    "x-sentinel-signature",
                    sign("other-secret", GRAFANA.as_bytes()),
                )
                .body(Body::from(GRAFANA))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "invalid credentials",
        ),
        (
            Request::post("/hooks/generic")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"name":"X"}"#))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "auth_not_configured",
            "no credentials are configured",
        ),
        (
            Request::get("/hooks/alertmanager")
                .body(Body::empty())
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "",
            "",
        ),
    ];
    for (req, status, code, message) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let r = send(&s, req).await;
        assert_eq!(r.status, status, "{what}: {}", r.body);
        if !code.is_empty() {
            assert_eq!(r.body["error"], code, "{what}");
            let m = r.body["message"].as_str().unwrap();
            assert!(m.contains(message), "{what}: `{m}` lacks `{message}`");
        }
    }
    assert_eq!(stored(&pool).await, 0, "nothing bad was stored");
}

#[sqlx::test]
async fn database_down_means_503_and_not_ready(pool: PgPool) {
    let s = state(&pool, auth(), Some(true));
    let r = send(&s, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["database"], "ok");
    assert_eq!(r.body["slack"], "connected");
    pool.close().await;
    let r = send(&s, am(AM_FIRING)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["error"], "database_unavailable");
    assert_eq!(r.retry_after.as_deref(), Some("5"));
    let r = send(&s, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["database"], "unreachable");
    let r = send(&s, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "liveness does not depend on the database"
    );
}

#[sqlx::test]
async fn readiness_follows_slack(pool: PgPool) {
    let s = state(&pool, auth(), Some(false));
    let r = send(&s, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["slack"], "disconnected");
}

#[sqlx::test]
async fn unknown_paths_get_json_404(pool: PgPool) {
    let s = state(&pool, auth(), None);
    let r = send(
        &s,
        Request::get("/hooks/nagios").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("/hooks/alertmanager"));
}

/// `GET /metrics` on `app`: status and body text.
async fn scrape(app: axum::Router) -> (StatusCode, String) {
    let resp = app
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[sqlx::test]
async fn metrics_on_the_webhook_address_or_their_own_and_through_a_database_outage(pool: PgPool) {
    let s = state(&pool, auth(), None);
    assert_eq!(send(&s, am(AM_FIRING)).await.status, StatusCode::OK);
    let (status, text) = scrape(router(s.clone())).await;
    assert_eq!(status, StatusCode::OK, "no credentials needed");
    assert!(
        text.contains("sentinel_alerts_stored_total{source=\"alertmanager\"} 2\n"),
        "{text}"
    );
    assert!(text.contains("sentinel_database_up 1\n"), "{text}");
    assert!(!text.contains(TOKEN));
    // With SENTINEL_METRICS_ADDR, only the metrics server answers /metrics.
    let own = AppState {
        serve_metrics: false,
        ..s.clone()
    };
    assert_eq!(scrape(router(own.clone())).await.0, StatusCode::NOT_FOUND);
    let (status, text) = scrape(sentinel::http::metrics_router(own)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("sentinel_alerts_stored_total{source=\"alertmanager\"} 2\n"),
        "{text}"
    );
    // Postgres gone: the scrape still answers, and says the database is down.
    pool.close().await;
    let (status, text) = scrape(router(s)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("sentinel_database_up 0\n"), "{text}");
}

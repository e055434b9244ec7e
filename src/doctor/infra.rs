//! The doctor's checks of everything but Slack: the database (reachable, migrated,
//! pgvector), the embedding model, the LLM endpoint and the webhook credentials.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use super::Check;
use crate::config::{Config, EmbedderConfig};
use crate::error::mask_url;
use crate::http::SourceAuth;
use crate::llm::{ChatMessage, JsonRequest, LlmClient, LlmError, TokenLedger};

/// Longest wait for the database to accept a connection.
const DB_WITHIN: Duration = Duration::from_secs(15);
/// Longest wait for one LLM answer or one embedding.
const CALL_WITHIN: Duration = Duration::from_secs(10);

/// `database`, `migrations`, `pgvector`: the last two skip when the first fails.
pub async fn database(config: &Config) -> Vec<Check> {
    let skip = |why: &str| vec![Check::skip("migrations", why), Check::skip("pgvector", why)];
    let Some(url) = &config.database_url else {
        let mut out = vec![Check::fail(
            "database",
            "DATABASE_URL is not set",
            "Set DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/DB (Postgres with pgvector); `make db` starts a local one.",
        )];
        out.extend(skip("needs a database (database failed)"));
        return out;
    };
    let masked = mask_url(url.expose_secret());
    let failed = |detail: String, fix: &str| {
        let mut out = vec![Check::fail("database", detail, fix)];
        out.extend(skip("needs a database (database failed)"));
        out
    };
    let Ok(opts) = url.expose_secret().parse::<PgConnectOptions>() else {
        return failed(
            format!("DATABASE_URL is not a valid Postgres URL: {masked}"),
            "Write it as postgres://USER:PASSWORD@HOST:5432/DB (percent-encode special characters in the password).",
        );
    };
    // One connection, one attempt: a pool would retry until its timeout.
    let opts = opts.disable_statement_logging();
    let mut conn = match tokio::time::timeout(DB_WITHIN, PgConnection::connect_with(&opts)).await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            return failed(
                format!("cannot reach the database at {masked}: {}", reason(&e)),
                "Check DATABASE_URL's host, port, user and password; that Postgres runs and accepts connections from this host (firewall, pg_hba.conf); managed Postgres usually wants ?sslmode=require.",
            )
        }
        Err(_) => {
            return failed(
                format!(
                    "no answer from the database at {masked} within {} s",
                    DB_WITHIN.as_secs()
                ),
                "Check DATABASE_URL's host and port, and that a firewall lets this host reach it.",
            )
        }
    };
    let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|_| "?".into());
    let out = vec![
        Check::ok(
            "database",
            format!("connected to {masked} (PostgreSQL {version})"),
        ),
        migrations(&mut conn).await,
        pgvector(&mut conn).await,
    ];
    let _ = conn.close().await;
    out
}

/// A short reason (sqlx errors never carry the password).
fn reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    }
}

/// Every migration embedded in this binary applied (and none failed half-way).
async fn migrations(conn: &mut PgConnection) -> Check {
    const NAME: &str = "migrations";
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    let ok: BTreeSet<i64> = applied.iter().filter(|a| a.1).map(|a| a.0).collect();
    let ours: Vec<_> = crate::db::MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .collect();
    let missing: Vec<_> = ours.iter().filter(|m| !ok.contains(&m.version)).collect();
    if let Some(first) = missing.first() {
        return Check::fail(
            NAME,
            format!(
                "{} of {} migrations are not applied (first: {} {})",
                missing.len(),
                ours.len(),
                first.version,
                first.description
            ),
            "Run `sentinel migrate` with the same DATABASE_URL (`sentinel serve` also migrates at start).",
        );
    }
    let known: BTreeSet<i64> = ours.iter().map(|m| m.version).collect();
    let newer: Vec<i64> = ok.iter().filter(|v| !known.contains(v)).copied().collect();
    if let Some(v) = newer.last() {
        return Check::warn(
            NAME,
            format!(
                "the database has {} migrations this binary does not know (newest {v}): a newer Sentinel migrated it",
                newer.len()
            ),
            "Run the Sentinel release that migrated this database, or a newer one.",
        );
    }
    let last = ours.last().map_or(String::new(), |m| {
        format!(" (latest {} {})", m.version, m.description)
    });
    Check::ok(NAME, format!("all {} migrations applied{last}", ours.len()))
}

async fn pgvector(conn: &mut PgConnection) -> Check {
    const NAME: &str = "pgvector";
    let installed: Option<String> =
        sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            .fetch_optional(&mut *conn)
            .await
            .ok()
            .flatten();
    match installed {
        Some(v) if crate::db::pgvector_is_recent(&v) => Check::ok(NAME, format!("pgvector {v}")),
        Some(v) => Check::fail(
            NAME,
            format!("pgvector {v} is older than 0.5.0, which Sentinel's HNSW indexes need"),
            "Upgrade pgvector on the server, then run `ALTER EXTENSION vector UPDATE;` in this database.",
        ),
        None => {
            let available: Option<String> = sqlx::query_scalar(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'",
            )
            .fetch_optional(&mut *conn)
            .await
            .ok()
            .flatten();
            match available {
                Some(v) => Check::fail(
                    NAME,
                    format!("pgvector {v} is available on the server but not created in this database"),
                    "Run `sentinel migrate` (it creates it; the role needs the right to CREATE EXTENSION), or `CREATE EXTENSION vector;` as the database owner.",
                ),
                None => Check::fail(
                    NAME,
                    "this Postgres server does not have the pgvector extension (`vector`)",
                    "Use a Postgres with pgvector: the pgvector/pgvector Docker image, or enable pgvector at your provider (Supabase, Neon, RDS and Fly Postgres offer it).",
                ),
            }
        }
    }
}

/// Loads the configured embedder and embeds one text.
pub async fn embedder(config: &Config) -> Check {
    const NAME: &str = "embedding_model";
    let fix = match &config.embedder {
        EmbedderConfig::Local { .. } => "Run `make model`, or set SENTINEL_MODEL_DIR to the folder holding all-MiniLM-L6-v2 (config.json, tokenizer.json, model.safetensors).",
        EmbedderConfig::OpenAi { .. } => "Check SENTINEL_EMBED_BASE_URL, SENTINEL_EMBED_MODEL, SENTINEL_EMBED_DIM and OPENAI_API_KEY.",
    };
    let started = Instant::now();
    let e = match crate::embed::from_config(&config.embedder).await {
        Ok(e) => e,
        Err(e) => return Check::fail(NAME, format!("cannot load it: {e}"), fix),
    };
    match tokio::time::timeout(CALL_WITHIN, e.embed_one("sentinel doctor")).await {
        Ok(Ok(v)) if v.len() == e.dim() => Check::ok(
            NAME,
            format!(
                "{} ({} dimensions) loaded and embedded a text in {} ms",
                e.model_name(),
                e.dim(),
                started.elapsed().as_millis()
            ),
        ),
        Ok(Ok(v)) => Check::fail(
            NAME,
            format!(
                "{} gave a vector of {} dimensions, not {}",
                e.model_name(),
                v.len(),
                e.dim()
            ),
            fix,
        ),
        Ok(Err(err)) => Check::fail(
            NAME,
            format!("{} failed to embed: {err}", e.model_name()),
            fix,
        ),
        Err(_) => Check::fail(
            NAME,
            format!(
                "{} did not embed a text within {} s",
                e.model_name(),
                CALL_WITHIN.as_secs()
            ),
            fix,
        ),
    }
}

/// One tiny structured call, one attempt, short timeout; skipped when no LLM is configured.
pub async fn llm(config: &Config) -> Check {
    const NAME: &str = "llm";
    let Some(cfg) = &config.llm else {
        return Check::skip(
            NAME,
            "no LLM configured (SENTINEL_LLM_BASE_URL and OPENAI_API_KEY unset, or SENTINEL_LLM=off): diagnoses are runbook-based",
        );
    };
    let mut cfg = cfg.clone();
    cfg.timeout = cfg.timeout.min(CALL_WITHIN);
    cfg.attempts = 1;
    cfg.max_output_tokens = 32;
    let (model, at) = (cfg.model.clone(), mask_url(&cfg.base_url));
    let timeout = cfg.timeout;
    let client = LlmClient::new(cfg, TokenLedger::in_memory());
    let req = JsonRequest {
        incident: None,
        purpose: "doctor",
        messages: vec![
            ChatMessage::system(
                "You are a health check. Answer with the JSON object {\"ok\": true}.",
            ),
            ChatMessage::user("ping"),
        ],
        schema_name: "health_check",
        schema: json!({
            "type": "object", "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"], "additionalProperties": false,
        }),
    };
    let started = Instant::now();
    match client.complete_json(&req).await {
        Ok(_) => Check::ok(
            NAME,
            format!(
                "{model} at {at} answered in {} ms",
                started.elapsed().as_millis()
            ),
        ),
        Err(e) => {
            let fix = match &e {
                LlmError::Timeout(_) => format!("The endpoint did not answer within {} ms: check that it is up and reachable from this host, or raise SENTINEL_LLM_TIMEOUT_MS.", timeout.as_millis()),
                LlmError::Rejected { status: 401 | 403, .. } => "Check OPENAI_API_KEY (the key for this endpoint).".to_string(),
                LlmError::Rejected { status: 404, .. } => "Check SENTINEL_LLM_MODEL and SENTINEL_LLM_BASE_URL (it usually ends in /v1).".to_string(),
                _ => "Check SENTINEL_LLM_BASE_URL, SENTINEL_LLM_MODEL and OPENAI_API_KEY, or set SENTINEL_LLM=off for runbook-only diagnoses.".to_string(),
            };
            Check::fail(
                NAME,
                crate::redact::redact_patterns(&format!("{model} at {at}: {e}")),
                fix,
            )
        }
    }
}

/// Per source: a bearer token or HMAC secret. Allowing unauthenticated webhooks, or
/// configuring none, fails.
pub fn webhooks(config: &Config) -> Check {
    const NAME: &str = "webhook_auth";
    let a = &config.alerts.auth;
    let sources: [(&str, &str, &SourceAuth); 3] = [
        ("alertmanager", "ALERTMANAGER", &a.alertmanager),
        ("grafana", "GRAFANA", &a.grafana),
        ("generic", "GENERIC", &a.generic),
    ];
    let describe = |s: &SourceAuth| match (&s.bearer, &s.hmac_secret) {
        (Some(_), Some(_)) => "bearer token and HMAC secret",
        (Some(_), None) => "bearer token",
        (None, Some(_)) => "HMAC secret",
        (None, None) => "none",
    };
    let summary = sources
        .iter()
        .map(|(name, _, s)| format!("{name}: {}", describe(s)))
        .collect::<Vec<_>>()
        .join(", ");
    let open: Vec<_> = sources.iter().filter(|s| !s.2.is_configured()).collect();
    if a.allow_unauthenticated && !open.is_empty() {
        return Check::fail(
            NAME,
            format!(
                "SENTINEL_WEBHOOK_ALLOW_UNAUTHENTICATED=true: anyone who reaches the port can post alerts to {} ({summary})",
                open.iter().map(|s| s.0).collect::<Vec<_>>().join(", ")
            ),
            format!(
                "Set {} (or its _HMAC_SECRET) and remove SENTINEL_WEBHOOK_ALLOW_UNAUTHENTICATED.",
                open.iter()
                    .map(|s| format!("SENTINEL_WEBHOOK_{}_TOKEN", s.1))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    if open.len() == sources.len() {
        return Check::fail(
            NAME,
            "no webhook source has credentials: every webhook is refused (401)",
            "Set SENTINEL_WEBHOOK_ALERTMANAGER_TOKEN (and _GRAFANA_ / _GENERIC_ for the sources you use) to a long random value, e.g. `openssl rand -hex 32`, and give the same value to the sender.",
        );
    }
    let refused = if open.is_empty() {
        String::new()
    } else {
        format!(
            "; {} refused until configured",
            open.iter().map(|s| s.0).collect::<Vec<_>>().join(", ")
        )
    };
    Check::ok(NAME, format!("{summary}{refused}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_env;
    use crate::doctor::Status;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        Config::from_env(&test_env(pairs)).unwrap()
    }

    #[test]
    fn webhook_credentials_per_source_never_printed() {
        let c = webhooks(&cfg(&[(
            "SENTINEL_WEBHOOK_ALERTMANAGER_TOKEN",
            "s3cret-token",
        )]));
        assert_eq!(c.status, Status::Ok);
        assert_eq!(
            c.detail,
            "alertmanager: bearer token, grafana: none, generic: none; grafana, generic refused until configured"
        );
        assert!(!c.detail.contains("s3cret"));
        let c = webhooks(&cfg(&[]));
        assert_eq!(c.status, Status::Fail);
        assert!(c
            .fix
            .unwrap()
            .contains("SENTINEL_WEBHOOK_ALERTMANAGER_TOKEN"));
        let c = webhooks(&cfg(&[
            ("SENTINEL_WEBHOOK_GRAFANA_HMAC_SECRET", "k"),
            ("SENTINEL_WEBHOOK_ALLOW_UNAUTHENTICATED", "true"),
        ]));
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("alertmanager, generic"), "{}", c.detail);
    }
}

//! `sentinel doctor` as an operator runs it, against the Slack emulator, real Postgres and
//! the test LLM: every check ok on a healthy deployment, and each broken part named with
//! its fix and a non-zero exit.

use sentinel::llm::testserver::{Reply, TestLlm};
use sentinel::slack::emulator::{Emulator, EmulatorConfig};
use serde_json::{json, Value};

use crate::helpers::app::HOOK_TOKEN;
use crate::helpers::embed::model_dir;
use crate::helpers::process::{url_of, with};

const CHECKS: [&str; 11] = [
    "config",
    "slack_bot_token",
    "slack_scopes",
    "slack_socket_mode",
    "slack_channels",
    "database",
    "migrations",
    "pgvector",
    "embedding_model",
    "llm",
    "webhook_auth",
];

async fn emulator_with(scopes: Option<Vec<String>>) -> Emulator {
    sentinel::net::install_crypto();
    let mut cfg = EmulatorConfig::default();
    if let Some(s) = scopes {
        cfg.granted_scopes = s;
    }
    Emulator::start(cfg).await.unwrap()
}

async fn llm() -> TestLlm {
    TestLlm::start(Reply::json(&json!({"ok": true})))
        .await
        .unwrap()
}

/// A deployment on `emu`, database `url` and `llm`: incidents in #alerts, #ops watched.
fn env(emu: &Emulator, url: &str, llm: &TestLlm) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", url.to_string()),
        ("SLACK_APP_TOKEN", emu.shared.cfg.app_token.clone()),
        ("SLACK_BOT_TOKEN", emu.shared.cfg.bot_token.clone()),
        ("SLACK_API_URL", emu.api_url()),
        ("SENTINEL_SLACK_TIMEOUT_SECS", "5".into()),
        ("SENTINEL_ALERT_CHANNEL", "C0ALERTS".into()),
        ("SENTINEL_WATCH_CHANNELS", "C0OPS".into()),
        ("SENTINEL_WEBHOOK_ALERTMANAGER_TOKEN", HOOK_TOKEN.into()),
        ("SENTINEL_MODEL_DIR", model_dir().display().to_string()),
        ("SENTINEL_EMBED_THREADS", "1".into()),
        ("SENTINEL_LLM_BASE_URL", llm.base_url()),
        ("SENTINEL_LLM_MODEL", "test-model".into()),
        ("SENTINEL_LOG", "warn".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

struct Run {
    code: i32,
    out: String,
    report: Value,
}

impl Run {
    fn check(&self, name: &str) -> &Value {
        self.report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {}", self.out))
    }
    fn status(&self, name: &str) -> &str {
        self.check(name)["status"].as_str().unwrap()
    }
    fn text(&self, name: &str, field: &str) -> String {
        self.check(name)[field]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

async fn doctor(env: &[(String, String)], args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .arg("doctor")
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn doctor_json(env: &[(String, String)]) -> Run {
    let (code, stdout, stderr) = doctor(env, &["--json"]).await;
    let out = format!("{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("--json is not one JSON object ({e}):\n{out}"));
    for (k, v) in env {
        if k.ends_with("_TOKEN") {
            assert!(!out.contains(v.as_str()), "{k} printed:\n{out}");
        }
    }
    Run { code, out, report }
}

#[sqlx::test]
async fn a_healthy_deployment_passes_every_check(pool: sqlx::PgPool) {
    let (emu, llm) = (emulator_with(None).await, llm().await);
    let env = env(&emu, &url_of(&pool), &llm);
    let run = doctor_json(&env).await;
    assert_eq!(run.code, 0, "{}", run.out);
    // The documented shape: ok, counts, and every check in order with its four fields.
    let r = &run.report;
    assert_eq!(r["ok"], true);
    assert_eq!(
        r["counts"],
        json!({"ok": 11, "warn": 0, "fail": 0, "skip": 0}),
        "{}",
        run.out
    );
    let checks = r["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, CHECKS);
    for c in checks {
        let mut keys: Vec<_> = c.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["detail", "fix", "name", "status"]);
        assert_eq!(c["status"], "ok", "{c}");
        assert_eq!(c["fix"], Value::Null);
    }
    assert!(run.text("slack_bot_token", "detail").contains("U0SENTINEL"));
    assert!(run
        .text("slack_channels", "detail")
        .contains("#alerts (C0ALERTS, alert channel)"));
    assert!(run
        .text("slack_channels", "detail")
        .contains("#ops (C0OPS, watched)"));
    assert!(run.text("pgvector", "detail").starts_with("pgvector 0."));
    assert!(run.text("llm", "detail").contains("test-model"));
    // It really asked: a socket was opened, the channels and the LLM were asked.
    assert!(emu.state().connections_opened >= 1);
    assert!(emu
        .state()
        .web_calls
        .iter()
        .any(|m| m == "conversations.info"));
    assert_eq!(llm.requests().len(), 1);

    let (code, text, _) = doctor(&env, &[]).await;
    assert_eq!(code, 0);
    assert!(
        text.lines().next().unwrap().starts_with("[ ok ] config"),
        "{text}"
    );
    assert!(
        text.ends_with("11 ok, 0 warnings, 0 failed, 0 skipped: ready\n"),
        "{text}"
    );
}

#[sqlx::test]
async fn a_scope_the_app_was_not_granted_fails_naming_it(pool: sqlx::PgPool) {
    let granted = sentinel::slack::manifest::Manifest::shipped()
        .unwrap()
        .bot_scopes()
        .into_iter()
        .filter(|s| s != "reactions:write")
        .collect();
    let (emu, llm) = (emulator_with(Some(granted)).await, llm().await);
    let run = doctor_json(&env(&emu, &url_of(&pool), &llm)).await;
    assert_eq!(run.code, 1, "{}", run.out);
    assert_eq!(run.status("slack_scopes"), "fail");
    assert!(
        run.text("slack_scopes", "detail")
            .contains("reactions:write"),
        "{}",
        run.out
    );
    assert!(run
        .text("slack_scopes", "fix")
        .starts_with("Add reactions:write under OAuth & Permissions"));
    assert_eq!(run.status("slack_bot_token"), "ok");
    assert_eq!(run.report["counts"]["fail"], 1);
}

#[sqlx::test]
async fn a_channel_without_the_bot_says_to_invite_it(pool: sqlx::PgPool) {
    let (emu, llm) = (emulator_with(None).await, llm().await);
    let env = with(
        env(&emu, &url_of(&pool), &llm),
        "SENTINEL_ALERT_CHANNEL",
        "C0RANDOM",
    );
    let run = doctor_json(&env).await;
    assert_eq!(run.code, 1, "{}", run.out);
    assert_eq!(run.status("slack_channels"), "fail");
    assert_eq!(
        run.text("slack_channels", "detail"),
        "the bot is not in #random (C0RANDOM, alert channel)"
    );
    assert_eq!(
        run.text("slack_channels", "fix"),
        "Type `/invite @Sentinel` in #random."
    );
}

#[sqlx::test]
async fn an_invalid_bot_token_fails_and_skips_what_needs_it(pool: sqlx::PgPool) {
    let (emu, llm) = (emulator_with(None).await, llm().await);
    let env = with(
        env(&emu, &url_of(&pool), &llm),
        "SLACK_BOT_TOKEN",
        "xoxb-revoked-token",
    );
    let run = doctor_json(&env).await;
    assert_eq!(run.code, 1, "{}", run.out);
    assert_eq!(run.status("slack_bot_token"), "fail");
    assert!(
        run.text("slack_bot_token", "detail")
            .contains("invalid_auth"),
        "{}",
        run.out
    );
    assert!(run
        .text("slack_bot_token", "fix")
        .contains("SLACK_BOT_TOKEN"));
    assert_eq!(run.status("slack_scopes"), "skip");
    assert_eq!(run.status("slack_channels"), "skip");
    assert!(run
        .text("slack_channels", "detail")
        .contains("slack_bot_token failed"));
    // The app-level token is fine: Socket Mode is checked all the same.
    assert_eq!(run.status("slack_socket_mode"), "ok");
    assert!(!run.out.contains("revoked-token"), "{}", run.out);
}

#[tokio::test]
async fn an_unreachable_database_fails_with_a_fix_and_no_password() {
    let (emu, llm) = (emulator_with(None).await, llm().await);
    let env = env(
        &emu,
        "postgres://sentinel:hunter2@127.0.0.1:1/sentinel",
        &llm,
    );
    let run = doctor_json(&env).await;
    assert_eq!(run.code, 1, "{}", run.out);
    assert_eq!(run.status("database"), "fail");
    assert!(
        run.text("database", "detail")
            .contains("cannot reach the database at postgres://sentinel:***@127.0.0.1:1/sentinel"),
        "{}",
        run.out
    );
    assert!(run.text("database", "fix").contains("DATABASE_URL"));
    assert_eq!(run.status("migrations"), "skip");
    assert_eq!(run.status("pgvector"), "skip");
    assert!(!run.out.contains("hunter2"), "{}", run.out);
    // Everything that does not need the database still ran.
    assert_eq!(run.status("slack_channels"), "ok");
    assert_eq!(run.status("embedding_model"), "ok");
}

#[sqlx::test(migrations = false)]
async fn an_unmigrated_database_says_to_migrate(pool: sqlx::PgPool) {
    // A new database may inherit the extension from its template: this one has none.
    sqlx::query("DROP EXTENSION IF EXISTS vector")
        .execute(&pool)
        .await
        .unwrap();
    let (emu, llm) = (emulator_with(None).await, llm().await);
    let run = doctor_json(&env(&emu, &url_of(&pool), &llm)).await;
    assert_eq!(run.code, 1, "{}", run.out);
    assert_eq!(run.status("database"), "ok");
    assert_eq!(run.status("migrations"), "fail");
    assert!(run
        .text("migrations", "detail")
        .contains("migrations are not applied"));
    assert!(run.text("migrations", "fix").contains("sentinel migrate"));
    assert_eq!(run.status("pgvector"), "fail");
    assert!(
        run.text("pgvector", "detail")
            .contains("not created in this database"),
        "{}",
        run.out
    );
}

#[tokio::test]
async fn a_broken_configuration_is_one_failed_check() {
    let (code, stdout, _) = doctor(
        &[("SENTINEL_WEBHOOK_ADDR".to_string(), "nowhere".to_string())],
        &["--json"],
    )
    .await;
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["checks"][0]["name"], "config");
    assert_eq!(v["checks"][0]["status"], "fail");
    assert!(v["checks"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("SENTINEL_WEBHOOK_ADDR"));
}

#[sqlx::test]
async fn a_failing_llm_and_an_unreachable_socket_are_named(pool: sqlx::PgPool) {
    let emu = emulator_with(None).await;
    let llm = TestLlm::start(Reply::status(500)).await.unwrap();
    // Slack's Socket Mode endpoint is down (apps.connections.open answers 503).
    emu.set_offline(true);
    let run = doctor_json(&env(&emu, &url_of(&pool), &llm)).await;
    assert_eq!(run.code, 1, "{}", run.out);
    assert_eq!(run.status("llm"), "fail");
    assert!(
        run.text("llm", "detail").contains("HTTP 500"),
        "{}",
        run.out
    );
    assert!(run.text("llm", "fix").contains("SENTINEL_LLM_BASE_URL"));
    assert_eq!(run.status("slack_socket_mode"), "fail");
    assert!(
        run.text("slack_socket_mode", "detail")
            .contains("apps.connections.open answered HTTP 503"),
        "{}",
        run.out
    );
    assert_eq!(run.status("slack_bot_token"), "ok");
    assert_eq!(run.report["counts"]["fail"], 2);
}

//! The `sentinel` binary as a user runs it: errors are one readable line, outputs are stable.

use std::process::Command;

use crate::helpers::process::url_of;

fn sentinel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sentinel"))
}

#[test]
fn unreachable_database_is_one_line_with_masked_password() {
    let out = sentinel()
        .args(["search", "anything"])
        .env(
            "DATABASE_URL",
            "postgres://sentinel:hunter2@127.0.0.1:1/sentinel",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the database at postgres://sentinel:***@127.0.0.1:1/sentinel"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn missing_database_url_says_how_to_get_one() {
    let out = sentinel()
        .args(["search", "x"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("make db"), "{err}");
}

#[test]
fn missing_model_is_a_clear_error() {
    let out = sentinel()
        .args(["bench", "embed", "--texts", "/nonexistent.jsonl"])
        .env("SENTINEL_MODEL_DIR", "/nonexistent-model")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn help_lists_the_contract_subcommands() {
    let out = sentinel().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "migrate", "ingest", "search", "eval", "bench", "demo", "audit", "doctor",
    ] {
        assert!(text.contains(cmd), "{cmd} missing from help:\n{text}");
    }
}

#[sqlx::test]
async fn ingest_then_search_as_a_user_would(pool: sqlx::PgPool) {
    let url = url_of(&pool);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("redis.md"),
        "---\ntitle: Redis down\nalerts: [RedisDown]\n---\n# Redis down\n\n## Meaning\nThe cache is unreachable.\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("broken.md"),
        "---\nalerts: [unclosed\n---\n",
    )
    .unwrap();

    let out = sentinel()
        .args(["ingest", "--json"])
        .arg(dir.path())
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "some files failed: {err}");
    assert!(
        err.contains("skipped") && err.contains("broken.md: bad front matter"),
        "{err}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["files"], 2);
    assert_eq!(report["chunks_added"], 1);
    assert_eq!(
        report["failed"][0]["reason"]
            .as_str()
            .unwrap()
            .split(':')
            .next(),
        Some("bad front matter")
    );

    let out = sentinel()
        .args([
            "search",
            "cache unreachable",
            "--alert",
            "RedisDown",
            "--json",
        ])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hits: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(hits[0]["runbook_path"], "redis.md");
    assert_eq!(hits[0]["matched_by"], "alert_name");
    assert_eq!(
        hits[0]["heading_path"],
        serde_json::json!(["Redis down", "Meaning"])
    );

    // The human form names the runbook and section.
    let out = sentinel()
        .args(["search", "cache unreachable"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("redis.md#meaning") && text.contains("Redis down > Meaning"),
        "{text}"
    );
}

//! The sample alert payloads and the repository's fixture folders.

use std::path::{Path, PathBuf};

/// Alertmanager's webhook (v4): two firing pods of `KubePodCrashLooping` in `checkout`.
pub const AM_FIRING: &str = include_str!("../../data/alerts/alertmanager-v4-firing.json");
/// The same two alerts, resolved.
pub const AM_RESOLVED: &str = include_str!("../../data/alerts/alertmanager-v4-resolved.json");
pub const GRAFANA: &str = include_str!("../../data/alerts/grafana-firing.json");
/// The `message` event Alertmanager's Slack receiver produces for `AM_FIRING`.
pub const SLACK_MSG: &str = include_str!("../../data/alerts/slack-alertmanager-message.json");

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Copies a folder of the repository into a fresh temporary directory.
pub fn copy_fixture(rel: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_path(rel), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// An LLM draft citing the first runbook section (`S1`) and the alert: checkout-api crash
/// looping after a release.
pub fn crash_loop_draft() -> serde_json::Value {
    serde_json::json!({
        "summary": {"text": "checkout-api is crash looping after a release.", "sources": ["S1", "ALERT"]},
        "likely_causes": [{"cause": "A bad release", "confidence": 0.7, "sources": ["S1"]}],
        "next_checks": [{"check": "Read the previous container logs", "sources": ["S1"]}],
        "proposed_actions": []
    })
}

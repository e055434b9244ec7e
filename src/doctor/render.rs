//! The doctor's report as a checklist for people, or as one JSON object (a stable
//! contract, docs/doctor.md). Pure.

use serde_json::{json, Value};

use super::{Report, Status};

fn mark(s: Status) -> &'static str {
    match s {
        Status::Ok => "[ ok ]",
        Status::Warn => "[warn]",
        Status::Fail => "[FAIL]",
        Status::Skip => "[skip]",
    }
}

/// One line per check (`[FAIL] name  detail`), its fix indented below, then a summary line.
pub fn text(r: &Report) -> String {
    let width = r.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in &r.checks {
        out.push_str(&format!(
            "{} {:width$}  {}\n",
            mark(c.status),
            c.name,
            c.detail
        ));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("       {:width$}  fix: {fix}\n", ""));
        }
    }
    out.push_str(&format!(
        "{} ok, {} warnings, {} failed, {} skipped: {}\n",
        r.count(Status::Ok),
        r.count(Status::Warn),
        r.count(Status::Fail),
        r.count(Status::Skip),
        if r.ok() {
            "ready"
        } else {
            "not ready, see the fixes above"
        }
    ));
    out
}

/// `{"ok", "counts": {"ok","warn","fail","skip"}, "checks": [{"name","status","detail","fix"}]}`.
pub fn json(r: &Report) -> Value {
    json!({
        "ok": r.ok(),
        "counts": {
            "ok": r.count(Status::Ok),
            "warn": r.count(Status::Warn),
            "fail": r.count(Status::Fail),
            "skip": r.count(Status::Skip),
        },
        "checks": r.checks,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Check;
    use super::*;

    fn report() -> Report {
        Report {
            checks: vec![
                Check::ok("database", "connected"),
                Check::fail(
                    "slack_scopes",
                    "missing reactions:write",
                    "Add reactions:write and reinstall.",
                ),
                Check::warn(
                    "webhook_auth",
                    "grafana has none",
                    "Set SENTINEL_WEBHOOK_GRAFANA_TOKEN.",
                ),
                Check::skip("slack_channels", "needs a valid bot token"),
            ],
        }
    }

    #[test]
    fn text_is_a_checklist_with_fixes_and_a_summary() {
        let t = text(&report());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "[ ok ] database        connected");
        assert_eq!(lines[1], "[FAIL] slack_scopes    missing reactions:write");
        assert_eq!(
            lines[2],
            format!("{}fix: Add reactions:write and reinstall.", " ".repeat(23))
        );
        assert!(lines[3].starts_with("[warn] webhook_auth"));
        assert_eq!(lines[5], "[skip] slack_channels  needs a valid bot token");
        assert_eq!(
            lines[6],
            "1 ok, 1 warnings, 1 failed, 1 skipped: not ready, see the fixes above"
        );
    }

    #[test]
    fn json_has_the_documented_shape() {
        let v = json(&report());
        assert_eq!(v["ok"], false);
        assert_eq!(
            v["counts"],
            serde_json::json!({"ok": 1, "warn": 1, "fail": 1, "skip": 1})
        );
        assert_eq!(
            v["checks"][1],
            serde_json::json!({"name": "slack_scopes", "status": "fail",
                "detail": "missing reactions:write", "fix": "Add reactions:write and reinstall."})
        );
        assert_eq!(v["checks"][0]["fix"], Value::Null);
        assert_eq!(v["checks"][3]["status"], "skip");
    }

    #[test]
    fn warnings_and_skips_do_not_fail() {
        let mut r = report();
        r.checks.remove(1);
        assert!(r.ok());
        assert_eq!(r.exit_code(), 0);
        assert!(text(&r).ends_with("ready\n"));
        assert_eq!(report().exit_code(), 1);
    }
}

//! Pure rendering of incident messages: root (text + Block Kit), resolution and reopen
//! replies, runbook reply, storm digest. Slack limits are respected here (section text
//! ≤ 3000 chars, ≤ 50 blocks).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::model::{Link, Severity, Status};
use super::notify::Message;
use crate::knowledge::Hit;
use crate::text::truncate_chars;

/// Lines of alerts listed in a root before "and N more".
pub const MAX_ALERT_LINES: usize = 20;
const SECTION_MAX: usize = 2900;

/// What a root message shows about one incident.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentView {
    pub id: i64,
    pub name: String,
    pub status: Status,
    pub severity: Severity,
    pub summary: Option<String>,
    /// Labels every alert of the incident shares.
    pub common_labels: BTreeMap<String, String>,
    pub alerts: Vec<AlertLine>,
    pub links: Vec<Link>,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub reopened: i32,
}

/// One alert of an incident, as one line.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertLine {
    pub status: Status,
    /// Labels that set this alert apart from the others.
    pub distinct: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
}

/// Slack mrkdwn needs `&`, `<` and `>` escaped.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn status_icon(s: Status) -> &'static str {
    match s {
        Status::Firing => "🔥",
        Status::Resolved => "✅",
    }
}

fn hhmm(t: DateTime<Utc>) -> String {
    t.format("%H:%M UTC").to_string()
}

/// `[FIRING] KubePodCrashLooping (2 alerts)`.
pub fn title(v: &IncidentView) -> String {
    let state = match (v.status, v.reopened) {
        (Status::Resolved, _) => "RESOLVED",
        (Status::Firing, 0) => "FIRING",
        (Status::Firing, _) => "FIRING AGAIN",
    };
    let firing = v
        .alerts
        .iter()
        .filter(|a| a.status == Status::Firing)
        .count();
    format!(
        "{} [{state}] {} · {} ({} of {} alerts firing)",
        status_icon(v.status),
        v.name,
        v.severity.as_str(),
        firing,
        v.alerts.len()
    )
}

/// One line per alert: `🔥 pod=checkout-api-x2k4q · since 21:04 UTC`.
pub fn alert_line(a: &AlertLine) -> String {
    let labels: Vec<String> = a
        .distinct
        .iter()
        .map(|(k, v)| format!("{k}=`{}`", escape(v)))
        .collect();
    let labels = if labels.is_empty() {
        "(no distinguishing labels)".to_string()
    } else {
        labels.join(" ")
    };
    match (a.status, a.ends_at) {
        (Status::Resolved, Some(end)) => format!("✅ {labels} · resolved {}", hhmm(end)),
        (Status::Resolved, None) => format!("✅ {labels} · resolved"),
        (Status::Firing, _) => format!("🔥 {labels} · since {}", hhmm(a.starts_at)),
    }
}

fn links_line(links: &[Link]) -> Option<String> {
    let mut seen = Vec::new();
    let parts: Vec<String> = links
        .iter()
        .filter(|l| {
            let new = !seen.contains(&l.kind);
            seen.push(l.kind.clone());
            new
        })
        .map(|l| {
            format!(
                "<{}|{}>",
                l.url.replace('|', "%7C").replace('>', "%3E"),
                l.kind
            )
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// The root message: updated in place as alerts join, resolve or fire again.
pub fn root_message(v: &IncidentView) -> Message {
    let head = title(v);
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn",
        "text": truncate_chars(&format!("*{}*", escape(&head)), SECTION_MAX)}})];
    let mut about = String::new();
    if let Some(s) = &v.summary {
        about.push_str(&escape(s));
        about.push('\n');
    }
    let common: Vec<String> = v
        .common_labels
        .iter()
        .filter(|(k, _)| k.as_str() != "alertname")
        .map(|(k, val)| format!("{k}=`{}`", escape(val)))
        .collect();
    if !common.is_empty() {
        about.push_str(&common.join(" "));
    }
    if !about.trim().is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
            "text": truncate_chars(about.trim(), SECTION_MAX)}}));
    }
    let mut lines: Vec<String> = v
        .alerts
        .iter()
        .take(MAX_ALERT_LINES)
        .map(alert_line)
        .collect();
    if v.alerts.len() > MAX_ALERT_LINES {
        lines.push(format!("… and {} more", v.alerts.len() - MAX_ALERT_LINES));
    }
    if !lines.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
            "text": truncate_chars(&lines.join("\n"), SECTION_MAX)}}));
    }
    let mut context = format!("Incident #{} · opened {}", v.id, hhmm(v.opened_at));
    if let Some(r) = v.resolved_at.filter(|_| v.status == Status::Resolved) {
        context.push_str(&format!(" · resolved {}", hhmm(r)));
    }
    if let Some(l) = links_line(&v.links) {
        context.push_str(" · ");
        context.push_str(&l);
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
        "text": truncate_chars(&context, SECTION_MAX)}]}));
    let mut text = head;
    if let Some(s) = &v.summary {
        text.push_str(" — ");
        text.push_str(s);
    }
    Message {
        text: truncate_chars(&text, 3000),
        blocks: Some(Value::Array(blocks)),
    }
}

/// The one short thread reply when every alert of the incident has resolved.
pub fn resolution_reply(v: &IncidentView) -> Message {
    let mins = v
        .resolved_at
        .map(|r| (r - v.opened_at).num_minutes().max(0))
        .unwrap_or(0);
    Message::text(format!(
        "✅ Resolved: all {} alert(s) of incident #{} cleared after {mins} min.",
        v.alerts.len(),
        v.id
    ))
}

/// The thread reply when a resolved incident fires again.
pub fn reopen_reply(v: &IncidentView) -> Message {
    let firing = v
        .alerts
        .iter()
        .filter(|a| a.status == Status::Firing)
        .count();
    Message::text(format!(
        "🔥 Firing again: {firing} alert(s) of incident #{} (reopened {} time(s)).",
        v.id, v.reopened
    ))
}

/// Where a runbook section lives: `<base>/<path>#<anchor>` when a base URL is configured.
pub fn hit_link(h: &Hit, base: Option<&str>) -> String {
    match base {
        Some(b) => format!(
            "<{}/{}#{}|{}>",
            b.trim_end_matches('/'),
            h.runbook_path,
            h.anchor,
            escape(&h.heading())
        ),
        None => format!(
            "*{}* (`{}#{}`)",
            escape(&h.heading()),
            h.runbook_path,
            h.anchor
        ),
    }
}

/// Shown under the runbook sections while the diagnosis is drafted (then edited away).
pub const DRAFTING_NOTE: &str = "⏳ Drafting a diagnosis from these sections…";

/// The runbook reply for a new incident: the best sections, each linked to its source.
/// With `drafting`, it also says a diagnosis is on its way (it replaces this reply).
pub fn runbook_reply(hits: &[Hit], base: Option<&str>, drafting: bool) -> Message {
    let mut msg = runbook_sections(hits, base);
    if drafting {
        let note =
            json!({"type": "context", "elements": [{"type": "mrkdwn", "text": DRAFTING_NOTE}]});
        let mut blocks = match msg.blocks.take() {
            Some(Value::Array(b)) => b,
            _ => vec![
                json!({"type": "section", "text": {"type": "mrkdwn", "text": escape(&msg.text)}}),
            ],
        };
        blocks.push(note);
        msg.blocks = Some(Value::Array(blocks));
        msg.text.push_str(&format!("\n{DRAFTING_NOTE}"));
    }
    msg
}

/// The thread's first reply when there is no knowledge base to quote: the diagnosis
/// replaces it.
pub fn drafting_reply(alert_name: &str) -> Message {
    Message::text(format!(
        "⏳ Investigating {alert_name}… drafting a diagnosis."
    ))
}

fn runbook_sections(hits: &[Hit], base: Option<&str>) -> Message {
    if hits.is_empty() {
        return Message::text(
            "📖 No runbook in the knowledge base matches this alert yet.".to_string(),
        );
    }
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn",
        "text": "📖 *Runbook sections that match this alert*"}})];
    let mut text = String::from("📖 Runbook sections that match this alert:");
    for h in hits.iter().take(5) {
        let exact = match h.matched_by {
            crate::knowledge::MatchKind::Hybrid => "",
            _ => " · exact match",
        };
        let excerpt = crate::text::excerpt(&h.body, 400);
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
            "text": truncate_chars(&format!("{}{exact}\n{}", hit_link(h, base), escape(&excerpt)), SECTION_MAX)}}));
        text.push_str(&format!(
            "\n• {} ({}#{})",
            h.heading(),
            h.runbook_path,
            h.anchor
        ));
    }
    Message {
        text,
        blocks: Some(Value::Array(blocks)),
    }
}

/// One incident as the storm digest lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestEntry {
    pub id: i64,
    pub name: String,
    pub status: Status,
    pub severity: Severity,
    pub alerts: usize,
}

/// The storm digest: incidents grouped by alert name, most incidents first.
pub fn storm_digest(entries: &[DigestEntry], since: DateTime<Utc>) -> Message {
    let firing = entries
        .iter()
        .filter(|e| e.status == Status::Firing)
        .count();
    let alerts: usize = entries.iter().map(|e| e.alerts).sum();
    let head = format!(
        "🌩️ Alert storm: {} incidents ({} firing, {} alerts) since {}",
        entries.len(),
        firing,
        alerts,
        hhmm(since)
    );
    let mut by_name: BTreeMap<&str, Vec<&DigestEntry>> = BTreeMap::new();
    for e in entries {
        by_name.entry(e.name.as_str()).or_default().push(e);
    }
    let mut groups: Vec<(&str, Vec<&DigestEntry>)> = by_name.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn",
        "text": format!("*{}*\nOne digest instead of one thread per incident; `/sentinel incidents` lists them all.", escape(&head))}})];
    let shown = groups.len().min(45);
    for (name, es) in &groups[..shown] {
        let f = es.iter().filter(|e| e.status == Status::Firing).count();
        let worst = es
            .iter()
            .map(|e| e.severity)
            .max()
            .unwrap_or(Severity::Unknown);
        let ids: Vec<String> = es.iter().take(30).map(|e| format!("#{}", e.id)).collect();
        let more = if es.len() > 30 {
            format!(" … +{}", es.len() - 30)
        } else {
            String::new()
        };
        let line = format!(
            "*{}* · {} · {} incident(s), {f} firing: {}{more}",
            escape(name),
            worst.as_str(),
            es.len(),
            ids.join(" ")
        );
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
            "text": truncate_chars(&line, SECTION_MAX)}}));
    }
    if groups.len() > shown {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
            "text": format!("… and {} more alert names", groups.len() - shown)}]}));
    }
    let mut text = head;
    for (name, es) in &groups {
        text.push_str(&format!("\n{name}: {}", es.len()));
    }
    Message {
        text: truncate_chars(&text, 3900),
        blocks: Some(Value::Array(blocks)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, h, m, 0).unwrap()
    }

    fn view(n: usize) -> IncidentView {
        IncidentView {
            id: 7,
            name: "KubePodCrashLooping".into(),
            status: Status::Firing,
            severity: Severity::Warning,
            summary: Some("Pod is crash looping <fast> & hard.".into()),
            common_labels: [("namespace".to_string(), "checkout".to_string())].into(),
            alerts: (0..n)
                .map(|i| AlertLine {
                    status: if i == 0 {
                        Status::Resolved
                    } else {
                        Status::Firing
                    },
                    distinct: [("pod".to_string(), format!("api-{i}"))].into(),
                    starts_at: t(21, 4),
                    ends_at: (i == 0).then(|| t(21, 30)),
                })
                .collect(),
            links: vec![Link {
                kind: "runbook".into(),
                url: "https://r/x".into(),
            }],
            opened_at: t(21, 4),
            resolved_at: None,
            reopened: 0,
        }
    }

    fn all_text(m: &Message) -> String {
        m.blocks.as_ref().unwrap().to_string()
    }

    #[test]
    fn root_lists_one_line_per_alert_and_escapes() {
        let m = root_message(&view(3));
        assert!(
            m.text
                .starts_with("🔥 [FIRING] KubePodCrashLooping · warning (2 of 3 alerts firing)"),
            "{}",
            m.text
        );
        let b = all_text(&m);
        assert!(b.contains("✅ pod=`api-0` · resolved 21:30 UTC"), "{b}");
        assert!(b.contains("🔥 pod=`api-2` · since 21:04 UTC"));
        assert!(b.contains("&lt;fast&gt; &amp; hard"));
        assert!(b.contains("Incident #7"));
        assert!(b.contains("<https://r/x|runbook>"));
    }

    #[test]
    fn long_incidents_stay_within_slack_limits() {
        let m = root_message(&view(500));
        let blocks = m.blocks.unwrap();
        let arr = blocks.as_array().unwrap();
        assert!(arr.len() <= 50);
        for b in arr {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(t.chars().count() <= 3000);
            }
        }
        assert!(blocks.to_string().contains("and 480 more"));
    }

    #[test]
    fn resolved_and_reopened_titles() {
        let mut v = view(2);
        v.status = Status::Resolved;
        v.resolved_at = Some(t(21, 34));
        assert!(title(&v).starts_with("✅ [RESOLVED]"));
        assert_eq!(
            resolution_reply(&v).text,
            "✅ Resolved: all 2 alert(s) of incident #7 cleared after 30 min."
        );
        v.status = Status::Firing;
        v.reopened = 1;
        assert!(title(&v).contains("[FIRING AGAIN]"));
        assert!(reopen_reply(&v).text.contains("reopened 1 time(s)"));
    }

    #[test]
    fn digest_groups_by_alert_name() {
        let mut entries = Vec::new();
        for i in 0..120 {
            entries.push(DigestEntry {
                id: i,
                name: if i % 3 == 0 { "A".into() } else { "B".into() },
                status: Status::Firing,
                severity: Severity::Critical,
                alerts: 2,
            });
        }
        let m = storm_digest(&entries, t(21, 0));
        assert!(m
            .text
            .starts_with("🌩️ Alert storm: 120 incidents (120 firing, 240 alerts) since 21:00 UTC"));
        assert!(m.text.contains("\nB: 80\nA: 40"), "{}", m.text);
        let b = all_text(&m);
        assert!(b.contains("*B* · critical · 80 incident(s), 80 firing"));
        assert!(b.contains("+50"));
    }

    fn hit(kind: crate::knowledge::MatchKind) -> Hit {
        Hit {
            rank: 1,
            chunk_id: "c".into(),
            runbook_path: "kubernetes/kubepodcrashlooping.md".into(),
            runbook_title: "KubePodCrashLooping".into(),
            heading_path: vec!["KubePodCrashLooping".into(), "Diagnosis".into()],
            anchor: "diagnosis".into(),
            body: "Check the logs with kubectl logs.".into(),
            score: 1.0,
            matched_by: kind,
        }
    }

    #[test]
    fn runbook_reply_links_each_section() {
        let m = runbook_reply(
            &[hit(crate::knowledge::MatchKind::AlertName)],
            Some("https://git/x/"),
            false,
        );
        let b = all_text(&m);
        assert!(b.contains("<https://git/x/kubernetes/kubepodcrashlooping.md#diagnosis|KubePodCrashLooping &gt; Diagnosis>"), "{b}");
        assert!(b.contains("exact match"));
        let m = runbook_reply(&[hit(crate::knowledge::MatchKind::Hybrid)], None, false);
        assert!(all_text(&m).contains("`kubernetes/kubepodcrashlooping.md#diagnosis`"));
        assert!(!all_text(&m).contains("exact match"));
        assert!(runbook_reply(&[], None, false).text.contains("No runbook"));
        let d = runbook_reply(&[hit(crate::knowledge::MatchKind::Hybrid)], None, true);
        assert!(d.text.ends_with(DRAFTING_NOTE));
        let blocks = d.blocks.unwrap();
        assert_eq!(
            blocks.as_array().unwrap().last().unwrap()["type"],
            "context"
        );
        let none = runbook_reply(&[], None, true);
        assert!(none.text.contains("No runbook") && none.text.contains(DRAFTING_NOTE));
        assert_eq!(none.blocks.unwrap().as_array().unwrap().len(), 2);
    }
}

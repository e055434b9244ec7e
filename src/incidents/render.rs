//! Pure rendering of incident messages: root (text + Block Kit), resolution and reopen
//! replies, runbook reply, storm digest. Built from the Slack message vocabulary, so every
//! label, summary and runbook excerpt is redacted and escaped, and Slack's limits hold.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::alerts::model::{Link, Severity, Status};
use crate::knowledge::{Hit, MatchKind};
use crate::mrkdwn;
use crate::slack::blocks::{context, section};
use crate::slack::message::{section_link, section_url, SectionRef};
use crate::slack::{Message, Mrkdwn};

/// Lines of alerts listed in a root before "and N more".
pub const MAX_ALERT_LINES: usize = 20;

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

fn status_icon(s: Status) -> &'static str {
    match s {
        Status::Firing => "🔥",
        Status::Resolved => "✅",
    }
}

fn hhmm(t: DateTime<Utc>) -> Mrkdwn {
    Mrkdwn::own(t.format("%H:%M UTC").to_string())
}

/// `🔥 [FIRING] KubePodCrashLooping · warning (2 of 3 alerts firing)`.
pub fn title(v: &IncidentView) -> Mrkdwn {
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
    mrkdwn!(
        "{} [{}] {} · {} ({} of {} alerts firing)",
        Mrkdwn::own(status_icon(v.status)),
        Mrkdwn::own(state),
        Mrkdwn::untrusted(&v.name),
        Mrkdwn::own(v.severity.as_str()),
        firing,
        v.alerts.len()
    )
}

/// `key=`value`` pairs, redacted and escaped.
fn label_pairs<'a>(labels: impl Iterator<Item = (&'a String, &'a String)>) -> Vec<Mrkdwn> {
    labels
        .map(|(k, v)| mrkdwn!("{}={}", Mrkdwn::untrusted(k), Mrkdwn::code(v)))
        .collect()
}

/// One line per alert: `🔥 pod=`checkout-api-x2k4q` · since 21:04 UTC`.
pub fn alert_line(a: &AlertLine) -> Mrkdwn {
    let labels = label_pairs(a.distinct.iter());
    let labels = if labels.is_empty() {
        Mrkdwn::own("(no distinguishing labels)")
    } else {
        Mrkdwn::join(labels, " ")
    };
    match (a.status, a.ends_at) {
        (Status::Resolved, Some(end)) => mrkdwn!("✅ {} · resolved {}", labels, hhmm(end)),
        (Status::Resolved, None) => mrkdwn!("✅ {} · resolved", labels),
        (Status::Firing, _) => mrkdwn!("🔥 {} · since {}", labels, hhmm(a.starts_at)),
    }
}

/// The incident's links (one per kind), each showing its kind.
fn links_line(links: &[Link]) -> Option<Mrkdwn> {
    let mut seen = Vec::new();
    let parts: Vec<Mrkdwn> = links
        .iter()
        .filter(|l| {
            let new = !seen.contains(&l.kind);
            seen.push(l.kind.clone());
            new
        })
        .map(|l| Mrkdwn::link(&l.url, &Mrkdwn::untrusted(&l.kind)))
        .collect();
    (!parts.is_empty()).then(|| Mrkdwn::join(parts, " · "))
}

/// The root message: updated in place as alerts join, resolve or fire again.
pub fn root_message(v: &IncidentView) -> Message {
    let head = title(v);
    let mut blocks = vec![section(&Mrkdwn::bold(&head))];
    let mut about = Vec::new();
    if let Some(s) = &v.summary {
        about.push(Mrkdwn::untrusted(s));
    }
    let common = label_pairs(
        v.common_labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname"),
    );
    if !common.is_empty() {
        about.push(Mrkdwn::join(common, " "));
    }
    let about = Mrkdwn::join(about, "\n");
    if !about.is_empty() {
        blocks.push(section(&about));
    }
    let mut lines: Vec<Mrkdwn> = v
        .alerts
        .iter()
        .take(MAX_ALERT_LINES)
        .map(alert_line)
        .collect();
    if v.alerts.len() > MAX_ALERT_LINES {
        lines.push(mrkdwn!("… and {} more", v.alerts.len() - MAX_ALERT_LINES));
    }
    if !lines.is_empty() {
        blocks.push(section(&Mrkdwn::join(lines, "\n")));
    }
    let mut ctx = mrkdwn!("Incident #{} · opened {}", v.id, hhmm(v.opened_at));
    if let Some(r) = v.resolved_at.filter(|_| v.status == Status::Resolved) {
        ctx.push(&mrkdwn!(" · resolved {}", hhmm(r)));
    }
    if let Some(l) = links_line(&v.links) {
        ctx.push(&mrkdwn!(" · {}", l));
    }
    blocks.push(context(&[ctx]));
    let mut text = head;
    if let Some(s) = &v.summary {
        text.push(&mrkdwn!(" — {}", Mrkdwn::untrusted(s)));
    }
    Message::new(&text, blocks)
}

/// The one short thread reply when every alert of the incident has resolved.
pub fn resolution_reply(v: &IncidentView) -> Message {
    let mins = v
        .resolved_at
        .map(|r| (r - v.opened_at).num_minutes().max(0))
        .unwrap_or(0);
    Message::text_only(&mrkdwn!(
        "✅ Resolved: all {} alert(s) of incident #{} cleared after {} min.",
        v.alerts.len(),
        v.id,
        mins
    ))
}

/// The thread reply when a resolved incident fires again.
pub fn reopen_reply(v: &IncidentView) -> Message {
    let firing = v
        .alerts
        .iter()
        .filter(|a| a.status == Status::Firing)
        .count();
    Message::text_only(&mrkdwn!(
        "🔥 Firing again: {} alert(s) of incident #{} (reopened {} time(s)).",
        firing,
        v.id,
        v.reopened
    ))
}

/// A search hit as a linked runbook section (see `slack::message::section_link`).
pub fn hit_link(h: &Hit, base: Option<&str>) -> Mrkdwn {
    let url = section_url(base, &h.runbook_path, &h.anchor);
    section_link(&SectionRef {
        runbook_title: &h.runbook_title,
        heading: &h.heading(),
        runbook_path: &h.runbook_path,
        anchor: &h.anchor,
        url: url.as_deref(),
    })
}

/// Shown under the runbook sections while the diagnosis is drafted (then edited away).
pub const DRAFTING_NOTE: &str = "⏳ Drafting a diagnosis from these sections…";

/// The runbook reply for a new incident: the best sections, each linked to its source.
/// With `drafting`, it also says a diagnosis is on its way (it replaces this reply).
pub fn runbook_reply(hits: &[Hit], base: Option<&str>, drafting: bool) -> Message {
    let mut msg = runbook_sections(hits, base);
    if drafting {
        if msg.blocks().is_empty() {
            msg = Message::new(
                &Mrkdwn::own(msg.text()),
                vec![section(&Mrkdwn::own(msg.text()))],
            );
        }
        msg.push(context(&[Mrkdwn::own(DRAFTING_NOTE)]));
        msg.push_text_line(&Mrkdwn::own(DRAFTING_NOTE));
    }
    msg
}

fn runbook_sections(hits: &[Hit], base: Option<&str>) -> Message {
    if hits.is_empty() {
        return Message::text_only(&Mrkdwn::own(
            "📖 No runbook in the knowledge base matches this alert yet.",
        ));
    }
    let mut blocks = vec![section(&Mrkdwn::own(
        "📖 *Runbook sections that match this alert*",
    ))];
    let mut text = vec![Mrkdwn::own("📖 Runbook sections that match this alert:")];
    for h in hits.iter().take(5) {
        let exact = match h.matched_by {
            MatchKind::Hybrid => "",
            _ => " · exact match",
        };
        let excerpt = crate::text::excerpt(&h.body, 400);
        blocks.push(section(&mrkdwn!(
            "{}{}\n{}",
            hit_link(h, base),
            Mrkdwn::own(exact),
            Mrkdwn::untrusted(&excerpt)
        )));
        text.push(mrkdwn!(
            "• {} ({})",
            Mrkdwn::untrusted(&h.heading()),
            Mrkdwn::untrusted(&format!("{}#{}", h.runbook_path, h.anchor))
        ));
    }
    Message::new(&Mrkdwn::join(text, "\n"), blocks)
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

/// Alert names listed in the digest's blocks (each a section) before "and N more".
const DIGEST_NAMES: usize = 45;
/// Incident ids listed per alert name.
const DIGEST_IDS: usize = 30;

/// The storm digest: incidents grouped by alert name, most incidents first.
pub fn storm_digest(entries: &[DigestEntry], since: DateTime<Utc>) -> Message {
    let firing = entries
        .iter()
        .filter(|e| e.status == Status::Firing)
        .count();
    let alerts: usize = entries.iter().map(|e| e.alerts).sum();
    let head = mrkdwn!(
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
    let mut blocks = vec![section(&mrkdwn!(
        "{}\nOne digest instead of one thread per incident; `/sentinel incidents` lists them all.",
        Mrkdwn::bold(&head)
    ))];
    let shown = groups.len().min(DIGEST_NAMES);
    for (name, es) in &groups[..shown] {
        let f = es.iter().filter(|e| e.status == Status::Firing).count();
        let worst = es
            .iter()
            .map(|e| e.severity)
            .max()
            .unwrap_or(Severity::Unknown);
        let ids: Vec<Mrkdwn> = es
            .iter()
            .take(DIGEST_IDS)
            .map(|e| mrkdwn!("#{}", e.id))
            .collect();
        let more = if es.len() > DIGEST_IDS {
            mrkdwn!(" … +{}", es.len() - DIGEST_IDS)
        } else {
            Mrkdwn::default()
        };
        blocks.push(section(&mrkdwn!(
            "{} · {} · {} incident(s), {} firing: {}{}",
            Mrkdwn::bold(&Mrkdwn::untrusted(name)),
            Mrkdwn::own(worst.as_str()),
            es.len(),
            f,
            Mrkdwn::join(ids, " "),
            more
        )));
    }
    if groups.len() > shown {
        blocks.push(context(&[mrkdwn!(
            "… and {} more alert names",
            groups.len() - shown
        )]));
    }
    let mut text = vec![head];
    for (name, es) in &groups {
        text.push(mrkdwn!("{}: {}", Mrkdwn::untrusted(name), es.len()));
    }
    Message::new(&Mrkdwn::join(text, "\n"), blocks)
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
        serde_json::Value::from(m.blocks().to_vec()).to_string()
    }

    #[test]
    fn root_lists_one_line_per_alert_and_escapes() {
        let m = root_message(&view(3));
        assert!(
            m.text()
                .starts_with("🔥 [FIRING] KubePodCrashLooping · warning (2 of 3 alerts firing)"),
            "{}",
            m.text()
        );
        let b = all_text(&m);
        assert!(b.contains("✅ pod=`api-0` · resolved 21:30 UTC"), "{b}");
        assert!(b.contains("🔥 pod=`api-2` · since 21:04 UTC"));
        assert!(b.contains("&lt;fast&gt; &amp; hard"));
        assert!(b.contains("Incident #7"));
        assert!(b.contains("<https://r/x|runbook (r)>"), "{b}");
    }

    #[test]
    fn long_incidents_stay_within_slack_limits() {
        let m = root_message(&view(500));
        let arr = m.blocks();
        assert!(arr.len() <= 50);
        for b in arr {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(t.chars().count() <= 3000);
            }
        }
        assert!(all_text(&m).contains("and 480 more"));
    }

    #[test]
    fn resolved_and_reopened_titles() {
        let mut v = view(2);
        v.status = Status::Resolved;
        v.resolved_at = Some(t(21, 34));
        assert!(title(&v).as_str().starts_with("✅ [RESOLVED]"));
        assert_eq!(
            resolution_reply(&v).text(),
            "✅ Resolved: all 2 alert(s) of incident #7 cleared after 30 min."
        );
        v.status = Status::Firing;
        v.reopened = 1;
        assert!(title(&v).as_str().contains("[FIRING AGAIN]"));
        assert!(reopen_reply(&v).text().contains("reopened 1 time(s)"));
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
            .text()
            .starts_with("🌩️ Alert storm: 120 incidents (120 firing, 240 alerts) since 21:00 UTC"));
        assert!(m.text().contains("\nB: 80\nA: 40"), "{}", m.text());
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
        assert!(b.contains("<https://git/x/kubernetes/kubepodcrashlooping.md#diagnosis|KubePodCrashLooping &gt; Diagnosis (git)>"), "{b}");
        assert!(b.contains("exact match"));
        let m = runbook_reply(&[hit(crate::knowledge::MatchKind::Hybrid)], None, false);
        assert!(all_text(&m).contains("`kubernetes/kubepodcrashlooping.md#diagnosis`"));
        assert!(!all_text(&m).contains("exact match"));
        assert!(runbook_reply(&[], None, false)
            .text()
            .contains("No runbook"));
        let d = runbook_reply(&[hit(crate::knowledge::MatchKind::Hybrid)], None, true);
        assert!(d.text().ends_with(DRAFTING_NOTE));
        assert_eq!(d.blocks().last().unwrap()["type"], "context");
        let none = runbook_reply(&[], None, true);
        assert!(none.text().contains("No runbook") && none.text().contains(DRAFTING_NOTE));
        assert_eq!(none.blocks().len(), 2);
    }
}

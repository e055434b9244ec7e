//! The runbook-based diagnosis (pure): the best runbook's Meaning / Diagnosis / Mitigation
//! sections, used when no LLM is configured or it fails. Never silence.

use super::catalog::Catalog;
use super::{Fallback, FallbackReason, FallbackRunbook};

/// One chunk of a runbook: heading path, anchor, body (in document order).
#[derive(Debug, Clone)]
pub struct Section {
    pub heading_path: Vec<String>,
    pub anchor: String,
    pub body: String,
}

/// Which part of a runbook a heading names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Meaning,
    Diagnosis,
    Mitigation,
}

/// Classifies a section heading (`Meaning`, `Troubleshooting`, `Remediation`, ...).
pub fn part_of(heading: &str) -> Option<Part> {
    let h = heading.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| h.contains(w));
    if has(&[
        "meaning",
        "overview",
        "description",
        "what it means",
        "summary",
    ]) {
        Some(Part::Meaning)
    } else if has(&[
        "diagnos",
        "investigat",
        "troubleshoot",
        "triage",
        "debug",
        "checks",
    ]) {
        Some(Part::Diagnosis)
    } else if has(&[
        "mitigat",
        "remediat",
        "resolution",
        "resolv",
        "fix",
        "recover",
        "workaround",
    ]) {
        Some(Part::Mitigation)
    } else {
        None
    }
}

/// Builds the runbook-based diagnosis from the best runbook's sections.
pub fn build(
    reason: FallbackReason,
    best: Option<(&str, &str)>,
    sections: &[Section],
    catalog: &Catalog,
    base_url: Option<&str>,
) -> Fallback {
    let runbook = best.map(|(path, title)| {
        let mut rb = FallbackRunbook {
            runbook_title: title.to_string(),
            runbook_path: path.to_string(),
            url: catalog.link(base_url, path, ""),
            ..Default::default()
        };
        for s in sections {
            let Some(part) = s.heading_path.last().and_then(|h| part_of(h)) else {
                continue;
            };
            let slot = match part {
                Part::Meaning => &mut rb.meaning,
                Part::Diagnosis => &mut rb.diagnosis,
                Part::Mitigation => &mut rb.mitigation,
            };
            let body = s.body.trim();
            if body.is_empty() {
                continue;
            }
            match slot {
                Some(existing) => {
                    existing.push_str("\n\n");
                    existing.push_str(body);
                }
                None => *slot = Some(body.to_string()),
            }
        }
        // A runbook without the usual headings still says something: its first section.
        if rb.meaning.is_none() && rb.diagnosis.is_none() && rb.mitigation.is_none() {
            rb.meaning = sections
                .iter()
                .map(|s| s.body.trim())
                .find(|b| !b.is_empty())
                .map(str::to_string);
        }
        rb
    });
    let actions = catalog
        .actions
        .values()
        .filter(|e| best.is_some_and(|(p, _)| p == e.runbook_path))
        .map(|e| (e.action.id.clone(), e.action.title.clone()))
        .collect();
    Fallback {
        reason,
        runbook,
        actions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sec(h: &str, body: &str) -> Section {
        Section {
            heading_path: vec!["Title".into(), h.into()],
            anchor: h.to_lowercase(),
            body: body.into(),
        }
    }

    #[test]
    fn headings_are_classified() {
        assert_eq!(part_of("Meaning"), Some(Part::Meaning));
        assert_eq!(part_of("Troubleshooting steps"), Some(Part::Diagnosis));
        assert_eq!(part_of("Remediation"), Some(Part::Mitigation));
        assert_eq!(part_of("Impact"), None);
        assert_eq!(part_of("Escalation"), None);
    }

    #[test]
    fn picks_meaning_diagnosis_mitigation_and_joins_split_parts() {
        let sections = [
            sec("Meaning", "Pods restart."),
            sec("Impact", "Lost orders."),
            sec("Diagnosis", "Read logs."),
            sec("Diagnosis", "Check events."),
            sec("Mitigation", "Roll back."),
        ];
        let fb = build(
            FallbackReason::NoLlm,
            Some(("c/crash.md", "Crash")),
            &sections,
            &Catalog::default(),
            Some("https://git.example/rb"),
        );
        let rb = fb.runbook.unwrap();
        assert_eq!(rb.meaning.as_deref(), Some("Pods restart."));
        assert_eq!(rb.diagnosis.as_deref(), Some("Read logs.\n\nCheck events."));
        assert_eq!(rb.mitigation.as_deref(), Some("Roll back."));
        assert_eq!(rb.url.as_deref(), Some("https://git.example/rb/c/crash.md"));
    }

    #[test]
    fn runbook_without_usual_headings_uses_first_section() {
        let fb = build(
            FallbackReason::Timeout,
            Some(("x.md", "X")),
            &[sec("Notes", "Call Bob.")],
            &Catalog::default(),
            None,
        );
        assert_eq!(fb.runbook.unwrap().meaning.as_deref(), Some("Call Bob."));
    }

    #[test]
    fn no_runbook_is_still_a_diagnosis() {
        let fb = build(FallbackReason::NoLlm, None, &[], &Catalog::default(), None);
        assert!(fb.runbook.is_none());
        assert_eq!(fb.reason, FallbackReason::NoLlm);
    }
}

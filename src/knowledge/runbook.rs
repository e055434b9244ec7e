//! Runbook documents: markdown with optional YAML front matter, parsed without I/O.
//!
//! Our front matter (`title`, `alerts`, `services`, `tags`, `urls`, `actions`) is optional;
//! other tools' front matter (Hugo's `title`/`weight`) and plain markdown ingest fine.

use serde::Deserialize;

use super::actions::Action;

/// A parsed runbook, ready for chunking.
#[derive(Debug, Clone, PartialEq)]
pub struct Runbook {
    /// Identity: the path relative to the folder that was ingested, with `/` separators.
    pub path: String,
    pub title: String,
    pub alerts: Vec<String>,
    pub services: Vec<String>,
    pub tags: Vec<String>,
    pub urls: Vec<String>,
    pub actions: Vec<Action>,
    /// The markdown after the front matter.
    pub body: String,
}

/// Front matter as written. Unknown keys are ignored (other tools add their own).
#[derive(Debug, Default, Deserialize)]
struct FrontMatter {
    #[serde(default)]
    title: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    alerts: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    services: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    tags: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    urls: Vec<String>,
    #[serde(default)]
    actions: Vec<Action>,
}

/// Accepts `alerts: X` as well as `alerts: [X, Y]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
        Null(()),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
        OneOrMany::Null(()) => Vec::new(),
    })
}

/// Parses a runbook. `path` is its identity; the error is a sentence without the path.
pub fn parse(path: &str, text: &str) -> Result<Runbook, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (fm, body) = split_front_matter(text)?;
    let fm: FrontMatter = match fm {
        Some(yaml) if !yaml.trim().is_empty() => {
            serde_yaml::from_str(yaml).map_err(|e| format!("bad front matter: {e}"))?
        }
        _ => FrontMatter::default(),
    };
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for a in &fm.actions {
        if !seen.insert(a.id.clone()) {
            problems.push(format!("action id `{}` is declared twice", a.id));
        }
        if let Err(p) = a.validate() {
            problems.extend(p);
        }
    }
    if !problems.is_empty() {
        return Err(format!("bad actions: {}", problems.join("; ")));
    }
    let clean = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let title = fm
        .title
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .or_else(|| first_h1(body))
        .unwrap_or_else(|| file_stem(path).to_string());
    Ok(Runbook {
        path: path.to_string(),
        title,
        alerts: clean(fm.alerts),
        services: clean(fm.services),
        tags: clean(fm.tags),
        urls: clean(fm.urls),
        actions: fm.actions,
        body: body.to_string(),
    })
}

/// Splits `---\nyaml\n---\nbody`. A document that does not open with `---` has none.
fn split_front_matter(text: &str) -> Result<(Option<&str>, &str), String> {
    let first_line_end = text.find('\n').unwrap_or(text.len());
    if text[..first_line_end].trim_end() != "---" {
        return Ok((None, text));
    }
    let rest = &text[(first_line_end + 1).min(text.len())..];
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        let t = line.trim_end();
        if t == "---" || t == "..." {
            let yaml = &rest[..offset];
            let body = &rest[offset + line.len()..];
            return Ok((Some(yaml), body));
        }
        offset += line.len();
    }
    Err("front matter opened with `---` is never closed".to_string())
}

fn first_h1(body: &str) -> Option<String> {
    let mut in_fence = false;
    for line in body.lines() {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
        }
        if !in_fence {
            if let Some(h) = t.strip_prefix("# ") {
                let h = h.trim().trim_end_matches('#').trim();
                if !h.is_empty() {
                    return Some(h.to_string());
                }
            }
        }
    }
    None
}

/// `kubernetes/KubePodCrashLooping.md` -> `KubePodCrashLooping`.
pub fn file_stem(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rfind('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    }
}

/// Lower-case alphanumerics only: `Kube Pod Crash-Looping` and `KubePodCrashLooping` agree.
pub fn normalize_key(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

impl Runbook {
    /// Keys an alert name is matched against exactly: declared alerts, title, file name.
    pub fn match_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .alerts
            .iter()
            .map(|a| normalize_key(a))
            .chain([
                normalize_key(&self.title),
                normalize_key(file_stem(&self.path)),
            ])
            .filter(|k| !k.is_empty())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = r#"---
title: Checkout API is down
alerts: [CheckoutApiDown, CheckoutHighErrorRate]
services: checkout
tags: [payments, tier-1]
urls:
  - https://wiki.example.com/runbooks/checkout-api
actions:
  - id: restart
    title: Restart checkout-api
    command: ["kubectl", "-n", "checkout", "rollout", "restart", "deployment/checkout-api"]
---
# Checkout API

## Meaning
It is down.
"#;

    #[test]
    fn parses_our_front_matter() {
        let r = parse("shop/checkout.md", OURS).unwrap();
        assert_eq!(r.title, "Checkout API is down");
        assert_eq!(r.alerts, ["CheckoutApiDown", "CheckoutHighErrorRate"]);
        assert_eq!(r.services, ["checkout"]);
        assert_eq!(r.tags, ["payments", "tier-1"]);
        assert_eq!(r.urls.len(), 1);
        assert_eq!(r.actions[0].id, "restart");
        assert!(r.body.starts_with("# Checkout API"));
    }

    #[test]
    fn hugo_front_matter_is_fine() {
        let r = parse(
            "k/KubePodCrashLooping.md",
            "---\ntitle: Kube Pod Crash Looping\nweight: 20\n---\n\n# KubePodCrashLooping\n",
        )
        .unwrap();
        assert_eq!(r.title, "Kube Pod Crash Looping");
        assert!(r.alerts.is_empty());
        assert!(r.match_keys().contains(&"kubepodcrashlooping".to_string()));
    }

    #[test]
    fn plain_markdown_takes_first_h1_or_file_name() {
        assert_eq!(
            parse("a.md", "intro\n# Redis\ntext").unwrap().title,
            "Redis"
        );
        assert_eq!(parse("dir/b-c.md", "no headings").unwrap().title, "b-c");
        // A `#` inside a code fence is not a heading.
        assert_eq!(
            parse("x.md", "```\n# comment\n```\n# Real\n")
                .unwrap()
                .title,
            "Real"
        );
    }

    #[test]
    fn unclosed_front_matter_is_an_error() {
        let e = parse("x.md", "---\ntitle: x\n# body").unwrap_err();
        assert!(e.contains("never closed"));
    }

    #[test]
    fn bad_yaml_is_an_error() {
        let e = parse("x.md", "---\ntitle: [unclosed\n---\nbody").unwrap_err();
        assert!(e.starts_with("bad front matter"), "{e}");
    }

    #[test]
    fn bad_actions_are_reported() {
        let text = "---\nactions:\n  - id: a\n    title: A\n    command: [bash, -c, x]\n  - id: a\n    title: B\n    command: [ls]\n---\n";
        let e = parse("x.md", text).unwrap_err();
        assert!(
            e.contains("without a shell") && e.contains("declared twice"),
            "{e}"
        );
    }

    #[test]
    fn bom_and_crlf_and_null_lists() {
        let r = parse("x.md", "\u{feff}---\r\ntitle: T\r\nalerts:\r\n---\r\nbody").unwrap();
        assert_eq!(r.title, "T");
        assert!(r.alerts.is_empty());
    }

    #[test]
    fn normalized_keys() {
        assert_eq!(
            normalize_key("Kube Pod Crash-Looping"),
            "kubepodcrashlooping"
        );
        assert_eq!(file_stem("a/b/c.md"), "c");
        assert_eq!(file_stem(".hidden"), ".hidden");
    }
}

//! Pure query building: the OR-ed full-text query and runbook-URL matching keys.
//!
//! `websearch_to_tsquery` ANDs every term, so a long alert text would match nothing.
//! We OR the words instead and let ranking sort it out.

use super::runbook::normalize_key;

/// English words too common to help ranking; Postgres drops its own stop words too,
/// these are the alert-text regulars it keeps.
const NOISE: &[&str] = &[
    "has", "have", "been", "is", "are", "was", "the", "a", "an", "of", "for", "to", "in", "on",
    "and", "or", "not", "than", "more", "less", "its", "it", "be", "by", "with", "at", "from",
    "this", "that", "which", "will", "can", "may", "only",
];

/// Builds a `to_tsquery('english', ...)` input that ORs the distinct words of `text`.
/// Returns `None` when no searchable word remains. Only `[a-z0-9]` reaches the query,
/// so user text cannot inject tsquery operators.
pub fn or_tsquery(text: &str) -> Option<String> {
    let mut words: Vec<String> = Vec::new();
    for raw in text.split(|c: char| !c.is_alphanumeric()) {
        let w: String = raw
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .flat_map(|c| c.to_lowercase())
            .collect();
        if w.len() < 2 || w.len() > 64 || NOISE.contains(&w.as_str()) {
            continue;
        }
        if !words.contains(&w) {
            words.push(w);
        }
        if words.len() >= 64 {
            break;
        }
    }
    if words.is_empty() {
        None
    } else {
        Some(words.join(" | "))
    }
}

/// The path segments of a runbook URL, normalised for matching against runbook paths:
/// `https://x/runbooks/kubernetes/KubePodCrashLooping.md#x` ->
/// `["runbooks", "kubernetes", "kubepodcrashlooping"]`.
pub fn url_segments(url: &str) -> Vec<String> {
    let no_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let no_frag = no_scheme.split(['#', '?']).next().unwrap_or("");
    let path = no_frag.split_once('/').map(|(_, p)| p).unwrap_or("");
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| normalize_key(strip_ext(s)))
        .filter(|s| !s.is_empty())
        .collect()
}

/// A URL in comparable form: no scheme, no fragment or query, no trailing slash, lower-case.
pub fn normalize_url(url: &str) -> String {
    let no_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let no_frag = no_scheme.split(['#', '?']).next().unwrap_or("");
    strip_ext(no_frag.trim_end_matches('/')).to_lowercase()
}

fn strip_ext(s: &str) -> &str {
    s.strip_suffix(".md")
        .or_else(|| s.strip_suffix(".markdown"))
        .or_else(|| s.strip_suffix(".html"))
        .unwrap_or(s)
}

/// The segments of a runbook path in the same form as `url_segments`.
pub fn path_segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| normalize_key(strip_ext(s)))
        .collect()
}

/// How many trailing segments of the URL match the runbook path (0 = no match).
pub fn url_path_match(url_segs: &[String], path_segs: &[String]) -> usize {
    url_segs
        .iter()
        .rev()
        .zip(path_segs.iter().rev())
        .take_while(|(a, b)| a == b)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ors_distinct_words() {
        assert_eq!(
            or_tsquery("Pod is crash looping. Pod restarts!").unwrap(),
            "pod | crash | looping | restarts"
        );
    }

    #[test]
    fn operators_cannot_be_injected() {
        let q = or_tsquery("alpha & !beta | gamma:* <-> 'delta' (eps)").unwrap();
        assert_eq!(q, "alpha | beta | gamma | delta | eps");
        assert!(
            q.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '|'),
            "{q}"
        );
    }

    #[test]
    fn nothing_searchable() {
        assert_eq!(or_tsquery("  !!! ?? a "), None);
        assert_eq!(or_tsquery(""), None);
    }

    #[test]
    fn caps_word_count() {
        let text: String = (0..200).map(|i| format!("w{i} ")).collect();
        assert_eq!(or_tsquery(&text).unwrap().split(" | ").count(), 64);
    }

    #[test]
    fn url_segments_normalised() {
        assert_eq!(
            url_segments("https://runbooks.prometheus-operator.dev/runbooks/kubernetes/KubePodCrashLooping.md#diag"),
            ["runbooks", "kubernetes", "kubepodcrashlooping"]
        );
        assert!(url_segments("https://example.com").is_empty());
    }

    #[test]
    fn url_matches_path_suffix() {
        let u = url_segments(
            "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
        );
        let p = path_segments("prometheus-operator/kubernetes/KubePodCrashLooping.md");
        assert_eq!(url_path_match(&u, &p), 2);
        let other = path_segments("gitlab/kube/KubePodCrashLooping.md");
        assert_eq!(url_path_match(&u, &other), 1);
        assert_eq!(url_path_match(&u, &path_segments("x/Other.md")), 0);
    }

    #[test]
    fn normalize_urls() {
        assert_eq!(
            normalize_url("HTTPS://Wiki.example.com/runbooks/checkout/?x=1#a"),
            "wiki.example.com/runbooks/checkout"
        );
    }
}

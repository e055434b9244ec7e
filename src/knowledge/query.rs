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

/// Splits mixed-case identifiers (`KubeAPIDown`, `NodeFilesystemSpaceFillingUp`) into
/// their words plus adjacent joins, lower-cased: `kube api down kubeapi apidown kubeapidown`.
///
/// Alert, metric and resource names are CamelCase in runbooks and alert text, and people
/// write them partly (`KubeAPI`, `StatefulSet`); Postgres keeps each as one opaque lexeme.
/// Indexing and querying these extra words lets `KubeAPI` meet `KubeAPIDown`.
pub fn identifier_terms(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for tok in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        let parts = camel_parts(tok);
        if parts.len() < 2 {
            continue;
        }
        for (i, p) in parts.iter().enumerate() {
            out.push(p.clone());
            if let Some(next) = parts.get(i + 1) {
                out.push(format!("{p}{next}"));
                if let Some(third) = parts.get(i + 2) {
                    out.push(format!("{p}{next}{third}"));
                }
            }
        }
        if out.len() > 4096 {
            break;
        }
    }
    out.join(" ")
}

/// The lower-cased words of a mixed-case identifier; empty for anything else (all lower,
/// all upper, too long).
pub(crate) fn camel_parts(tok: &str) -> Vec<String> {
    let chars: Vec<char> = tok.chars().collect();
    let mixed = chars.iter().skip(1).any(char::is_ascii_uppercase)
        && chars.iter().any(char::is_ascii_lowercase);
    if !mixed || chars.len() > 80 || !chars[0].is_ascii_alphabetic() {
        return Vec::new();
    }
    let mut parts = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1);
        let boundary = match prev {
            None => false,
            Some(p) => {
                (p.is_ascii_lowercase() && c.is_ascii_uppercase())
                    // `APIDown`: the last capital of a run starts the next word.
                    || (p.is_ascii_uppercase()
                        && c.is_ascii_uppercase()
                        && next.is_some_and(char::is_ascii_lowercase))
                    || (p.is_ascii_digit() != c.is_ascii_digit())
            }
        };
        if boundary && !cur.is_empty() {
            parts.push(std::mem::take(&mut cur));
        }
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    parts
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

/// A URL in comparable form: no scheme, no fragment or query, no trailing slash, lower-case,
/// no control characters (no URL has them, and Postgres refuses NUL in text).
pub fn normalize_url(url: &str) -> String {
    let no_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let no_frag = no_scheme.split(['#', '?']).next().unwrap_or("");
    strip_ext(no_frag.trim_end_matches('/'))
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(char::to_lowercase)
        .collect()
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
    fn urls_lose_scheme_fragment_slash_case_and_control_characters() {
        assert_eq!(
            normalize_url("HTTPS://Wiki.example.com/Runbooks/Disk.md/#top"),
            "wiki.example.com/runbooks/disk"
        );
        assert_eq!(normalize_url("https://w\0iki/a\u{7}b/"), "wiki/ab");
    }

    #[test]
    fn identifiers_split_into_words_and_joins() {
        assert_eq!(
            identifier_terms("KubeAPIDown"),
            "kube kubeapi kubeapidown api apidown down"
        );
        assert_eq!(identifier_terms("the KubeAPI server"), "kube kubeapi api");
        assert_eq!(identifier_terms("StatefulSet"), "stateful statefulset set");
        assert_eq!(
            identifier_terms("http2Errors"),
            "http http2 http2errors 2 2errors errors"
        );
    }

    #[test]
    fn plain_words_and_acronyms_add_nothing() {
        assert_eq!(identifier_terms("disk full on node"), "");
        assert_eq!(identifier_terms("HTTP API CPU"), "");
        assert_eq!(identifier_terms("Kubernetes"), "");
        assert_eq!(identifier_terms(""), "");
    }

    #[test]
    fn identifier_terms_are_bounded() {
        let long = "AbCd".repeat(100);
        assert_eq!(identifier_terms(&long), "");
        let many = "FooBar ".repeat(5000);
        assert!(identifier_terms(&many).split(' ').count() < 4200);
    }

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

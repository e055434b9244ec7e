//! Small text helpers: words, excerpts and cutting on character boundaries.

/// Cuts `s` to at most `max` characters on a char boundary, adding `…` when cut.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The lower-cased alphanumeric words of a text.
pub fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// One line of at most `max` characters: whitespace folded.
pub fn excerpt(s: &str, max: usize) -> String {
    let folded = s.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate_chars(&folded, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lower_case_alphanumeric_runs() {
        assert_eq!(
            words("Node_Disk-Pressure: 95% on ip-10!"),
            ["node", "disk", "pressure", "95", "on", "ip", "10"]
        );
        assert!(words(" -- ").is_empty());
    }

    #[test]
    fn cuts_on_char_boundaries() {
        assert_eq!(truncate_chars("héllo wörld", 5), "héll…");
        assert_eq!(truncate_chars("short", 10), "short");
        assert_eq!(truncate_chars("🙂🙂🙂", 2), "🙂…");
    }

    #[test]
    fn excerpt_folds_whitespace() {
        assert_eq!(excerpt("a\n\n  b\tc", 10), "a b c");
    }
}

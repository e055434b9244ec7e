//! Splits a runbook into retrieval chunks by headings, within the embedding model's token limit.
//!
//! Each chunk keeps its heading path (title > H1 > H2 ...) as context: it is prepended to
//! the text that gets embedded and weighted high in full-text search. Long sections are
//! split on paragraphs, then lines, then words. Ids are stable across re-ingests: they
//! depend on the runbook path, the heading path and the part number, not on the text.
//!
//! Secrets are redacted before the text is cut: a private key (PEM, OpenSSH, PGP) becomes
//! one `[REDACTED]` instead of being split across chunks where no pattern would know it.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::runbook::{normalize_key, Runbook};
use crate::redact::redact_patterns;

#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub id: String,
    pub ord: i32,
    pub heading_path: Vec<String>,
    /// GitHub-style anchor of the innermost heading, for links to the section.
    pub anchor: String,
    pub body: String,
    /// What the embedder sees: heading path, then body.
    pub embed_text: String,
    pub content_hash: String,
}

/// Counts tokens the way the embedding model does (word pieces, without special tokens).
pub trait TokenCounter {
    fn count(&self, text: &str) -> usize;
}

impl<F: Fn(&str) -> usize> TokenCounter for F {
    fn count(&self, text: &str) -> usize {
        self(text)
    }
}

struct Section {
    headings: Vec<String>,
    text: String,
}

/// Splits the body into sections at ATX headings outside code fences.
fn sections(title: &str, body: &str) -> Vec<Section> {
    let mut out = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut current = String::new();
    let mut in_fence = false;
    let path_of = |stack: &[(usize, String)]| -> Vec<String> {
        let mut p = vec![title.to_string()];
        for (_, h) in stack {
            if p.len() == 1 && normalize_key(h) == normalize_key(title) {
                continue;
            }
            p.push(h.clone());
        }
        p
    };
    for line in body.lines() {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
        }
        let heading = if in_fence { None } else { parse_heading(line) };
        match heading {
            Some((level, text)) => {
                if !current.trim().is_empty() {
                    out.push(Section {
                        headings: path_of(&stack),
                        text: std::mem::take(&mut current),
                    });
                }
                current.clear();
                while stack.last().is_some_and(|(l, _)| *l >= level) {
                    stack.pop();
                }
                stack.push((level, text));
            }
            None => {
                current.push_str(line);
                current.push('\n');
            }
        }
    }
    if !current.trim().is_empty() {
        out.push(Section {
            headings: path_of(&stack),
            text: current,
        });
    }
    out
}

/// `## Diagnosis ##` -> (2, "Diagnosis"). At most three leading spaces, as in CommonMark.
fn parse_heading(line: &str) -> Option<(usize, String)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let t = &line[indent..];
    let level = t.chars().take_while(|&c| c == '#').count();
    if level == 0 || level > 6 {
        return None;
    }
    let rest = &t[level..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    let text = rest.trim().trim_end_matches('#').trim();
    if text.is_empty() {
        return None;
    }
    Some((level, strip_inline_markup(text)))
}

fn strip_inline_markup(s: &str) -> String {
    s.replace(['`', '*'], "").trim().to_string()
}

/// GitHub's heading anchor: lower-case, punctuation dropped, spaces to dashes.
pub fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Cuts `text` into pieces of at most `budget` tokens: paragraphs, then lines, then words.
fn split_to_budget(text: &str, budget: usize, counter: &dyn TokenCounter) -> Vec<String> {
    fn units(text: &str, level: u8) -> Vec<&str> {
        match level {
            0 => text
                .split("\n\n")
                .filter(|s| !s.trim().is_empty())
                .collect(),
            1 => text.lines().filter(|s| !s.trim().is_empty()).collect(),
            _ => text.split_whitespace().collect(),
        }
    }
    fn go(text: &str, level: u8, budget: usize, c: &dyn TokenCounter, out: &mut Vec<String>) {
        let sep = match level {
            0 => "\n\n",
            1 => "\n",
            _ => " ",
        };
        let mut cur = String::new();
        let mut cur_tokens = 0;
        for unit in units(text, level) {
            let n = c.count(unit);
            if n > budget {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    cur_tokens = 0;
                }
                if level < 2 {
                    go(unit, level + 1, budget, c, out);
                } else {
                    // A single "word" over budget: cut by characters, on char boundaries.
                    let chars: Vec<char> = unit.chars().collect();
                    for piece in chars.chunks(budget.max(1)) {
                        out.push(piece.iter().collect());
                    }
                }
                continue;
            }
            if !cur.is_empty() && cur_tokens + n + 1 > budget {
                out.push(std::mem::take(&mut cur));
                cur_tokens = 0;
            }
            if !cur.is_empty() {
                cur.push_str(sep);
                cur_tokens += 1;
            }
            cur.push_str(unit);
            cur_tokens += n;
        }
        if !cur.trim().is_empty() {
            out.push(cur);
        }
    }
    let mut out = Vec::new();
    go(text.trim(), 0, budget, counter, &mut out);
    out
}

fn hex_sha256(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0x1f]);
    }
    hex::encode(h.finalize())
}

/// Chunks a runbook, its title and body redacted first. `max_tokens` includes the two
/// special tokens the model adds.
pub fn chunk(runbook: &Runbook, max_tokens: usize, counter: &dyn TokenCounter) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut occurrences: HashMap<Vec<String>, usize> = HashMap::new();
    let (title, body) = (
        redact_patterns(&runbook.title),
        redact_patterns(&runbook.body),
    );
    for section in sections(&title, &body) {
        let prefix = section.headings.join(" > ");
        let prefix_tokens = counter.count(&prefix) + 1;
        // Leave room for [CLS]/[SEP] and the heading prefix; never less than a few tokens.
        let budget = max_tokens.saturating_sub(2 + prefix_tokens).max(16);
        let occurrence = {
            let n = occurrences.entry(section.headings.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let anchor = anchor(section.headings.last().map(String::as_str).unwrap_or(""));
        for (part, body) in split_to_budget(&section.text, budget, counter)
            .into_iter()
            .enumerate()
        {
            let embed_text = format!("{prefix}\n{body}");
            let heading_key = section.headings.join("\u{1e}");
            let id = hex_sha256(&[
                &runbook.path,
                &heading_key,
                &occurrence.to_string(),
                &part.to_string(),
            ])[..32]
                .to_string();
            out.push(Chunk {
                id,
                ord: out.len() as i32,
                heading_path: section.headings.clone(),
                anchor: anchor.clone(),
                content_hash: hex_sha256(&[&embed_text])[..32].to_string(),
                body,
                embed_text,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::runbook::parse;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    fn rb(body: &str) -> Runbook {
        parse(
            "k/KubePodCrashLooping.md",
            &format!("---\ntitle: Kube Pod Crash Looping\n---\n{body}"),
        )
        .unwrap()
    }

    #[test]
    fn splits_by_headings_with_path() {
        let r = rb("# KubePodCrashLooping\n\n## Meaning\nPod restarts.\n\n## Diagnosis\n### Logs\nRead logs.\n");
        let c = chunk(&r, 256, &words);
        let paths: Vec<_> = c.iter().map(|c| c.heading_path.join(" > ")).collect();
        assert_eq!(
            paths,
            [
                "Kube Pod Crash Looping > Meaning",
                "Kube Pod Crash Looping > Diagnosis > Logs"
            ]
        );
        assert_eq!(c[1].anchor, "logs");
        assert!(c[0]
            .embed_text
            .starts_with("Kube Pod Crash Looping > Meaning\n"));
        assert_eq!(c[0].body.trim(), "Pod restarts.");
    }

    #[test]
    fn text_before_first_heading_is_kept() {
        let c = chunk(&rb("Intro words.\n# H\nbody"), 256, &words);
        assert_eq!(c[0].heading_path, ["Kube Pod Crash Looping"]);
        assert_eq!(c[0].body.trim(), "Intro words.");
    }

    #[test]
    fn code_fences_hide_headings() {
        let c = chunk(
            &rb("## Fix\n```\n# not a heading\nkubectl get pods\n```\n"),
            256,
            &words,
        );
        assert_eq!(c.len(), 1);
        assert!(c[0].body.contains("# not a heading"));
    }

    #[test]
    fn long_sections_split_within_budget() {
        let para = "word ".repeat(100);
        let body = format!("## Big\n{para}\n\n{para}\n\n{}\n", "x ".repeat(700));
        let c = chunk(&rb(&body), 64, &words);
        assert!(c.len() > 4, "{}", c.len());
        for ch in &c {
            assert!(words(&ch.embed_text) + 2 <= 64, "{}", words(&ch.embed_text));
            assert_eq!(ch.heading_path.last().unwrap(), "Big");
        }
        // Nothing lost.
        let total: usize = c.iter().map(|c| words(&c.body)).sum();
        assert_eq!(total, 900);
    }

    #[test]
    fn huge_single_word_cut_on_char_boundaries() {
        let body = format!("## W\n{}\n", "é".repeat(100));
        let c = chunk(&rb(&body), 30, &|s: &str| s.chars().count());
        assert!(c.len() > 1);
        assert_eq!(c.iter().map(|c| c.body.chars().count()).sum::<usize>(), 100);
    }

    #[test]
    fn ids_stable_when_text_changes_and_hash_changes() {
        let a = chunk(&rb("## Meaning\nold\n"), 256, &words);
        let b = chunk(&rb("## Meaning\nnew text\n"), 256, &words);
        assert_eq!(a[0].id, b[0].id);
        assert_ne!(a[0].content_hash, b[0].content_hash);
    }

    #[test]
    fn repeated_headings_get_distinct_ids() {
        let c = chunk(&rb("## Step\none\n## Step\ntwo\n"), 256, &words);
        assert_eq!(c.len(), 2);
        assert_ne!(c[0].id, c[1].id);
    }

    /// A 2048-bit-sized key: 25 lines of 64 base64 characters and a short last one.
    fn key_lines() -> Vec<String> {
        let alphabet: Vec<char> = ('A'..='Z').chain('a'..='z').chain('0'..='9').collect();
        (0..26)
            .map(|i| {
                let n = if i == 25 { 20 } else { 64 };
                (0..n)
                    .map(|j| alphabet[(i * 131 + j * 7 + j * j) % alphabet.len()])
                    .collect()
            })
            .collect()
    }

    fn assert_no_key_material(chunks: &[Chunk], lines: &[String]) {
        for c in chunks {
            for l in lines {
                // Any 12 characters of any key line would be a leak.
                for piece in l.as_bytes().windows(12) {
                    let piece = std::str::from_utf8(piece).unwrap();
                    assert!(!c.body.contains(piece), "{piece} in {:?}", c.body);
                    assert!(!c.embed_text.contains(piece), "{piece}");
                }
            }
            assert!(!c.body.contains("PRIVATE KEY"), "{:?}", c.body);
        }
    }

    #[test]
    fn private_key_straddling_the_budget_is_in_no_chunk() {
        let lines = key_lines();
        for (begin, end) in [
            (
                "-----BEGIN RSA PRIVATE KEY-----",
                "-----END RSA PRIVATE KEY-----",
            ),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----",
                "-----END OPENSSH PRIVATE KEY-----",
            ),
            (
                "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n",
                "=Zm9v\n-----END PGP PRIVATE KEY BLOCK-----",
            ),
        ] {
            let prose = "Install the deploy key on the bastion first. ".repeat(6);
            let body = format!(
                "## Fix\n{prose}\n```\ncat > key.pem <<EOF\n{begin}\n{}\n{end}\nEOF\n```\n{prose}\n",
                lines.join("\n")
            );
            // Budget of 40 "tokens" (characters / 8): the key alone is about 210.
            let c = chunk(&rb(&body), 40, &|s: &str| s.len() / 8 + 1);
            assert!(c.len() > 2, "{}", c.len());
            assert_no_key_material(&c, &lines);
            assert!(c.iter().any(|c| c.body.contains(crate::redact::MARK)));
            // The prose around the key is all there.
            let all: String = c.iter().map(|c| c.body.as_str()).collect();
            assert_eq!(all.matches("bastion").count(), 12, "{all}");
        }
    }

    #[test]
    fn secrets_in_headings_and_bodies_are_redacted_before_hashing() {
        let c = chunk(
            &rb("## Token xoxb-1234567890-abcdefghijkl\nexport AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"),
            256,
            &words,
        );
        assert_eq!(c.len(), 1);
        assert!(
            !c[0].embed_text.contains("xoxb-1234567890"),
            "{}",
            c[0].embed_text
        );
        assert!(!c[0].body.contains("wJalrXUtnFEMI"), "{}", c[0].body);
        assert!(c[0].heading_path.iter().all(|h| !h.contains("xoxb-")));
        let clean = chunk(
            &rb("## Token [REDACTED]\nexport AWS_SECRET_ACCESS_KEY=[REDACTED]\n"),
            256,
            &words,
        );
        assert_eq!(c[0].content_hash, clean[0].content_hash);
    }

    #[test]
    fn anchors_like_github() {
        assert_eq!(anchor("Check `pod` Events!"), "check-pod-events");
        assert_eq!(anchor("Étape 2"), "étape-2");
    }

    #[test]
    fn heading_parsing_rules() {
        assert_eq!(parse_heading("## A ##"), Some((2, "A".into())));
        assert_eq!(parse_heading("#hashtag"), None);
        assert_eq!(parse_heading("    # indented code"), None);
        assert_eq!(parse_heading("####### seven"), None);
    }
}

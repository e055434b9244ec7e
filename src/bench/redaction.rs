//! `sentinel bench redaction`: redaction measured on the corpora of `tests/data/redaction/`.
//! Every secret of `secrets.txt` must go (`leaked` counts those that survive, whole or a
//! 12-character piece of them), every line of `near-misses.txt` must stay as it is
//! (`over_redacted` counts the lines that change), and `mb_per_s` is the speed on texts of
//! about 1 KB (a runbook chunk, an alert). Exits 1 when a secret leaked.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use crate::bench::{print_report, round2};
use crate::error::UserError;
use crate::redact::redact_patterns;

#[derive(Debug, Args)]
pub struct RedactionArgs {
    /// Tab-separated `family, secret, line` (`⏎` for a newline), `#:` for comments.
    #[arg(long, default_value = "tests/data/redaction/secrets.txt")]
    pub secrets: PathBuf,
    /// Lines that must not change, `#:` for comments.
    #[arg(long, default_value = "tests/data/redaction/near-misses.txt")]
    pub near_misses: PathBuf,
    /// Also list, on stderr, the near misses that changed and the families that leaked.
    #[arg(long)]
    pub verbose: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct RedactionReport {
    pub secrets: usize,
    pub leaked: usize,
    pub near_misses: usize,
    pub over_redacted: usize,
    pub over_redaction_rate: f64,
    pub mb_per_s: f64,
}

/// One line of the secrets corpus.
#[derive(Debug, Clone)]
pub struct SecretCase {
    pub family: String,
    pub secret: String,
    pub line: String,
}

/// What redaction did to the corpora.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Secret cases whose secret survived (whole or in part), with the redacted line.
    pub leaked: Vec<(SecretCase, String)>,
    /// Near misses that changed: (line, redacted line).
    pub over_redacted: Vec<(String, String)>,
}

const COMMENT: &str = "#:";

/// Parses the secrets corpus; `⏎` stands for a newline.
pub fn parse_secrets(text: &str) -> Result<Vec<SecretCase>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with(COMMENT))
        .map(|(i, l)| {
            let mut parts = l.splitn(3, '\t');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(family), Some(secret), Some(line)) if !secret.is_empty() => {
                    let case = SecretCase {
                        family: family.to_string(),
                        secret: secret.replace('⏎', "\n"),
                        line: line.replace('⏎', "\n"),
                    };
                    if case.line.contains(&case.secret) || case.secret.contains('\n') {
                        Ok(case)
                    } else {
                        Err(format!("line {}: the secret is not in the line", i + 1))
                    }
                }
                _ => Err(format!(
                    "line {}: expected family<TAB>secret<TAB>line",
                    i + 1
                )),
            }
        })
        .collect()
}

/// Parses the near-miss corpus: every line but comments.
pub fn parse_near_misses(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with(COMMENT))
        .map(str::to_string)
        .collect()
}

/// Whether any line of `secret` survives in `redacted`: whole, or a 12-character piece of
/// it. Pieces shorter than 6 characters (a key's last `==` line) are not looked for.
pub fn leaks(secret: &str, redacted: &str) -> bool {
    secret
        .lines()
        .map(str::trim)
        .filter(|piece| piece.chars().count() >= 6)
        .any(|piece| {
            let chars: Vec<char> = piece.chars().collect();
            chars.len() <= 12 && redacted.contains(piece)
                || chars
                    .windows(12)
                    .any(|w| redacted.contains(&w.iter().collect::<String>()))
        })
}

/// Redacts every case of both corpora.
pub fn evaluate(secrets: &[SecretCase], near_misses: &[String]) -> Outcome {
    let mut out = Outcome::default();
    for case in secrets {
        let red = redact_patterns(&case.line);
        if red == case.line || leaks(&case.secret, &red) {
            out.leaked.push((case.clone(), red));
        }
    }
    for line in near_misses {
        let red = redact_patterns(line);
        if red != *line {
            out.over_redacted.push((line.clone(), red));
        }
    }
    out
}

/// Both corpora as texts of about `size` bytes, cut at line ends.
fn texts_of(secrets: &[SecretCase], near_misses: &[String], size: usize) -> Vec<String> {
    let mut texts = Vec::new();
    let mut cur = String::new();
    let lines = secrets.iter().map(|c| c.line.as_str());
    for line in lines.chain(near_misses.iter().map(String::as_str)) {
        cur.push_str(line);
        cur.push('\n');
        if cur.len() >= size {
            texts.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        texts.push(cur);
    }
    texts
}

/// Redaction speed in MB/s over `texts`, for at least a second.
fn throughput(texts: &[String]) -> f64 {
    let bytes: usize = texts.iter().map(String::len).sum();
    let started = Instant::now();
    let mut rounds = 0usize;
    while rounds < 3 || started.elapsed().as_secs_f64() < 1.0 {
        for t in texts {
            std::hint::black_box(redact_patterns(std::hint::black_box(t)));
        }
        rounds += 1;
    }
    (bytes * rounds) as f64 / started.elapsed().as_secs_f64() / 1e6
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| UserError::new(format!("{}: {e}", path.display())).into())
}

pub fn run(a: RedactionArgs) -> anyhow::Result<i32> {
    let secrets = parse_secrets(&read(&a.secrets)?)
        .map_err(|e| UserError::new(format!("{}: {e}", a.secrets.display())))?;
    let near = parse_near_misses(&read(&a.near_misses)?);
    let outcome = evaluate(&secrets, &near);
    if a.verbose {
        for (case, _) in &outcome.leaked {
            eprintln!("leaked: {}", case.family);
        }
        for (line, red) in &outcome.over_redacted {
            eprintln!("over-redacted: {line}\n           -> {red}");
        }
    }
    let report = RedactionReport {
        secrets: secrets.len(),
        leaked: outcome.leaked.len(),
        near_misses: near.len(),
        over_redacted: outcome.over_redacted.len(),
        over_redaction_rate: (outcome.over_redacted.len() as f64 / near.len().max(1) as f64
            * 10_000.0)
            .round()
            / 10_000.0,
        mb_per_s: round2(throughput(&texts_of(&secrets, &near, 1024))),
    };
    print_report(&report, a.json)?;
    Ok(if report.leaked > 0 { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRETS: &str = include_str!("../../tests/data/redaction/secrets.txt");
    const NEAR_MISSES: &str = include_str!("../../tests/data/redaction/near-misses.txt");

    #[test]
    fn every_corpus_secret_goes_and_near_misses_stay() {
        let secrets = parse_secrets(SECRETS).unwrap();
        let near = parse_near_misses(NEAR_MISSES);
        assert!(secrets.len() >= 100, "{}", secrets.len());
        assert!(near.len() >= 300, "{}", near.len());
        let o = evaluate(&secrets, &near);
        let leaked: Vec<_> = o
            .leaked
            .iter()
            .map(|(c, red)| format!("{}: {red}", c.family))
            .collect();
        assert!(leaked.is_empty(), "{leaked:#?}");
        let rate = o.over_redacted.len() as f64 / near.len() as f64;
        println!(
            "over-redaction: {}/{} near misses changed ({:.2}%)",
            o.over_redacted.len(),
            near.len(),
            rate * 100.0
        );
        assert!(rate < 0.02, "{:#?}", o.over_redacted);
    }

    #[test]
    fn corpus_covers_many_families() {
        let secrets = parse_secrets(SECRETS).unwrap();
        let families: std::collections::BTreeSet<_> =
            secrets.iter().map(|c| c.family.as_str()).collect();
        assert!(families.len() >= 40, "{families:?}");
    }

    #[test]
    fn leak_check_finds_pieces() {
        let s = "AbCdEfGhIjKlMnOpQrStUvWx";
        assert!(leaks(s, &format!("x {s} y")));
        assert!(leaks(s, "x IjKlMnOpQrSt y"));
        assert!(!leaks(s, "x [REDACTED] y"));
        assert!(leaks("line-one-xyz\nZw==", "line-one-xyz"));
        assert!(!leaks("line-one-xyz\nZw==", "Zw=="));
    }

    #[test]
    fn parse_errors_name_the_line() {
        assert!(parse_secrets("#: c\nfam\tsecret\tno such thing\n")
            .unwrap_err()
            .contains("line 2"));
        assert!(parse_secrets("just text").is_err());
        let ok = parse_secrets("fam\tab⏎cd\tx ab⏎cd y").unwrap();
        assert_eq!(ok[0].line, "x ab\ncd y");
    }

    #[test]
    fn texts_are_cut_at_line_ends() {
        let near: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        let texts = texts_of(&[], &near, 64);
        assert!(texts.iter().all(|t| t.ends_with('\n')));
        assert_eq!(texts.concat().lines().count(), 100);
    }
}

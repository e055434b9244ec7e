//! Secret redaction: applied to every text before it reaches the LLM, a log line or Slack.
//!
//! Pure and pattern based: Slack tokens, AWS keys, bearer tokens, passwords in URLs, PEM
//! private keys, JWTs, `password=`/`secret=`/`token=`/`api_key=` pairs, a few well-known
//! API key formats, and the values of labels named in configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;

/// What a secret is replaced with.
pub const MARK: &str = "[REDACTED]";

/// Patterns replaced whole, in order (private keys first: they contain everything else).
static WHOLE: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        // PEM private keys, including an unterminated one cut off by a message limit.
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
        // JWTs: header.payload.signature, base64url.
        r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
        // Slack tokens (bot, user, app-level, legacy, refresh, config).
        r"\bxox(?:[abposre]|e\.xox[bp])-[A-Za-z0-9-]{6,}",
        r"\bxapp-\d-[A-Za-z0-9-]{6,}",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]+",
        // AWS access key ids.
        r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[0-9A-Z]{16}\b",
        // OpenAI-style, GitHub and GitLab tokens.
        r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}",
        r"\bgh[pousr]_[A-Za-z0-9]{30,}",
        r"\bglpat-[A-Za-z0-9_-]{20,}",
    ]
    .iter()
    .map(|p| Regex::new(p).expect("static regex"))
    .collect()
});

/// `Bearer xyz` / `Basic xyz` credentials: the scheme stays, the credential goes.
static AUTH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9\-._~+/]{8,}=*").unwrap());

/// `scheme://user:password@host`: the password goes.
static URL_PASSWORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):[^@\s/]+@").unwrap());

/// `password=...`, `"client_secret": "..."`, `api-key: ...`: the key stays, the value goes.
static PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)\b([a-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?)[a-z0-9_.-]*["']?\s*[:=]\s*)(\[REDACTED\]|"[^"\n]*"|'[^'\n]*'|[^\s,;&"'}\]]+)"#,
    )
    .unwrap()
});

/// A bare AWS secret access key: 40 base64 characters mixing cases and digits.
static AWS_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^A-Za-z0-9/+=])([A-Za-z0-9/+]{40})(?:$|[^A-Za-z0-9/+=])").unwrap()
});

/// Redacts secrets; the set of sensitive label names comes from configuration.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Label (and annotation) names whose values are secret, lower-case.
    labels: BTreeSet<String>,
    /// Values seen under those labels: scrubbed wherever else they appear.
    values: Vec<String>,
}

impl Redactor {
    pub fn new<I, S>(labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            labels: labels
                .into_iter()
                .map(|s| s.as_ref().trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            values: Vec::new(),
        }
    }

    /// Remembers the values of sensitive labels in `map`, so `redact` scrubs them anywhere.
    pub fn learn(&mut self, map: &BTreeMap<String, String>) {
        for (k, v) in map {
            if self.is_sensitive(k) && v.chars().count() >= 3 && !self.values.contains(v) {
                self.values.push(v.clone());
            }
        }
        // Longest first, so a value containing another is removed whole.
        self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }

    pub fn is_sensitive(&self, label: &str) -> bool {
        self.labels.contains(&label.to_ascii_lowercase())
    }

    /// A copy of `map` with sensitive labels' values and any secret inside values redacted.
    pub fn redact_map(&self, map: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        map.iter()
            .map(|(k, v)| {
                let v = if self.is_sensitive(k) {
                    MARK.to_string()
                } else {
                    self.redact(v)
                };
                (self.redact(k), v)
            })
            .collect()
    }

    /// `text` with every secret it recognises replaced by `[REDACTED]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MARK);
            }
        }
        out = redact_patterns(&out);
        out
    }
}

/// The pattern part of redaction, without configured labels.
pub fn redact_patterns(text: &str) -> String {
    let mut out = text.to_string();
    for re in WHOLE.iter() {
        if re.is_match(&out) {
            out = re.replace_all(&out, MARK).into_owned();
        }
    }
    out = URL_PASSWORD
        .replace_all(&out, format!("${{1}}:{MARK}@"))
        .into_owned();
    out = AUTH
        .replace_all(&out, format!("${{1}} {MARK}"))
        .into_owned();
    out = PAIR.replace_all(&out, format!("${{1}}{MARK}")).into_owned();
    redact_aws_secrets(&out)
}

fn redact_aws_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for caps in AWS_SECRET.captures_iter(text) {
        let m = caps.get(1).expect("group 1");
        let s = m.as_str();
        let mixed = s.chars().any(|c| c.is_ascii_uppercase())
            && s.chars().any(|c| c.is_ascii_lowercase())
            && s.chars().any(|c| c.is_ascii_digit());
        if mixed {
            out.push_str(&text[last..m.start()]);
            out.push_str(MARK);
            last = m.end();
        }
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        redact_patterns(s)
    }

    #[test]
    fn slack_tokens() {
        for t in [
            "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            "xoxp-1234567890-1234567890-1234567890123-0123456789abcdef0123456789abcdef",
            "xapp-1-A0123456789-1234567890123-0123456789abcdef",
            "xoxa-2-1234567890-abcdef",
            "xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4",
            "xoxr-1234567890-abcdef",
        ] {
            let out = r(&format!("token {t} leaked"));
            assert!(!out.contains(t), "{t} -> {out}");
            assert!(out.contains(MARK));
        }
    }

    #[test]
    fn slack_webhook_url() {
        let out = r("post to https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX now");
        assert!(!out.contains("XXXXXXXX"), "{out}");
        assert!(out.ends_with(" now"));
    }

    #[test]
    fn aws_access_key_and_secret() {
        let out = r("id AKIAIOSFODNN7EXAMPLE key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY end");
        assert!(!out.contains("AKIAIOSFODNN7EXAMPLE"), "{out}");
        assert!(!out.contains("wJalrXUtnFEMI"), "{out}");
        assert!(out.starts_with("id ") && out.ends_with(" end"), "{out}");
        let out = r("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        assert!(!out.contains("wJalrXUtnFEMI"), "{out}");
    }

    #[test]
    fn git_shas_and_plain_words_survive() {
        let sha = "3f786850e387550fdab836ed7e6dc881de23001b";
        assert_eq!(r(sha), sha);
        let text =
            "Pod checkout/checkout-api-7d9f8b6c5-x2k4q is crash looping (reason: OOMKilled).";
        assert_eq!(r(text), text);
    }

    #[test]
    fn bearer_tokens() {
        let out = r("Authorization: Bearer abc.def-ghi_jkl~mno+pqr/stu=");
        assert_eq!(out, format!("Authorization: Bearer {MARK}"));
        let out = r("curl -H 'authorization: basic dXNlcjpodW50ZXIy'");
        assert!(!out.contains("dXNlcjpodW50ZXIy"), "{out}");
    }

    #[test]
    fn passwords_in_urls() {
        assert_eq!(
            r("dsn postgres://app:hunter2@db.internal:5432/orders ok"),
            format!("dsn postgres://app:{MARK}@db.internal:5432/orders ok")
        );
        assert_eq!(
            r("redis://:s3cr3t@cache:6379"),
            format!("redis://:{MARK}@cache:6379")
        );
        assert_eq!(r("https://example.com/a:b"), "https://example.com/a:b");
    }

    #[test]
    fn pem_private_keys() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1c\nabc\n-----END RSA PRIVATE KEY-----";
        let out = r(&format!("key:\n{pem}\nafter"));
        assert!(!out.contains("MIIEpAIBAAKCAQEA1c"), "{out}");
        assert!(out.ends_with("after"));
        let out = r("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE (cut");
        assert!(!out.contains("b3BlbnNzaC1rZXktdjE"), "{out}");
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        assert_eq!(r(cert), cert);
    }

    #[test]
    fn jwts() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        let out = r(&format!("cookie session={jwt};"));
        assert!(!out.contains("dozjgNryP4J3"), "{out}");
        assert!(!out.contains("eyJzdWIi"), "{out}");
    }

    #[test]
    fn key_value_pairs() {
        for (input, gone) in [
            ("password=hunter2 user=bob", "hunter2"),
            ("DB_PASSWORD: 'p@ss w0rd'", "p@ss w0rd"),
            ("{\"client_secret\": \"abc123xyz\"}", "abc123xyz"),
            ("secret=topsecret&x=1", "topsecret"),
            ("api_key=AIzaSyA-123", "AIzaSyA-123"),
            ("X-Api-Key: 0123456789", "0123456789"),
            ("token=deadbeefcafe", "deadbeefcafe"),
            ("access_token: ya29.a0Af", "ya29.a0Af"),
        ] {
            let out = r(input);
            assert!(!out.contains(gone), "{input} -> {out}");
            assert!(out.contains(MARK), "{input} -> {out}");
        }
        assert_eq!(r("user=bob"), "user=bob");
    }

    #[test]
    fn well_known_api_keys() {
        let out = r("OPENAI sk-proj-abcdefghijklmnopqrstuvwxyz123456 and ghp_abcdefghijklmnopqrstuvwxyz0123456789");
        assert!(!out.contains("abcdefghijklmnop"), "{out}");
    }

    #[test]
    fn configured_labels_are_redacted_everywhere() {
        let mut red = Redactor::new(["customer_email", "Tenant"]);
        let labels = BTreeMap::from([
            (
                "customer_email".to_string(),
                "jane@corp.example".to_string(),
            ),
            ("tenant".to_string(), "acme-secret-tenant".to_string()),
            ("namespace".to_string(), "checkout".to_string()),
        ]);
        red.learn(&labels);
        let out = red.redact_map(&labels);
        assert_eq!(out["customer_email"], MARK);
        assert_eq!(out["tenant"], MARK);
        assert_eq!(out["namespace"], "checkout");
        let text = red.redact("mail jane@corp.example about acme-secret-tenant in checkout");
        assert_eq!(text, format!("mail {MARK} about {MARK} in checkout"));
    }

    #[test]
    fn unicode_and_empty_input_are_safe() {
        assert_eq!(r(""), "");
        assert_eq!(r("héllo wörld 🙂"), "héllo wörld 🙂");
        let out = r("pässword=ünïcode🙂 fine");
        assert!(out.ends_with(" fine"));
    }

    #[test]
    fn redaction_is_idempotent() {
        let once = r("password=hunter2 Bearer abcdefghijkl xoxb-123456-abcdef");
        assert_eq!(r(&once), once);
    }
}

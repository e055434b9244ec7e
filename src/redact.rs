//! Secret redaction: applied to every text before it reaches the LLM, a log line, Slack or
//! the knowledge base.
//!
//! Pure and pattern based. [`families`] names every credential family in the order they run:
//! private-key blocks first (they contain everything else), then whole tokens recognised by
//! their prefix or shape, then secrets recognised by their context (an `Authorization:`
//! header, a URL's userinfo or query, a `name=value` pair), then bare AWS secret keys.
//!
//! The `name=value` rule is the one that can over-redact, so it decides twice: the name must
//! be a credential's (`DB_PASSWORD`, `clientSecret`, `X-Api-Key`, `tls.key`; not
//! `max_tokens`, `secretName`, `token_ttl`), and the value must be able to be one (not a
//! boolean, a small number, a `$VARIABLE`, a placeholder, a path or the prose that follows
//! `Secret:` in a sentence). It is measured on `tests/data/redaction/` by `sentinel bench
//! redaction`. Configured label names add their values ([`Redactor`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What a secret is replaced with.
pub const MARK: &str = "[REDACTED]";

/// One credential family: a name to audit it by, its pattern, and what a match becomes
/// (`None`: on a closer look the match is not a secret and stays as it is).
struct Family {
    name: &'static str,
    re: Regex,
    replace: Replace,
}

/// Decides on one match in a text: its replacement, or `None` to keep it.
type Replace = fn(&str, &Captures) -> Option<String>;

/// `\b` in a pattern is an ASCII word boundary: every pattern's edges are ASCII, and the
/// fast (lazy DFA) engine cannot take a Unicode boundary through non-ASCII text.
fn family(name: &'static str, pattern: &str, replace: Replace) -> Family {
    let pattern = pattern.replace(r"\b", r"(?-u:\b)");
    Family {
        name,
        re: Regex::new(&pattern).unwrap_or_else(|e| panic!("pattern {name}: {e}")),
        replace,
    }
}

/// The whole match goes.
fn whole(_: &str, _: &Captures) -> Option<String> {
    Some(MARK.to_string())
}

/// Group 1 (a label such as `AccountKey=`) stays; the rest of the match goes.
fn after_label(_: &str, c: &Captures) -> Option<String> {
    Some(format!("{}{MARK}", &c[1]))
}

/// The whole match goes when it mixes character classes the way generated tokens do.
fn whole_if_random(_: &str, c: &Captures) -> Option<String> {
    looks_random(&c[0]).then(|| MARK.to_string())
}

/// Lines of key material after a `BEGIN` line that has no `END`: armor headers
/// (`Proc-Type:`, `Version:`), then base64 lines (16+ characters, or a padded last one),
/// separated by newlines or by JSON's `\n`. A following line of prose stays, and a BEGIN
/// line with no key line after it (prose naming the marker) is no key.
const KEY_LINES: &str = r"(?:(?:\r?\n|\\n)[ \t]*[A-Za-z][A-Za-z-]*:[ \t][^\r\n\\]*)*(?:(?:\r?\n|\\n)(?:[ \t]*(?:\r?\n|\\n))?[ \t]*(?:[A-Za-z0-9+/=]{16,}|[A-Za-z0-9+/]+={1,2}))+";

/// Every family, in the order it runs. Whole-token patterns come before the contextual
/// ones, so a recognised token is replaced whole rather than cut after a label.
static FAMILIES: LazyLock<Vec<Family>> = LazyLock::new(|| {
    let pem_begin = r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----";
    let pgp_begin = r"-----BEGIN PGP PRIVATE KEY BLOCK-----";
    let any_end = r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----";
    // Between BEGIN and END: base64, armor headers, newlines (also JSON's `\n`). A heading,
    // a code fence or a list in between means the two lines do not belong together.
    let body = r"[A-Za-z0-9+/=\s\\:,.()_-]*?";
    vec![
        // PEM (PKCS#1, PKCS#8, EC, encrypted) and OpenSSH private keys, also JSON-escaped
        // (a GCP service-account file's "private_key") and cut off before their END line.
        family(
            "pem_private_key",
            &format!("{pem_begin}{body}-----END [A-Z0-9 ]*PRIVATE KEY-----|{pem_begin}{KEY_LINES}"),
            whole,
        ),
        family(
            "pgp_private_key",
            &format!("{pgp_begin}{body}-----END PGP PRIVATE KEY BLOCK-----|{pgp_begin}{KEY_LINES}"),
            whole,
        ),
        // The end of a key whose BEGIN line is elsewhere (a message or chunk that starts
        // inside the key): the whole base64 lines above the END line, and the END line.
        family(
            "private_key_tail",
            &format!(
                r"(?m)(?:^[ \t]*[A-Za-z0-9+/=]+[ \t]*\r?\n)+[ \t]*{any_end}|(?:[A-Za-z0-9+/=]+\\n)+{any_end}"
            ),
            whole,
        ),
        // JWTs: header.payload.signature, base64url.
        family(
            "jwt",
            r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
            whole,
        ),
        // Slack bot, user, app-level, legacy, refresh and config tokens; incoming webhooks.
        family(
            "slack_token",
            r"\b(?:xox(?:[abposre]|e\.xox[bp])|xapp-\d)-[A-Za-z0-9-]{6,}",
            whole,
        ),
        family(
            "slack_webhook",
            r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]+",
            whole,
        ),
        family(
            "discord_webhook",
            r"https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api/(?:v\d+/)?webhooks/\d+/[A-Za-z0-9_-]+",
            whole,
        ),
        // Discord bot tokens: base64 user id . timestamp . HMAC.
        family(
            "discord_bot_token",
            r"\b[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}\b",
            whole_if_random,
        ),
        family(
            "aws_access_key_id",
            r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[0-9A-Z]{16}\b",
            whole,
        ),
        family("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}", whole),
        family(
            "google_oauth_client_secret",
            r"\bGOCSPX-[0-9A-Za-z_-]{20,}",
            whole,
        ),
        family(
            "google_oauth_access_token",
            r"\bya29\.[0-9A-Za-z_-]{20,}",
            whole,
        ),
        // A service-account file's key id (its private key is a PEM block, above).
        family(
            "gcp_private_key_id",
            r#"("private_key_id"[ \t]*:[ \t]*")[0-9a-f]{40}"#,
            after_label,
        ),
        // Stripe secret and restricted keys, live and test; webhook signing secrets.
        family(
            "stripe_secret_key",
            r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,}",
            whole,
        ),
        family(
            "stripe_webhook_secret",
            r"\bwhsec_[0-9A-Za-z+/=]{24,}",
            whole,
        ),
        // Azure storage account keys and Service Bus / Event Hubs keys, alone or in a
        // connection string (`DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...`).
        family(
            "azure_storage_key",
            r"(?i)\b((?:Account|SharedAccess)Key[ \t]*=[ \t]*)[A-Za-z0-9+/]{20,}={0,2}",
            after_label,
        ),
        // The signature of a SAS token (`...&sig=...`, `SharedAccessSignature sr=...&sig=`).
        family(
            "azure_sas_signature",
            r"(?i)\b(sig=)[A-Za-z0-9%+/=_-]{16,}",
            after_label,
        ),
        // Entra ID (Azure AD) client secrets: three characters, a digit, `Q~`, 31-34 more.
        family(
            "azure_client_secret",
            r"[0-9A-Za-z_~.]{3}[0-9]Q~[0-9A-Za-z_~.-]{31,34}",
            whole,
        ),
        family("github_token", r"\bgh[pousr]_[A-Za-z0-9]{30,}", whole),
        family(
            "github_fine_grained_token",
            r"\bgithub_pat_[A-Za-z0-9_]{22,}",
            whole,
        ),
        family(
            "gitlab_token",
            r"\bgl(?:pat|ptt|dt|rt|cbt|imt|oas|soat|ffct|ft|agent)-[A-Za-z0-9_-]{20,}",
            whole,
        ),
        family("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b", whole),
        family("pypi_token", r"\bpypi-AgE[A-Za-z0-9_-]{40,}", whole),
        family("twilio_api_key", r"\bSK[0-9a-fA-F]{32}\b", whole),
        family(
            "sendgrid_api_key",
            r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",
            whole,
        ),
        family("digitalocean_token", r"\bdo[opr]_v1_[0-9a-f]{64}\b", whole),
        // HashiCorp Vault service, batch and recovery tokens.
        family("vault_token", r"\bhv[sbr]\.[A-Za-z0-9_-]{24,}", whole),
        family("anthropic_api_key", r"\bsk-ant-[A-Za-z0-9_-]{20,}", whole),
        // OpenAI keys (legacy, project, service account, admin); random-looking only, so a
        // name such as `sk-payments-worker-7d9f8` stays.
        family(
            "openai_api_key",
            r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
            openai_key,
        ),
        family("huggingface_token", r"\bhf_[A-Za-z0-9]{30,}", whole),
        family(
            "shopify_token",
            r"\bshp(?:at|ca|pa|ss)_[0-9a-fA-F]{32}\b",
            whole,
        ),
        // Datadog API and application keys are bare hex: only where labelled.
        family(
            "datadog_key",
            r#"(?i)\b((?:dd|datadog)[_-]?(?:api|app|application)[_-]?key["']?[ \t]*[:=][ \t]*["']?)[0-9a-f]{32,40}\b"#,
            after_label,
        ),
        // `Authorization: <scheme> <credential>` (any scheme: Bearer, Basic, AWS4-HMAC-SHA256,
        // SharedAccessSignature, Bot, ...): the scheme stays, the credential goes.
        family(
            "authorization_header",
            r#"(?i)\b((?:proxy-)?authorization["']?[ \t]*[:=][ \t]*["']?)([^\r\n"']+)"#,
            authorization_header,
        ),
        // `Bearer xyz` / `Basic xyz` / `token xyz` outside a header.
        family(
            "auth_scheme",
            r"(?i)\b(bearer|basic|token)[ \t]+([A-Za-z0-9._~+/-]{8,}=*)",
            auth_scheme,
        ),
        // `scheme://user:password@host` (database URLs, brokers, git remotes).
        family(
            "url_password",
            r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):([^@\s/]+)@",
            url_password,
        ),
        // Credentials in a URL's query: `?token=`, `&access_token=`, `&sig=`,
        // `X-Amz-Signature=`, `X-Goog-Credential=`; `key=` and an OAuth callback's `code=`
        // only when the value is long and random-looking.
        family(
            "url_query_credential",
            r#"(?i)([?&;](?:access_token|id_token|refresh_token|session_token|private_token|token|api[_-]?key|key|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential|code|client_secret|password|passwd|pwd|secret|auth)=)([^&#\s"'<>]+)"#,
            url_query_credential,
        ),
        // `password=...`, `"client_secret": "..."`, `X-Api-Key: ...`: the name stays, the
        // value goes, when both look like a credential's (see `credential_name`).
        family(
            "credential_pair",
            r#"(?i)\b(?:[a-z0-9_.-]+ )?[a-z0-9_.-]*(?:pass|pwd|secret|token|key|credential|creds|auth)[a-z0-9_.-]*["']?[ \t]*[:=][ \t]*(?:\[[A-Za-z_]+\]|"[^"\n]*"|'[^'\n]*'|`[^`\n]*`|[^\s,;&"'`}\]]+)"#,
            credential_pair,
        ),
        // A bare AWS secret access key: exactly 40 base64 characters mixing cases and digits
        // (`=` only as padding after them, so `KEY=<secret>` does not hide one).
        family("aws_secret_access_key", r"[A-Za-z0-9/+]{40,}=*", aws_secret),
    ]
});

/// The names of the credential families, in the order they run.
pub fn families() -> Vec<&'static str> {
    FAMILIES.iter().map(|f| f.name).collect()
}

/// Heuristic for generated credentials: long enough, no spaces, and mixing character
/// classes the way random strings do (letters and digits; or upper and lower case switching
/// often; or several kinds of punctuation in a long string). English words, CamelCase
/// identifiers and numbers do not pass.
fn looks_random(s: &str) -> bool {
    let len = s.chars().count();
    if len < 8 || s.chars().any(char::is_whitespace) {
        return false;
    }
    let digit = s.chars().any(|c| c.is_ascii_digit());
    let lower = s.chars().any(|c| c.is_ascii_lowercase());
    let upper = s.chars().any(|c| c.is_ascii_uppercase());
    if digit && (lower || upper) {
        return true;
    }
    let chars: Vec<char> = s.chars().collect();
    let switches = chars
        .windows(2)
        .filter(|w| w[0].is_ascii_alphabetic() && w[1].is_ascii_alphabetic())
        .filter(|w| w[0].is_ascii_uppercase() != w[1].is_ascii_uppercase())
        .count();
    if upper && lower && len >= 12 && switches * 3 >= len {
        return true;
    }
    let symbols: BTreeSet<char> = s.chars().filter(|c| "._~+/=-%".contains(*c)).collect();
    len >= 20 && (lower || upper) && symbols.len() >= 2
}

fn openai_key(_: &str, c: &Captures) -> Option<String> {
    let rest = c[0]
        .trim_start_matches("sk-")
        .trim_start_matches("proj-")
        .trim_start_matches("svcacct-")
        .trim_start_matches("admin-");
    let upper = rest.chars().any(|ch| ch.is_ascii_uppercase());
    let lower = rest.chars().any(|ch| ch.is_ascii_lowercase());
    let digit = rest.chars().any(|ch| ch.is_ascii_digit());
    let solid = !rest.contains('-') && rest.len() >= 32;
    ((upper && lower && digit) || (solid && digit)).then(|| MARK.to_string())
}

fn authorization_header(_: &str, c: &Captures) -> Option<String> {
    let label = &c[1];
    let value = c[2].trim_end();
    let trailing = &c[2][value.len()..];
    // A scheme word (`Bearer`, `AWS4-HMAC-SHA256`) stays when a credential follows it.
    let (scheme, cred) = match value.split_once([' ', '\t']) {
        Some((s, rest))
            if s.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') =>
        {
            (format!("{s} "), rest.trim_start())
        }
        _ => (String::new(), value),
    };
    if cred == MARK || is_placeholder(cred) {
        return None;
    }
    let secret = cred
        .split(|ch: char| ch.is_whitespace() || ",;&=".contains(ch))
        .map(|t| t.trim_matches(|ch| ch == '"' || ch == '\''))
        .any(|t| t.contains(MARK) || !is_placeholder(t) && looks_random(t));
    secret.then(|| format!("{label}{scheme}{MARK}{trailing}"))
}

fn auth_scheme(_: &str, c: &Captures) -> Option<String> {
    let (scheme, cred) = (&c[1], &c[2]);
    // `token` is also a word (`kubectl create token deploy-bot-2`): longer values only.
    let long_enough = !scheme.eq_ignore_ascii_case("token") || cred.len() >= 20;
    (long_enough && looks_random(cred)).then(|| format!("{scheme} {MARK}"))
}

fn url_password(_: &str, c: &Captures) -> Option<String> {
    let password = &c[2];
    (password != MARK && !is_placeholder(password)).then(|| format!("{}:{MARK}@", &c[1]))
}

fn url_query_credential(_: &str, c: &Captures) -> Option<String> {
    let label = &c[1];
    let value = &c[2];
    if value == MARK {
        return None;
    }
    let name = label[1..label.len() - 1].to_ascii_lowercase();
    let secret = if value.contains(MARK) {
        true
    } else if name == "key" || name == "code" {
        value.len() >= 16 && looks_random(value)
    } else {
        plausible_value(value, false, false, "")
    };
    secret.then(|| format!("{label}{MARK}"))
}

/// The three parts of a `credential_pair` match: name (one or two words: `DB_PASSWORD`,
/// `API key`), separator (`": "`, `=`), value. Split here rather than by capture groups:
/// the match alone is found much faster.
fn split_pair(pair: &str) -> (&str, &str, &str) {
    let name_char = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
    let word = |s: &str| s.find(|c: char| !name_char(c)).unwrap_or(s.len());
    let mut name_len = word(pair);
    let rest = &pair[name_len..];
    if rest.starts_with(' ') && rest[1..].starts_with(name_char) {
        name_len += 1 + word(&rest[1..]);
    }
    let (name, rest) = pair.split_at(name_len);
    let op = rest.find([':', '=']).map_or(rest.len(), |i| i + 1);
    let value_at = op + (rest[op..].len() - rest[op..].trim_start_matches([' ', '\t']).len());
    let (sep, raw) = rest.split_at(value_at);
    (name, sep, raw)
}

fn credential_pair(text: &str, c: &Captures) -> Option<String> {
    let whole = c.get(0)?;
    let (name, sep, raw) = split_pair(whole.as_str());
    // `arn:aws:secretsmanager:...:secret:prod/db-AbCdEf` names a secret.
    if text[..whole.start()].ends_with(':') {
        return None;
    }
    let after = &text[whole.end()..];
    let rest = after.split(['\r', '\n']).next().unwrap_or("");
    let quoted = raw.len() >= 2
        && ['"', '\'', '`']
            .iter()
            .any(|&q| raw.starts_with(q) && raw.ends_with(q));
    let value = if quoted { &raw[1..raw.len() - 1] } else { raw };
    // `Back up the secret: `kubectl get secret ...``: a code span of words is prose.
    if raw.starts_with('`') && value.contains(char::is_whitespace) {
        return None;
    }
    let secret = match credential_name(name) {
        NameKind::Credential => plausible_value(value, quoted, sep.contains(':'), rest),
        NameKind::Weak => looks_random(value),
        NameKind::Other => false,
    };
    let quote = if quoted { &raw[..1] } else { "" };
    secret.then(|| format!("{name}{sep}{quote}{MARK}{quote}"))
}

fn aws_secret(_: &str, c: &Captures) -> Option<String> {
    let s = &c[0];
    let mixed = s.len() == 40
        && !s.contains('=')
        && s.chars().any(|ch| ch.is_ascii_uppercase())
        && s.chars().any(|ch| ch.is_ascii_lowercase())
        && s.chars().any(|ch| ch.is_ascii_digit());
    mixed.then(|| MARK.to_string())
}

/// What a `name=value` pair's name says about its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameKind {
    /// A credential: `password`, `DB_PASSWORD`, `clientSecret`, `api-key`, `tls.key`.
    Credential,
    /// Sometimes one (`auth`, `primaryKey`): only random-looking values go.
    Weak,
    /// Names a credential without holding one (`secretName`, `token_ttl`, `max_tokens`,
    /// `passwordFile`, `existingSecret`), or is no credential at all (`partition_key`).
    Other,
}

/// Nouns that name a credential.
const CREDENTIAL_NOUNS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "credentials",
    "creds",
    "apikey",
];

/// Words before `key` that make it a credential (`api_key`, `AccountKey`, `tls.key`).
const KEY_QUALIFIERS: &[&str] = &[
    "api",
    "access",
    "private",
    "secret",
    "account",
    "signing",
    "master",
    "encryption",
    "app",
    "application",
    "client",
    "auth",
    "license",
    "subscription",
    "shared",
    "storage",
    "sas",
    "consumer",
    "ingestion",
    "service",
    "hmac",
    "root",
    "admin",
    "deploy",
    "server",
    "integration",
    "rest",
    "write",
    "read",
    "management",
    "webhook",
    "session",
    "tls",
    "ssl",
    "ssh",
    "gpg",
    "pgp",
    "rsa",
    "ecdsa",
    "ed25519",
];

/// Words before `key` that make it a credential only when the value looks like one.
const WEAK_KEY_QUALIFIERS: &[&str] = &["primary", "secondary"];

/// Words that may follow a credential noun and still name the credential itself
/// (`secret_key_base`, `password_value`, `token_b64`).
const VALUE_SUFFIXES: &[&str] = &[
    "value",
    "string",
    "data",
    "b64",
    "base64",
    "plain",
    "plaintext",
    "raw",
    "text",
    "literal",
    "hex",
    "base",
    "encoded",
];

/// Words before a credential noun that make the name about something else
/// (`existingSecret`, `max_tokens`).
const OTHER_PREFIXES: &[&str] = &["existing", "max", "min", "num", "number", "total", "count"];

/// Splits an identifier into lower-case words: `X-Api-Key` -> x, api, key; `clientSecret`
/// -> client, secret; `APIKey` -> api, key.
fn name_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    for part in name.split(|c: char| !c.is_ascii_alphanumeric()) {
        let chars: Vec<char> = part.chars().collect();
        let mut start = 0;
        for i in 1..chars.len() {
            let (a, b) = (chars[i - 1], chars[i]);
            let next_lower = chars.get(i + 1).is_some_and(|c| c.is_ascii_lowercase());
            if (a.is_ascii_lowercase() && b.is_ascii_uppercase())
                || (a.is_ascii_uppercase() && b.is_ascii_uppercase() && next_lower)
            {
                words.push(chars[start..i].iter().collect::<String>());
                start = i;
            }
        }
        if start < chars.len() {
            words.push(chars[start..].iter().collect::<String>());
        }
    }
    words.iter().map(|w| w.to_ascii_lowercase()).collect()
}

/// Whether `name` (the left side of a `name=value` pair) names a credential.
fn credential_name(name: &str) -> NameKind {
    let words = name_words(name);
    let noun = |i: usize| -> Option<NameKind> {
        let w = words[i].as_str();
        let prev = if i > 0 { words[i - 1].as_str() } else { "" };
        // `pass` alone is too common a word (`--- PASS: TestX`); `db_pass` is a password.
        let noun = CREDENTIAL_NOUNS.contains(&w)
            || w == "pass" && i > 0
            || ["password", "passwd", "secret", "token", "apikey"]
                .iter()
                .any(|n| w.len() > n.len() && w.ends_with(n));
        // `api_key`, `AccountKey`, `tls.key`; also written as one word (`accesskey`).
        let qualified_key = w == "key" && KEY_QUALIFIERS.contains(&prev)
            || w.len() > 3 && w.ends_with("key") && KEY_QUALIFIERS.contains(&&w[..w.len() - 3]);
        if noun || qualified_key {
            Some(NameKind::Credential)
        } else if w == "key" && WEAK_KEY_QUALIFIERS.contains(&prev) || w == "auth" {
            Some(NameKind::Weak)
        } else {
            None
        }
    };
    let Some((i, kind)) = (0..words.len()).rev().find_map(|i| noun(i).map(|k| (i, k))) else {
        return NameKind::Other;
    };
    let about_it = words[i + 1..]
        .iter()
        .all(|w| VALUE_SUFFIXES.contains(&w.as_str()));
    let other_prefix = words[..i]
        .iter()
        .any(|w| OTHER_PREFIXES.contains(&w.as_str()));
    if about_it && !other_prefix {
        kind
    } else {
        NameKind::Other
    }
}

/// Values that stand in for a secret without being one: `$DB_PASSWORD`, `${TOKEN}`,
/// `$(vault read ...)`, `{{ .Values.token }}`, `<your-token>`, `%API_KEY%`, `****`, `xxxx`,
/// `...`, `YOUR_API_KEY`, `CHANGEME`, `[FILTERED]`, and references or code such as
/// Terraform's `var.db_password` or `Devise.friendly_token.first(16)`.
fn is_placeholder(v: &str) -> bool {
    let v = v.trim();
    let mut chars = v.chars();
    let first = chars.next();
    let var = first == Some('$')
        && chars
            .next()
            .is_some_and(|c| c == '{' || c == '(' || c == '_' || c.is_ascii_alphabetic());
    let masked = v.chars().count() >= 3
        && v.chars()
            .all(|c| matches!(c, '*' | 'x' | 'X' | '•' | '.' | '…' | '#' | '-' | '_'));
    let lower = v.to_ascii_lowercase();
    var || masked
        || v.starts_with("{{")
        || v.starts_with('<')
        || v.len() > 2 && v.starts_with('%') && v.ends_with('%')
        || lower.starts_with("your")
        || ["redacted", "changeme", "change_me"].contains(&lower.as_str())
        || v.len() > 2
            && v.starts_with('[')
            && v.ends_with(']')
            && v[1..v.len() - 1]
                .chars()
                .all(|c| c.is_ascii_alphabetic() || c == '_')
        || is_reference(v)
}

/// `var.db_password`, `random_password.db.result`, `Devise.friendly_token.first(16)`: a
/// dotted path of identifiers (snake_case or CamelCase words, two digits at most), not a
/// token such as `MTIz.abc.def0123456789Xyz` or `ya29.a0Af`.
fn is_reference(v: &str) -> bool {
    static SHAPE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*(?:(?:\.|::)[A-Za-z_][A-Za-z0-9_]*(?:\([^()]*\))?|\[\d+\])+\)*$")
            .expect("static regex")
    });
    // Each segment without its call or index: `first(16)` -> `first`.
    let segments = || {
        v.split(['.', ':'])
            .map(|s| s.split(['(', '[']).next().unwrap_or(""))
    };
    let upper_run = |seg: &str| {
        seg.as_bytes()
            .windows(2)
            .any(|w| w[0].is_ascii_uppercase() && w[1].is_ascii_uppercase())
    };
    let digits: usize = segments()
        .map(|seg| seg.bytes().filter(u8::is_ascii_digit).count())
        .sum();
    SHAPE.is_match(v) && digits <= 2 && !segments().any(upper_run)
}

/// Words that report a credential's state rather than hold it (`password: required`).
const STATE_WORDS: &[&str] = &[
    "true",
    "false",
    "yes",
    "no",
    "on",
    "off",
    "null",
    "nil",
    "none",
    "undefined",
    "unset",
    "empty",
    "required",
    "optional",
    "invalid",
    "incorrect",
    "expired",
    "revoked",
    "rotated",
    "missing",
    "present",
    "absent",
    "hidden",
    "masked",
    "provided",
    "set",
    "ok",
    "valid",
    "unknown",
    "default",
    "auto",
    "generated",
    "n/a",
    "tbd",
    "changed",
    "updated",
    "denied",
    "rejected",
    "accepted",
    "configured",
    "enabled",
    "disabled",
];

/// A small number, possibly with a unit: `3`, `1.5`, `30s`, `512Mi`, `90%`.
fn is_small_number(v: &str) -> bool {
    static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)^[+-]?\d{1,5}(?:\.\d+)?(?:ms|s|m|h|d|w|y|ki|mi|gi|ti|kb|mb|gb|tb|k|g|%)?$")
            .expect("static regex")
    });
    NUMBER.is_match(v)
}

/// A resource name: lower-case words joined by `-` or `_`, perhaps numbered (`db-creds`,
/// `checkout-db-password`, `tls-cert-2`): `--secret=checkout-db-password` names a secret.
/// The price: a passphrase of lower-case words joined by dashes survives as well.
fn is_resource_name(v: &str) -> bool {
    static NAME: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[a-z]{2,}(?:[-_][a-z]{2,})+(?:[-_]v?\d{1,3})?$").expect("static regex")
    });
    NAME.is_match(v)
}

/// A file path (`/run/secrets/db`, `~/.ssh/id_ed25519`, `./token.txt`) or the name of a
/// key or certificate file (`--private-key=server.key`).
fn is_plain_path(v: &str) -> bool {
    static PATH: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"^(?:~|\.{1,2})?(?:/[A-Za-z0-9._@-]+)+/?$|^[A-Za-z0-9_.-]+\.(?:key|pem|crt|cer|der|p12|pfx|jks|json|txt|asc|gpg|env)$",
        )
        .expect("static regex")
    });
    PATH.is_match(v)
}

/// Whether `value`, found under a credential's name, can be a credential. `colon`: the pair
/// was `name: value`; `rest`: what follows the value on its line.
fn plausible_value(value: &str, quoted: bool, colon: bool, rest: &str) -> bool {
    if value.is_empty()
        || value.contains(MARK)
        || !value.chars().any(char::is_alphanumeric)
        || is_placeholder(value)
        || is_small_number(value)
        || is_plain_path(value)
        || is_resource_name(value)
    {
        return false;
    }
    if !quoted && STATE_WORDS.contains(&value.to_lowercase().as_str()) {
        return false;
    }
    // `Secret: restore the previous ConfigMap`, `token: see the vault entry`: prose.
    let wordlike = value
        .chars()
        .all(|c| c.is_alphabetic() || c == '-' || c == '\'');
    let prose_follows = rest.starts_with([' ', '\t'])
        && rest
            .split_whitespace()
            .next()
            .is_some_and(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 2);
    !(colon && !quoted && wordlike && prose_follows)
}

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
    for f in FAMILIES.iter() {
        if let Some(changed) = apply(f, &out) {
            out = changed;
        }
    }
    out
}

/// `text` with `f`'s matches replaced; `None` when nothing changed.
fn apply(f: &Family, text: &str) -> Option<String> {
    let mut out = String::new();
    let mut last = 0;
    let mut changed = false;
    for c in f.re.captures_iter(text) {
        let Some(m) = c.get(0) else { continue };
        if let Some(r) = (f.replace)(text, &c) {
            out.push_str(&text[last..m.start()]);
            out.push_str(&r);
            last = m.end();
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    out.push_str(&text[last..]);
    Some(out)
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

    /// `input` loses `secret` and gets a mark.
    fn gone(input: &str, secret: &str) {
        let out = r(input);
        assert!(!out.contains(secret), "{input}\n -> {out}");
        assert!(out.contains(MARK), "{input}\n -> {out}");
    }

    /// `input` comes out unchanged.
    fn kept(input: &str) {
        assert_eq!(r(input), input);
    }

    #[test]
    fn family_names_are_unique_and_keys_run_first() {
        let names = families();
        let unique: BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        assert_eq!(
            &names[..3],
            ["pem_private_key", "pgp_private_key", "private_key_tail"]
        );
        assert_eq!(names.last(), Some(&"aws_secret_access_key"));
    }

    #[test]
    fn cloud_provider_keys() {
        gone(
            "key=AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY&q=x",
            "AIzaSyD-9tSrke72PouQMnMX",
        );
        gone(
            "secret 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",
            "GOCSPX-1a2B3c",
        );
        gone("ya29.a0AfH6SMBx3Tq9-RkLmN0pQrStUvWxYz12345", "ya29.a0AfH6");
        let gcp = r#""private_key_id": "0123456789abcdef0123456789abcdef01234567","#;
        assert_eq!(r(gcp), format!(r#""private_key_id": "{MARK}","#));
        gone(
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFy+/==;EndpointSuffix=core.windows.net",
            "Zm9vYmFyYmF6",
        );
        let sas = "https://acme.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&se=2026-12-01&sig=q8ZbX3%2FkT9vR2mN5pL7wY1cA4eH6jU0iO%3D";
        let out = r(sas);
        assert!(out.starts_with(
            "https://acme.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&se=2026-12-01&sig="
        ));
        assert!(!out.contains("q8ZbX3"), "{out}");
        gone(
            "secret: Xy38Q~aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456_",
            "Xy38Q~aBcDe",
        );
    }

    #[test]
    fn service_tokens_by_prefix() {
        for t in [
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
            "rk_live_51H8s7YJk2Lm3Np4Qr5St6Uv",
            "rk_test_51H8s7YJk2Lm3Np4Qr5St6Uv",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123",
            "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
            "glpat-xxxxXXXXxxxxXXXXxxxx",
            "npm_abcdefghijklmnopqrstuvwxyz0123456789",
            "pypi-AgEIcHlwaS5vcmcCJGE0ZmI0ZjIyLTk1OGEtNDk2Mi1iNTc3LTJlNjYyZDVlM2I1NQACKlszLCJm",
            "SK0123456789abcdef0123456789abcdef",
            "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",
            "dop_v1_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "hvs.CAESIJ3vQ2m8nNqL0vTzXbKpYwRsUeFgHiJk",
            "hvb.AAAAAQJ3vQ2m8nNqL0vTzXbKpYwRsUeFgHiJk",
            "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
            "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh",
            "shpat_0123456789abcdef0123456789abcdef",
            "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        ] {
            gone(&format!("leaked {t} here"), t);
            assert!(r(&format!("leaked {t} here")).ends_with(" here"));
        }
        gone(
            "post to https://discord.com/api/webhooks/123456789012345678/AbCdEf-GhIjKl_MnOp",
            "AbCdEf-GhIjKl",
        );
    }

    #[test]
    fn labelled_vendor_keys() {
        gone(
            "DD_API_KEY=0123456789abcdef0123456789abcdef",
            "0123456789abcdef",
        );
        gone(
            "DD-APPLICATION-KEY: 0123456789abcdef0123456789abcdef01234567",
            "0123456789abcdef",
        );
        gone(
            "TWILIO_AUTH_TOKEN=0123456789abcdef0123456789abcdef",
            "0123456789abcdef",
        );
        gone(
            "  tls.key: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t",
            "LS0tLS1CRUdJTi",
        );
        gone(
            r#"{"auths":{"ghcr.io":{"auth":"ZGVwbG95OmdocF9hYmMxMjM="}}}"#,
            "ZGVwbG95",
        );
    }

    #[test]
    fn authorization_headers_of_any_scheme() {
        for (input, secret) in [
            ("Authorization: Bot MTIz.abc.def0123456789Xyz", "def0123456789Xyz"),
            ("Authorization: Splunk 3f2b6c1e-0d4a-4e8b-9c7d-1a2b3c4d5e6f", "3f2b6c1e"),
            (
                "Authorization: AWS4-HMAC-SHA256 Credential=AKIAABCDEFGHIJKLMNOP/20261129/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
                "fe5f80f77d5fa3beca",
            ),
            ("proxy-authorization: Basic Y2k6aHVudGVyMg==", "Y2k6aHVudGVyMg"),
            ("Authorization: dGVzdDp0ZXN0MTIz", "dGVzdDp0ZXN0MTIz"),
        ] {
            gone(input, secret);
        }
        assert_eq!(
            r("Authorization: AWS4-HMAC-SHA256 Credential=x/y, Signature=fe5f80f77d5fa3beca038a"),
            format!("Authorization: AWS4-HMAC-SHA256 {MARK}")
        );
        kept("curl -H \"Authorization: Bearer $TOKEN\" https://api.internal");
        kept("curl -H 'Authorization: Bearer <token>' https://api.internal");
        kept("Authorization: the service account needs get/list on secrets");
        kept("Basic authentication is disabled; bearer tokens expire hourly.");
        kept("kubectl create token deploy-bot-2 --duration=1h");
    }

    #[test]
    fn tokens_in_url_queries() {
        for (input, secret) in [
            ("https://x.example/a?token=AbC123dEf456", "AbC123dEf456"),
            ("https://x.example/a?b=1&access_token=z9Y8x7W6v5", "z9Y8x7W6v5"),
            ("https://x.example/a?api_key=0123456789abcdef", "0123456789abcdef"),
            ("https://x.example/a?key=Zx81Qp03Lm55Rt72Vb19", "Zx81Qp03Lm55Rt72Vb19"),
            ("https://x.example/a?signature=c2lnbmF0dXJl0123", "c2lnbmF0dXJl0123"),
            ("https://b.s3.amazonaws.com/k?X-Amz-Credential=ASIAXXXXXXXXXXXXXXXX%2F20261129%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=0a1b2c3d4e5f", "0a1b2c3d4e5f"),
            ("https://b.s3.amazonaws.com/k?X-Amz-Security-Token=IQoJb3JpZ2luX2VjEJr0123", "IQoJb3JpZ2lu"),
            ("https://storage.googleapis.com/b/o?X-Goog-Credential=sa%40p.iam.gserviceaccount.com%2F20261129&X-Goog-Signature=9f8e7d6c5b4a", "9f8e7d6c5b4a"),
            ("GET /callback?state=xyz&code=4/0AX4XfWh3kLm9Pq2RsTu HTTP/1.1", "4/0AX4XfWh3kLm9Pq2RsTu"),
        ] {
            gone(input, secret);
        }
        let out = r("https://b.s3.amazonaws.com/k?X-Amz-Credential=ASIAXXXXXXXXXXXXXXXX%2F20261129%2Fus-east-1");
        assert!(!out.contains("us-east-1"), "{out}");
        kept("https://maps.example.com/embed?key=office-berlin&zoom=12");
        kept("https://httpstatuses.io/?code=503");
        kept("https://auth.example/authorize?response_type=code&client_id=grafana&scope=openid");
        kept("https://grafana.example/d/abc/checkout?orgId=1&from=now-6h&to=now");
    }

    #[test]
    fn database_urls_keep_placeholders() {
        gone(
            "mongodb+srv://app:Xk3%21pQ9z@cluster0.mongodb.net/db",
            "Xk3%21pQ9z",
        );
        kept("postgresql://app:$DB_PASSWORD@db.internal:5432/orders");
        kept("postgres://app@db.internal:5432/orders");
    }

    #[test]
    fn headless_private_key_tail_is_redacted() {
        let tail = "Bx5dLQyE1nN6m0dkN4h0b9xg2kIa8YhQ0m1Y7vKpLmNoPqRsTuVwXyZ01234567\nZ2Vu\n-----END RSA PRIVATE KEY-----\n```\nThen restart nginx.";
        let out = r(tail);
        assert!(!out.contains("Bx5dLQyE"), "{out}");
        assert!(!out.contains("Z2Vu"), "{out}");
        assert!(out.ends_with("\n```\nThen restart nginx."), "{out}");
        // Indented (YAML) and JSON-escaped tails.
        let yaml = "  key: |\n    Bx5dLQyE1nN6m0dkN4h0b9xg\n    Z2Vu\n    -----END OPENSSH PRIVATE KEY-----";
        let out = r(yaml);
        assert!(
            !out.contains("Bx5dLQyE") && out.starts_with("  key: |\n"),
            "{out}"
        );
        let json =
            r#"Bx5dLQyE1nN6m0dkN4h0b9xg\nZ2Vu\n-----END PRIVATE KEY-----\n", "client_email": "x""#;
        let out = r(json);
        assert!(!out.contains("Bx5dLQyE"), "{out}");
        assert!(out.ends_with(r#"\n", "client_email": "x""#), "{out}");
        // The prose line above the key stays.
        let out = r("the key is:\nBx5dLQyE1nN6m0dkN4h0b9xg\n-----END EC PRIVATE KEY-----");
        assert!(out.starts_with("the key is:\n"), "{out}");
    }

    #[test]
    fn pgp_and_openssh_blocks() {
        let pgp = "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\nlQOYBF0dLQyE1nN6m0dkN4h0b9xg2kIa8YhQ0m1Y7vKp\n=Zm9v\n-----END PGP PRIVATE KEY BLOCK-----";
        let out = r(&format!("before\n{pgp}\nafter"));
        assert_eq!(out, format!("before\n{MARK}\nafter"));
        let ssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\nAAAAC3NzaC1lZDI1NTE5\n-----END OPENSSH PRIVATE KEY-----";
        assert_eq!(r(ssh), MARK);
        // Cut off: the key lines go, the prose after them stays.
        let cut = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF0dLQyE1nN6m0dkN4h0b9xg2kIa8\n\nThen publish the public key.";
        assert_eq!(r(cut), format!("{MARK}\n\nThen publish the public key."));
    }

    #[test]
    fn a_key_block_does_not_swallow_headings() {
        let text = "Paste the -----BEGIN RSA PRIVATE KEY----- block in Vault.\n\n## Verify\nRun the check.\n\n## Rotate\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1cGx7nXq9Rk2Lw0vJmZ8\n-----END RSA PRIVATE KEY-----\n";
        let out = r(text);
        assert!(
            out.contains("## Verify\nRun the check.\n\n## Rotate\n"),
            "{out}"
        );
        assert!(!out.contains("MIIEpAIBAAKCAQEA1c"), "{out}");
    }

    #[test]
    fn gcp_service_account_json() {
        let sa = r#"{"type": "service_account", "private_key_id": "0123456789abcdef0123456789abcdef01234567", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n", "client_email": "ci@p.iam.gserviceaccount.com"}"#;
        let out = r(sa);
        assert!(!out.contains("MIIEvQIBAD"), "{out}");
        assert!(!out.contains("0123456789abcdef"), "{out}");
        assert!(
            out.contains(r#""client_email": "ci@p.iam.gserviceaccount.com""#),
            "{out}"
        );
    }

    #[test]
    fn settings_that_name_tokens_or_secrets_stay() {
        for line in [
            "max_tokens=1200",
            "max_tokens: 1200",
            "prompt_tokens=312 completion_tokens=88 total_tokens=400",
            "token_count=42",
            "token_ttl: 24h",
            "--token-ttl=24h",
            "tokenizer=cl100k_base",
            "token_endpoint: https://auth.example/oauth2/token",
            "password_min_length: 12",
            "secretName: tls-cert",
            "existingSecret: postgres-auth",
            "secretKeyRef:",
            "  key: password",
            "bearer_token_file: /var/run/secrets/kubernetes.io/serviceaccount/token",
            "password_file: /etc/alertmanager/secrets/smtp-password",
            "ssh_key: ~/.ssh/id_ed25519",
            "PWD=/Users/jane/src/infra",
            "partition_key=customer_id",
            "primary_key: id",
            "public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
            "--- PASS: TestCheckoutTotals (0.02s)",
            "SharedAccessKeyName=RootManageSharedAccessKey",
        ] {
            kept(line);
        }
    }

    #[test]
    fn values_that_are_not_credentials_stay() {
        for line in [
            "password: ${DB_PASSWORD}",
            "token: ${{ secrets.GITHUB_TOKEN }}",
            "password: {{ .Values.postgresql.auth.password | quote }}",
            "password = var.db_password",
            "password: <your-password>",
            "Password: ********",
            "export API_KEY=YOUR_API_KEY",
            "password: null",
            "secret: true",
            "token: ~",
            "secret: |",
            "auth: oidc",
            "gcloud secrets versions access latest --secret=checkout-db-password",
            "  DB_PASSWORD:  <set to the key 'password' in secret 'db-creds'>  Optional: false",
            "aws secretsmanager describe-secret --secret-id arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/checkout/db-AbCdEf",
            "kubectl create secret generic db --from-literal=password=\"$DB_PASSWORD\"",
            "STRIPE_PUBLISHABLE_KEY=pk_live_51H8s7YJk2Lm3Np4Qr5St6Uv",
            "export ADMIN_API_TOKEN=CHANGEME",
            r#"{"uri":"/validate?token=[FILTERED]","status":406}"#,
            "gcloud compute ssl-certificates create c --certificate=a.crt --private-key=api.acme.dev.key",
            "irb> a.update(authentication_token: Devise.friendly_token.first(16))",
            "2. Back up the secret: `kubectl get secret tls-cert -o yaml > tls-cert.bak.yaml`",
            "Paste it with its `-----BEGIN RSA PRIVATE KEY-----` line.",
        ] {
            kept(line);
        }
        gone("the default password: `Adm1n!2024`", "Adm1n!2024");
        assert_eq!(r("password: `Adm1n!2024`"), format!("password: `{MARK}`"));
    }

    #[test]
    fn prose_after_a_label_stays() {
        for line in [
            "secret: restore the previous ConfigMap",
            "Secret: see the 1Password item \"prod-db\"",
            "Token: ask in #platform for a scoped one",
            "password: ask the DBA on call, never paste it here",
            "E1129 reflector.go:138] failed to list *v1.Secret: secrets is forbidden",
            "Never paste a secret, token, password or API key into Slack.",
        ] {
            kept(line);
        }
        // Two-word names.
        gone(
            "Datadog API key: 8f14e45fceea167a5a36dedd4bea2543",
            "8f14e45f",
        );
        gone("the root password: Tr0ub4dor&3", "Tr0ub4dor");
        kept("Secret rotation: weekly, by the secret-rotator job");
        kept("Mountable secrets:   checkout-api-token-x2k4q");
        // A value with digits is no prose, even when words follow.
        gone(
            "password: Summer2024 (rotate after the incident)",
            "Summer2024",
        );
    }

    #[test]
    fn quotes_around_a_redacted_value_stay() {
        assert_eq!(
            r(r#"{"client_secret": "abc123xyz", "user": "bob"}"#),
            format!(r#"{{"client_secret": "{MARK}", "user": "bob"}}"#)
        );
        assert_eq!(r("password: 'p@ss w0rd'"), format!("password: '{MARK}'"));
    }

    #[test]
    fn pairs_split_into_name_separator_value() {
        assert_eq!(split_pair("DB_PASSWORD=x y"), ("DB_PASSWORD", "=", "x y"));
        assert_eq!(
            split_pair(r#"client_secret": "abc""#),
            ("client_secret", r#"": "#, r#""abc""#)
        );
        assert_eq!(split_pair("token :\t v"), ("token", " :\t ", "v"));
        assert_eq!(split_pair("API key: v"), ("API key", ": ", "v"));
    }

    #[test]
    fn credential_names() {
        use NameKind::*;
        for (name, kind) in [
            ("password", Credential),
            ("DB_PASSWORD", Credential),
            ("clientSecret", Credential),
            ("X-Api-Key", Credential),
            ("APIKey", Credential),
            ("tls.key", Credential),
            ("SECRET_KEY_BASE", Credential),
            ("AWS_SECRET_ACCESS_KEY", Credential),
            ("ansible_become_pass", Credential),
            ("authToken", Credential),
            ("primaryKey", Weak),
            ("auth", Weak),
            ("pass", Other),
            ("max_tokens", Other),
            ("secretName", Other),
            ("existingSecret", Other),
            ("token_ttl", Other),
            ("access_key_id", Other),
            ("partition_key", Other),
            ("tokenizer", Other),
            ("passwordless", Other),
        ] {
            assert_eq!(credential_name(name), kind, "{name}");
        }
        assert_eq!(name_words("XApiKey"), ["x", "api", "key"]);
        assert_eq!(name_words("OcpApimSubscriptionKey").last().unwrap(), "key");
    }

    #[test]
    fn random_looking() {
        for s in [
            "dXNlcjpodW50ZXIy",
            "0123456789abcdef",
            "Zx81Qp03",
            "abc.def-ghi_jkl~mno+pqr/stu=",
        ] {
            assert!(looks_random(s), "{s}");
        }
        for s in [
            "authentication",
            "HorizontalPodAutoscaler",
            "12345678",
            "short1",
            "rotation/renewal",
        ] {
            assert!(!looks_random(s), "{s}");
        }
    }

    #[test]
    fn corpus_lines_redact_idempotently() {
        let corpora = [
            include_str!("../tests/data/redaction/secrets.txt"),
            include_str!("../tests/data/redaction/near-misses.txt"),
        ];
        for line in corpora.iter().flat_map(|c| c.lines()) {
            let line = line.replace('⏎', "\n");
            let once = r(&line);
            assert_eq!(r(&once), once, "{line}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_is_idempotent(s in "[ -~\n\t=:/+é🙂]{0,200}") {
            let once = r(&s);
            proptest::prop_assert_eq!(r(&once), once);
        }

        #[test]
        fn text_without_digits_or_marks_of_secrets_is_kept(s in "[a-z .,\n]{0,200}") {
            proptest::prop_assert_eq!(r(&s), s);
        }
    }

    #[test]
    fn redaction_is_idempotent() {
        let once = r("password=hunter2 Bearer abcdefghijkl xoxb-123456-abcdef");
        assert_eq!(r(&once), once);
    }
}

//! Slack text that is safe by construction: [`Mrkdwn`] for text Slack parses (section
//! text and the notification `text`), [`Plain`] for `plain_text` objects (headers, button
//! labels).
//!
//! Text from outside (alerts, runbooks, Slack users, the LLM) enters only through
//! [`Mrkdwn::untrusted`], [`Mrkdwn::code`], [`Mrkdwn::markdown`], [`Mrkdwn::link`] or
//! [`Plain::untrusted`]: secrets are redacted and Slack's control characters escaped, so it
//! can neither ping (`<!channel>`) nor forge a link. Sentinel's own wording comes in through
//! [`Mrkdwn::own`] and the [`mrkdwn!`](crate::mrkdwn) macro, whose arguments must already be
//! safe (a `Mrkdwn` or a number): a plain `&str` does not compile there.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use crate::redact::redact_patterns;
use crate::text::truncate_chars;

/// Slack `mrkdwn`: every piece of outside text in it has been redacted and escaped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mrkdwn(String);

/// A `plain_text` string (Slack does not parse it): outside text in it is redacted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plain(String);

/// Slack's mrkdwn control characters (`&`, `<`, `>`) as entities.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Characters that change how text reads without being seen: bidirectional overrides and
/// isolates, zero-width characters, and control characters other than newline and tab.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{061C}' | '\u{FEFF}' | '\u{180E}')
        || (c.is_control() && c != '\n' && c != '\t')
}

/// Outside text as it may be shown: secrets redacted, invisible characters removed.
fn clean(s: &str) -> String {
    let s: String = s.chars().filter(|c| !invisible(*c)).collect();
    redact_patterns(&s)
}

/// The host a URL really goes to (`evil.example` for `https://user@evil.example/x`).
fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .host_str()
        .map(|h| h.trim_start_matches("www.").to_string())
}

static MD_LINK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)").expect("static regex"));
static MD_BOLD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\*\*([^*\n]+)\*\*").expect("static regex"));

/// A URL Slack may link: http(s), with the characters that end a link percent-encoded.
fn linkable(url: &str) -> Option<String> {
    let u: String = url.trim().chars().filter(|c| !invisible(*c)).collect();
    let u = u.as_str();
    let lower = u.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return None;
    }
    let u = redact_patterns(u)
        .replace("&amp;", "&")
        .replace('&', "&amp;")
        .replace('|', "%7C")
        .replace('<', "%3C")
        .replace('>', "%3E")
        .replace(' ', "%20");
    (u.chars().count() <= super::blocks::MAX_URL).then_some(u)
}

impl Mrkdwn {
    /// Outside text, shown as it reads: secrets redacted, invisible characters (bidi
    /// overrides, zero-width) removed, `&`, `<` and `>` escaped, so it can neither ping nor
    /// form a link.
    pub fn untrusted(s: &str) -> Self {
        Self(escape(&clean(s)))
    }

    /// Sentinel's own wording, markup included. Never pass outside text here.
    pub fn own(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// Outside text as inline code (backticks inside become quotes).
    pub fn code(s: &str) -> Self {
        Self(format!("`{}`", Self::untrusted(s).0.replace('`', "'")))
    }

    /// `*inner*`.
    pub fn bold(inner: &Mrkdwn) -> Self {
        Self(format!("*{}*", inner.0))
    }

    /// A link to an outside URL: the label is followed by the host the link really goes
    /// to (`Grafana (evil.example)`), so a label cannot disguise it; just the label when
    /// `url` is not an http(s) URL.
    pub fn link(url: &str, label: &Mrkdwn) -> Self {
        let Some(u) = linkable(url) else {
            return label.clone();
        };
        let host = host_of(&u).unwrap_or_default();
        let label = label.0.replace('|', "/");
        if label.trim().eq_ignore_ascii_case(&host) {
            Self(format!("<{u}|{label}>"))
        } else {
            Self(format!("<{u}|{label} ({})>", escape(&host)))
        }
    }

    /// A link to a URL Sentinel made itself (a Slack thread, the configured runbook base):
    /// just the label.
    pub fn own_link(url: &str, label: &Mrkdwn) -> Self {
        match linkable(url) {
            Some(u) => Self(format!("<{u}|{}>", label.0.replace('|', "/"))),
            None => label.clone(),
        }
    }

    /// Runbook or LLM Markdown as mrkdwn: escaped and redacted, `**bold**` to `*bold*`,
    /// `[text](url)` to a Slack link.
    pub fn markdown(s: &str) -> Self {
        let e = Self::untrusted(s).0;
        let e = MD_BOLD.replace_all(&e, "*$1*");
        let out = MD_LINK.replace_all(&e, |c: &regex::Captures| {
            // The label was escaped with the rest; the URL is checked like any link.
            Self::link(&c[2], &Self(c[1].to_string())).0
        });
        Self(out.into_owned())
    }

    /// The parts joined by `sep` (Sentinel's own separator).
    pub fn join<I: IntoIterator<Item = Mrkdwn>>(parts: I, sep: &str) -> Self {
        Self(parts.into_iter().map(|p| p.0).collect::<Vec<_>>().join(sep))
    }

    pub fn push(&mut self, other: &Mrkdwn) {
        self.0.push_str(&other.0);
    }

    /// Cut to `max` characters with a visible `…`.
    pub fn cut(&self, max: usize) -> Self {
        Self(truncate_chars(&self.0, max))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Display for Mrkdwn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Plain {
    /// Outside text for a `plain_text` field: secrets redacted, invisible characters
    /// removed.
    pub fn untrusted(s: &str) -> Self {
        Self(clean(s))
    }

    /// Sentinel's own wording.
    pub fn own(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What [`mrkdwn!`](crate::mrkdwn) accepts as an argument: values that cannot carry
/// outside markup (a [`Mrkdwn`], a number).
pub trait Safe {
    fn as_safe(&self) -> &dyn fmt::Display;
}

impl Safe for Mrkdwn {
    fn as_safe(&self) -> &dyn fmt::Display {
        &self.0
    }
}

impl<T: Safe + ?Sized> Safe for &T {
    fn as_safe(&self) -> &dyn fmt::Display {
        (**self).as_safe()
    }
}

macro_rules! safe_numbers {
    ($($t:ty),*) => {
        $(impl Safe for $t {
            fn as_safe(&self) -> &dyn fmt::Display {
                self
            }
        })*
    };
}
safe_numbers!(i32, i64, u32, u64, usize, f64);

/// `format!` for [`Mrkdwn`]: the template is Sentinel's own; every argument must be
/// [`Safe`](crate::slack::mrkdwn::Safe) (outside text goes through `Mrkdwn::untrusted` first).
#[macro_export]
macro_rules! mrkdwn {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {
        $crate::slack::mrkdwn::Mrkdwn::own(format!(
            $fmt $(, $crate::slack::mrkdwn::Safe::as_safe(&$arg))*
        ))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_cannot_ping_or_link() {
        let m = Mrkdwn::untrusted("<!channel> see <https://evil.example|Grafana> & more");
        assert_eq!(
            m.as_str(),
            "&lt;!channel&gt; see &lt;https://evil.example|Grafana&gt; &amp; more"
        );
    }

    #[test]
    fn untrusted_text_is_redacted() {
        let m = Mrkdwn::untrusted("key AKIAABCDEFGHIJKLMNOP in a label");
        assert!(!m.as_str().contains("AKIAABCDEFGHIJKLMNOP"), "{m}");
        let p = Plain::untrusted("xoxb-123456789-abcdefghij");
        assert!(!p.as_str().contains("xoxb-123456789"), "{}", p.as_str());
    }

    #[test]
    fn macro_formats_safe_arguments_only() {
        let name = Mrkdwn::untrusted("a<b");
        let m = crate::mrkdwn!("*{}* · {} alerts · {:.1} s", name, 3usize, 1.25f64);
        assert_eq!(m.as_str(), "*a&lt;b* · 3 alerts · 1.2 s");
    }

    #[test]
    fn links_need_http_and_keep_their_label_escaped() {
        let label = Mrkdwn::untrusted("Runbook > Step");
        assert_eq!(
            Mrkdwn::link("https://r.example/a|b>c d", &label).as_str(),
            "<https://r.example/a%7Cb%3Ec%20d|Runbook &gt; Step (r.example)>"
        );
        assert_eq!(
            Mrkdwn::own_link("https://r.example/a", &label).as_str(),
            "<https://r.example/a|Runbook &gt; Step>"
        );
        assert_eq!(
            Mrkdwn::link("javascript:alert(1)", &label).as_str(),
            "Runbook &gt; Step"
        );
    }

    #[test]
    fn code_and_bold() {
        assert_eq!(Mrkdwn::code("a`b<c").as_str(), "`a'b&lt;c`");
        assert_eq!(
            Mrkdwn::bold(&Mrkdwn::untrusted("x&y")).as_str(),
            "*x&amp;y*"
        );
    }

    #[test]
    fn markdown_becomes_mrkdwn() {
        let m = Mrkdwn::markdown("**Restart** it, see [docs](https://d.example/x?a=1&b=2) <!here>");
        assert_eq!(
            m.as_str(),
            "*Restart* it, see <https://d.example/x?a=1&amp;b=2|docs (d.example)> &lt;!here&gt;"
        );
    }

    #[test]
    fn a_link_label_cannot_hide_its_host() {
        let m = Mrkdwn::markdown("[Break-glass procedure](https://evil.example/steal)");
        assert_eq!(
            m.as_str(),
            "<https://evil.example/steal|Break-glass procedure (evil.example)>"
        );
        // Userinfo does not disguise the host either.
        let l = Mrkdwn::link(
            "https://grafana.acme.example@evil.example/d",
            &Mrkdwn::own("Grafana"),
        );
        assert!(l.as_str().ends_with("|Grafana (evil.example)>"), "{l}");
        // Same label as host: shown once.
        let l = Mrkdwn::link("https://grafana.example/d", &Mrkdwn::own("grafana.example"));
        assert_eq!(l.as_str(), "<https://grafana.example/d|grafana.example>");
    }

    #[test]
    fn invisible_and_bidi_characters_are_removed() {
        let spoof =
            "\u{202E}anafarG\u{202C} <https://evil.example|Grafana> zero\u{200B}width\u{0007}";
        let m = Mrkdwn::untrusted(spoof);
        assert_eq!(
            m.as_str(),
            "anafarG &lt;https://evil.example|Grafana&gt; zerowidth"
        );
        assert_eq!(Plain::untrusted("a\u{2066}b\u{FEFF}c").as_str(), "abc");
        assert_eq!(
            Mrkdwn::untrusted("line1\n\tline2").as_str(),
            "line1\n\tline2"
        );
    }

    #[test]
    fn join_and_cut() {
        let j = Mrkdwn::join([Mrkdwn::own("a"), Mrkdwn::untrusted("<b>")], " · ");
        assert_eq!(j.as_str(), "a · &lt;b&gt;");
        assert_eq!(Mrkdwn::own("héllo").cut(3).as_str(), "hé…");
        assert!(Mrkdwn::own("  ").is_empty());
    }
}

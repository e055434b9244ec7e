//! Routing incidents to alert channels by label matchers, Alertmanager style.
//!
//! Syntax (`SENTINEL_ALERT_ROUTES`): routes separated by `;`, each `matchers -> channel`,
//! matchers separated by `,` as `name=value`, `name!=value`, `name=~regex`, `name!~regex`
//! (regexes are anchored). The first route whose matchers all match wins; otherwise the
//! default channel (`SENTINEL_ALERT_CHANNEL`).
//!
//! `severity=critical,team=~db|storage -> C0DBPAGE; namespace!~dev-.* -> C0PROD`

use std::collections::BTreeMap;

use regex::Regex;

use crate::error::UserError;

#[derive(Debug, Clone)]
pub enum Op {
    Eq(String),
    Ne(String),
    Re(Regex),
    NotRe(Regex),
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: Op,
}

impl Matcher {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match &self.op {
            Op::Eq(x) => v == x,
            Op::Ne(x) => v != x,
            Op::Re(r) => r.is_match(v),
            Op::NotRe(r) => !r.is_match(v),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    pub matchers: Vec<Matcher>,
    pub channel: String,
}

/// Ordered routes plus the channel for everything else.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    pub routes: Vec<Route>,
    pub default_channel: String,
}

impl Routes {
    pub fn single(channel: impl Into<String>) -> Self {
        Self {
            routes: Vec::new(),
            default_channel: channel.into(),
        }
    }

    /// The alert channel for an incident with these labels.
    pub fn channel_for(&self, labels: &BTreeMap<String, String>) -> &str {
        self.routes
            .iter()
            .find(|r| r.matchers.iter().all(|m| m.matches(labels)))
            .map_or(self.default_channel.as_str(), |r| r.channel.as_str())
    }

    pub fn parse(spec: &str, default_channel: &str) -> Result<Self, UserError> {
        let mut routes = Vec::new();
        for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (lhs, channel) = part.split_once("->").ok_or_else(|| {
                UserError::new(format!(
                    "SENTINEL_ALERT_ROUTES: route `{part}` needs `matchers -> channel`"
                ))
            })?;
            let channel = channel.trim();
            if channel.is_empty() || channel.contains(char::is_whitespace) {
                return Err(UserError::new(format!(
                    "SENTINEL_ALERT_ROUTES: route `{part}` has no valid channel id"
                )));
            }
            let matchers = lhs
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(parse_matcher)
                .collect::<Result<Vec<_>, _>>()?;
            routes.push(Route {
                matchers,
                channel: channel.to_string(),
            });
        }
        Ok(Self {
            routes,
            default_channel: default_channel.to_string(),
        })
    }
}

fn parse_matcher(m: &str) -> Result<Matcher, UserError> {
    let bad = || {
        UserError::new(format!(
            "SENTINEL_ALERT_ROUTES: matcher `{m}` must look like name=value, name!=value, name=~regex or name!~regex"
        ))
    };
    let (name, op, value) = ["!~", "=~", "!=", "="]
        .iter()
        .find_map(|op| m.split_once(op).map(|(n, v)| (n.trim(), *op, v.trim())))
        .ok_or_else(bad)?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad());
    }
    let value = value.trim_matches('"');
    let re = |v: &str| {
        Regex::new(&format!("^(?:{v})$"))
            .map_err(|e| UserError::new(format!("SENTINEL_ALERT_ROUTES: bad regex in `{m}`: {e}")))
    };
    let op = match op {
        "=" => Op::Eq(value.to_string()),
        "!=" => Op::Ne(value.to_string()),
        "=~" => Op::Re(re(value)?),
        _ => Op::NotRe(re(value)?),
    };
    Ok(Matcher {
        name: name.to_string(),
        op,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn first_matching_route_wins_else_default() {
        let r = Routes::parse(
            "severity=critical, team=~db|storage -> C0DB; namespace!~dev-.* -> C0PROD",
            "C0ALL",
        )
        .unwrap();
        assert_eq!(
            r.channel_for(&labels(&[("severity", "critical"), ("team", "db")])),
            "C0DB"
        );
        assert_eq!(
            r.channel_for(&labels(&[
                ("severity", "critical"),
                ("team", "dbx"),
                ("namespace", "dev-1")
            ])),
            "C0ALL"
        );
        assert_eq!(
            r.channel_for(&labels(&[("namespace", "checkout")])),
            "C0PROD"
        );
        assert_eq!(r.channel_for(&labels(&[("namespace", "dev-2")])), "C0ALL");
    }

    #[test]
    fn ne_matches_missing_labels_like_alertmanager() {
        let r = Routes::parse("env!=prod -> C1", "C0").unwrap();
        assert_eq!(r.channel_for(&labels(&[])), "C1");
        assert_eq!(r.channel_for(&labels(&[("env", "prod")])), "C0");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(Routes::parse("severity=critical", "C0")
            .unwrap_err()
            .0
            .contains("matchers -> channel"));
        assert!(Routes::parse("severity -> C1", "C0")
            .unwrap_err()
            .0
            .contains("name=value"));
        assert!(Routes::parse("a=~( -> C1", "C0")
            .unwrap_err()
            .0
            .contains("bad regex"));
        assert!(Routes::parse("a=b -> ", "C0")
            .unwrap_err()
            .0
            .contains("channel"));
        assert!(Routes::parse("", "C0").unwrap().routes.is_empty());
    }
}

//! The remediation-action catalog a runbook declares in its front matter, and its validation.
//!
//! An action is an argv (never a shell line) with `{param}` placeholders; every parameter
//! declares a pattern its values must match in full. Sentinel only ever runs actions from
//! this catalog, with validated parameters.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Programs an action may not run: a shell would turn parameters into code.
const SHELLS: &[&str] = &[
    "sh", "bash", "zsh", "dash", "ksh", "fish", "csh", "tcsh", "env", "eval",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Unique within the runbook: `[a-z0-9][a-z0-9_-]*`, at most 63 characters.
    pub id: String,
    /// One line shown on the button and in the proposal.
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// The program and its arguments; `{name}` is replaced by a validated parameter.
    pub command: Vec<String>,
    #[serde(default)]
    pub params: BTreeMap<String, Param>,
    /// How to check that the action worked.
    #[serde(default)]
    pub verify: Option<Verify>,
    #[serde(default)]
    pub risk: Risk,
    /// Slack user ids or user-group handles allowed to approve; empty means the configured default.
    #[serde(default)]
    pub approvers: Vec<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// How to undo the action when its verification fails (same parameters, same rules).
    #[serde(default)]
    pub rollback: Option<Rollback>,
    /// With `risk: low` and `SENTINEL_AUTO_APPROVE=on`, runs without a click.
    #[serde(default)]
    pub auto_approve: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    pub command: Vec<String>,
    /// Run it by itself when verification fails (otherwise it is offered as a button).
    #[serde(default)]
    pub auto: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Param {
    /// A regular expression the whole value must match.
    pub pattern: String,
    /// Take the value from this alert label when present.
    #[serde(default)]
    pub from_label: Option<String>,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    pub command: Vec<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Text the verify command's output must contain, when set.
    #[serde(default)]
    pub expect: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    #[default]
    Low,
    Medium,
    High,
}

fn default_timeout() -> u64 {
    120
}

impl Action {
    /// Checks the declaration; returns every problem found, not just the first.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let id_re = Regex::new(r"^[a-z0-9][a-z0-9_-]{0,62}$").expect("static regex");
        if !id_re.is_match(&self.id) {
            problems.push(format!(
                "action id `{}` must be lower-case letters, digits, `-` or `_` (at most 63)",
                self.id
            ));
        }
        if self.title.trim().is_empty() || self.title.chars().count() > 75 {
            problems.push(format!(
                "action `{}`: title must be 1 to 75 characters",
                self.id
            ));
        }
        check_argv(
            &self.id,
            "command",
            &self.command,
            &self.params,
            &mut problems,
        );
        if let Some(v) = &self.verify {
            check_argv(
                &self.id,
                "verify.command",
                &v.command,
                &self.params,
                &mut problems,
            );
        }
        if let Some(r) = &self.rollback {
            check_argv(
                &self.id,
                "rollback.command",
                &r.command,
                &self.params,
                &mut problems,
            );
        }
        if self.auto_approve && self.risk != Risk::Low {
            problems.push(format!(
                "action `{}`: auto_approve is only allowed with risk: low",
                self.id
            ));
        }
        for (name, p) in &self.params {
            if let Err(e) = p.regex() {
                problems.push(format!(
                    "action `{}`: parameter `{name}` has an invalid pattern: {e}",
                    self.id
                ));
            } else if let Some(d) = &p.default {
                if !p.accepts(d) {
                    problems.push(format!(
                        "action `{}`: default `{d}` of parameter `{name}` does not match its pattern",
                        self.id
                    ));
                }
            }
        }
        if self.timeout_secs == 0 || self.timeout_secs > 3600 {
            problems.push(format!(
                "action `{}`: timeout_secs must be between 1 and 3600",
                self.id
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Builds the argv with validated parameter values. Unknown or invalid values are refused.
    pub fn render(
        &self,
        argv: &[String],
        values: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, String> {
        for (k, v) in values {
            let p = self
                .params
                .get(k)
                .ok_or_else(|| format!("`{k}` is not a parameter of action `{}`", self.id))?;
            if !p.accepts(v) {
                return Err(format!("value for `{k}` does not match `{}`", p.pattern));
            }
        }
        argv.iter()
            .map(|arg| {
                let mut out = String::new();
                for piece in split_placeholders(arg) {
                    match piece {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Param(name) => {
                            let v = values
                                .get(name)
                                .or_else(|| self.params.get(name).and_then(|p| p.default.as_ref()))
                                .ok_or_else(|| format!("missing value for `{name}`"))?;
                            out.push_str(v);
                        }
                    }
                }
                Ok(out)
            })
            .collect()
    }
}

impl Param {
    pub fn regex(&self) -> Result<Regex, regex::Error> {
        Regex::new(&format!("^(?:{})$", self.pattern))
    }

    pub fn accepts(&self, value: &str) -> bool {
        self.regex().map(|r| r.is_match(value)).unwrap_or(false)
    }
}

fn check_argv(
    id: &str,
    what: &str,
    argv: &[String],
    params: &BTreeMap<String, Param>,
    problems: &mut Vec<String>,
) {
    let Some(program) = argv.first() else {
        problems.push(format!("action `{id}`: {what} is empty"));
        return;
    };
    let base = program.rsplit('/').next().unwrap_or(program);
    if SHELLS.contains(&base) {
        problems.push(format!(
            "action `{id}`: {what} runs `{base}`; actions run without a shell"
        ));
    }
    if program.contains('{') {
        problems.push(format!(
            "action `{id}`: {what} program must be fixed, not a parameter"
        ));
    }
    let mut used = BTreeSet::new();
    for arg in argv {
        for piece in split_placeholders(arg) {
            if let Piece::Param(name) = piece {
                used.insert(name.to_string());
                if !params.contains_key(name) {
                    problems.push(format!(
                        "action `{id}`: {what} uses `{{{name}}}` but declares no such parameter"
                    ));
                }
            }
        }
    }
}

enum Piece<'a> {
    Text(&'a str),
    Param(&'a str),
}

/// Splits `deploy/{name}-x` into text and `{name}` placeholders.
fn split_placeholders(arg: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(start) = rest.find('{') {
        match rest[start..].find('}') {
            Some(len) => {
                let name = &rest[start + 1..start + len];
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    if start > 0 {
                        out.push(Piece::Text(&rest[..start]));
                    }
                    out.push(Piece::Param(name));
                } else {
                    out.push(Piece::Text(&rest[..start + len + 1]));
                }
                rest = &rest[start + len + 1..];
            }
            None => break,
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(yaml: &str) -> Action {
        serde_yaml::from_str(yaml).unwrap()
    }

    const RESTART: &str = r#"
id: restart-deployment
title: Restart the deployment
command: ["kubectl", "-n", "{namespace}", "rollout", "restart", "deployment/{deployment}"]
params:
  namespace: { pattern: "[a-z0-9-]{1,63}", from_label: namespace }
  deployment: { pattern: "[a-z0-9-]{1,63}", default: checkout-api }
verify:
  command: ["kubectl", "-n", "{namespace}", "rollout", "status", "deployment/{deployment}"]
risk: medium
"#;

    #[test]
    fn valid_action_renders_argv() {
        let a = action(RESTART);
        a.validate().unwrap();
        let values = BTreeMap::from([("namespace".to_string(), "checkout".to_string())]);
        let argv = a.render(&a.command, &values).unwrap();
        assert_eq!(
            argv,
            [
                "kubectl",
                "-n",
                "checkout",
                "rollout",
                "restart",
                "deployment/checkout-api"
            ]
        );
    }

    #[test]
    fn parameter_values_must_match_in_full() {
        let a = action(RESTART);
        let values = BTreeMap::from([("namespace".to_string(), "checkout; rm -rf /".to_string())]);
        assert!(a.render(&a.command, &values).is_err());
        let values = BTreeMap::from([("namespace".to_string(), "x\ny".to_string())]);
        assert!(a.render(&a.command, &values).is_err());
    }

    #[test]
    fn unknown_parameter_refused() {
        let a = action(RESTART);
        let values = BTreeMap::from([("image".to_string(), "evil".to_string())]);
        assert!(a.render(&a.command, &values).unwrap_err().contains("image"));
    }

    #[test]
    fn shells_are_refused() {
        let a = action("id: x\ntitle: X\ncommand: [\"/bin/bash\", \"-c\", \"echo\"]\n");
        let p = a.validate().unwrap_err();
        assert!(p[0].contains("without a shell"), "{p:?}");
    }

    #[test]
    fn undeclared_placeholder_and_bad_id_reported_together() {
        let a = action("id: Bad Id\ntitle: X\ncommand: [\"kubectl\", \"{pod}\"]\n");
        let p = a.validate().unwrap_err();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().any(|m| m.contains("{pod}")));
    }

    #[test]
    fn default_must_match_pattern() {
        let a = action(
            "id: x\ntitle: X\ncommand: [\"kubectl\", \"{n}\"]\nparams:\n  n: { pattern: \"[0-9]+\", default: abc }\n",
        );
        assert!(a.validate().unwrap_err()[0].contains("default"));
    }

    #[test]
    fn unknown_fields_are_errors() {
        let r: Result<Action, _> =
            serde_yaml::from_str("id: x\ntitle: X\ncommand: [ls]\nshell: true\n");
        assert!(r.is_err());
    }

    #[test]
    fn braces_that_are_not_placeholders_stay_text() {
        let a = action("id: x\ntitle: X\ncommand: [\"jq\", \"{.a b}\"]\n");
        a.validate().unwrap();
        assert_eq!(
            a.render(&a.command, &BTreeMap::new()).unwrap(),
            ["jq", "{.a b}"]
        );
    }
}

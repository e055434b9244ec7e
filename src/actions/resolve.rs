//! Turning a catalog action into the exact argv that will run: each parameter from what
//! the user gave, else the alert label the action names, else its default; every value
//! validated against its pattern. A parameter that cannot be resolved is named. Pure.

use std::collections::BTreeMap;

use crate::knowledge::actions::{Action, Risk};

/// An action with every parameter resolved and its argv rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub params: BTreeMap<String, String>,
    pub argv: Vec<String>,
    pub verify_argv: Option<Vec<String>>,
    pub rollback_argv: Option<Vec<String>>,
}

/// Why an action cannot be offered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no value for {}", .0.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "))]
    Missing(Vec<String>),
    #[error("`{param}` = `{value}` does not match `{pattern}`")]
    Invalid {
        param: String,
        value: String,
        pattern: String,
    },
    #[error("`{0}` is not a parameter of this action")]
    Unknown(String),
}

/// Resolves `action` for an alert's `labels`, with `given` values (from `/sentinel run`)
/// taking precedence.
pub fn resolve(
    action: &Action,
    labels: &BTreeMap<String, String>,
    given: &BTreeMap<String, String>,
) -> Result<Resolved, ResolveError> {
    if let Some(k) = given.keys().find(|k| !action.params.contains_key(*k)) {
        return Err(ResolveError::Unknown(crate::text::truncate_chars(k, 40)));
    }
    let mut params = BTreeMap::new();
    let mut missing = Vec::new();
    for (name, p) in &action.params {
        let value = given
            .get(name)
            .or_else(|| p.from_label.as_ref().and_then(|l| labels.get(l)))
            .or(p.default.as_ref());
        match value {
            Some(v) if p.accepts(v) => {
                params.insert(name.clone(), v.clone());
            }
            Some(v) => {
                return Err(ResolveError::Invalid {
                    param: name.clone(),
                    value: crate::text::truncate_chars(v, 60),
                    pattern: p.pattern.clone(),
                })
            }
            None => missing.push(name.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(ResolveError::Missing(missing));
    }
    let render = |argv: &[String]| {
        action
            .render(argv, &params)
            .map_err(|e| ResolveError::Invalid {
                param: String::new(),
                value: e,
                pattern: String::new(),
            })
    };
    Ok(Resolved {
        argv: render(&action.command)?,
        verify_argv: action
            .verify
            .as_ref()
            .map(|v| render(&v.command))
            .transpose()?,
        rollback_argv: action
            .rollback
            .as_ref()
            .map(|r| render(&r.command))
            .transpose()?,
        params,
    })
}

/// Distinct approvals a proposal needs: two for `risk: high` (two-person rule).
pub fn approvals_needed(risk: Risk) -> i32 {
    match risk {
        Risk::High => 2,
        Risk::Low | Risk::Medium => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action() -> Action {
        serde_yaml::from_str(
            r#"
id: restart
title: Restart
command: ["kubectl", "-n", "{namespace}", "rollout", "restart", "deployment/{deployment}"]
params:
  namespace: { pattern: "[a-z0-9-]{1,63}", from_label: namespace, default: default }
  deployment: { pattern: "[a-z0-9-]{1,63}", from_label: deployment }
verify:
  command: ["kubectl", "-n", "{namespace}", "rollout", "status", "deployment/{deployment}"]
rollback:
  command: ["kubectl", "-n", "{namespace}", "rollout", "undo", "deployment/{deployment}"]
"#,
        )
        .unwrap()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_then_defaults_fill_the_argv() {
        let r = resolve(&action(), &map(&[("deployment", "checkout")]), &map(&[])).unwrap();
        assert_eq!(
            r.argv,
            [
                "kubectl",
                "-n",
                "default",
                "rollout",
                "restart",
                "deployment/checkout"
            ]
        );
        assert_eq!(r.verify_argv.unwrap()[4], "status");
        assert_eq!(r.rollback_argv.unwrap()[4], "undo");
    }

    #[test]
    fn given_values_win_and_are_validated() {
        let labels = map(&[("deployment", "checkout"), ("namespace", "shop")]);
        let r = resolve(&action(), &labels, &map(&[("namespace", "staging")])).unwrap();
        assert_eq!(r.params["namespace"], "staging");
        let e = resolve(&action(), &labels, &map(&[("namespace", "x; rm -rf /")])).unwrap_err();
        assert!(
            matches!(e, ResolveError::Invalid { ref param, .. } if param == "namespace"),
            "{e}"
        );
        let e = resolve(&action(), &labels, &map(&[("image", "x")])).unwrap_err();
        assert_eq!(e, ResolveError::Unknown("image".into()));
    }

    #[test]
    fn a_parameter_without_a_value_is_named() {
        let e = resolve(&action(), &map(&[]), &map(&[])).unwrap_err();
        assert_eq!(e, ResolveError::Missing(vec!["deployment".into()]));
        assert_eq!(e.to_string(), "no value for `deployment`");
    }

    #[test]
    fn a_label_that_does_not_match_is_refused_not_cleaned() {
        let e = resolve(
            &action(),
            &map(&[("deployment", "Checkout $HOME")]),
            &map(&[]),
        )
        .unwrap_err();
        assert!(matches!(e, ResolveError::Invalid { .. }), "{e}");
    }

    #[test]
    fn values_stay_one_argv_item_each() {
        let mut a = action();
        a.params.get_mut("deployment").unwrap().pattern = ".+".into();
        let r = resolve(&a, &map(&[("deployment", "two words $HOME")]), &map(&[])).unwrap();
        assert_eq!(r.argv.len(), 6);
        assert_eq!(r.argv[5], "deployment/two words $HOME");
    }
}
